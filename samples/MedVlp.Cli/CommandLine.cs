using System.CommandLine;
using System.CommandLine.Help;
using Spectre.Console;

namespace MedVlp.Cli;

/// <summary>
/// Parses and runs the command line: short parse errors on stderr (the failing command's usage line, never the full
/// help), an unknown option named with the nearest known one ("did you mean --model?"), and libtorch found before a
/// command that needs it.
/// </summary>
internal static class CommandLine
{
    public const int ParseError = 1;

    /// <summary>The root command. Named <c>medvlp</c> whatever the host (apphost, <c>dotnet MedVlp.Cli.dll</c>, the tool shim):
    /// <see cref="RootCommand"/> would take its name from the assembly, MedVlp.Cli.</summary>
    public static Command CreateRoot(string description) => new("medvlp", description)
    {
        new HelpOption(),
        new VersionOption(),
    };

    /// <summary>Parses <paramref name="args"/> and runs the chosen command.</summary>
    /// <param name="root">The root command.</param>
    /// <param name="args">The arguments.</param>
    /// <param name="needLibTorch">Commands that run TorchSharp: libtorch is located (<see cref="LibTorchLocator"/>) before they start.</param>
    public static int Run(Command root, string[] args, IReadOnlyCollection<Command> needLibTorch)
    {
        // Output to a file or a pipe gets no colour or cursor codes, whatever TERM says (Spectre.Console would otherwise
        // follow TERM); progress bars then print plain lines.
        if (Console.IsOutputRedirected)
        {
            AnsiConsole.Console = AnsiConsole.Create(new AnsiConsoleSettings
            {
                Ansi = AnsiSupport.No,
                ColorSystem = ColorSystemSupport.NoColors,
                Interactive = InteractionSupport.No,
                Out = new AnsiConsoleOutput(Console.Out),
            });
        }

        var result = root.Parse(args);
        var command = result.CommandResult.Command;
        var isHelp = result.Action is HelpAction;
        var unknown = isHelp ? [] : UnknownOptions(command, args);
        if (!isHelp && (result.Errors.Count > 0 || unknown.Count > 0))
        {
            // An unknown option is the cause of whatever else failed (it took the place of an argument, or a required
            // option is then missing): name it alone. Otherwise the parser's errors, the first unknown command only.
            foreach (var (token, suggestion) in unknown)
            {
                Console.Error.WriteLine($"medvlp: error: unknown option '{token}'" + (suggestion is null ? "." : $"; did you mean {suggestion}?"));
            }

            if (unknown.Count == 0)
            {
                var errors = result.Errors.Select(e => e.Message).Distinct().ToList();
                var unrecognized = errors.FirstOrDefault(e => e.StartsWith("Unrecognized command or argument", StringComparison.Ordinal));
                if (unrecognized is not null && command.Subcommands.Count > 0)
                {
                    errors = [unrecognized];
                }

                foreach (var error in errors)
                {
                    var hint = SuggestSubcommand(command, error);
                    Console.Error.WriteLine($"medvlp: error: {error.TrimEnd('.')}{hint}{(hint.EndsWith('?') ? "" : ".")}");
                }
            }

            Console.Error.WriteLine($"Usage: {Usage(command)}");
            Console.Error.WriteLine($"Run '{Path(command)} --help' for more.");
            return ParseError;
        }

        if (!isHelp && NeedsLibTorch(command, needLibTorch) && !LibTorchLocator.TryLoad(out var problem))
        {
            Console.Error.WriteLine($"medvlp: error: {problem}");
            return CliErrors.BadInput;
        }

        return result.Invoke();
    }

    /// <summary>Whether the command or one of its parents (<c>model keys</c> under <c>model</c>) runs TorchSharp.</summary>
    private static bool NeedsLibTorch(Command command, IReadOnlyCollection<Command> needLibTorch)
    {
        for (Symbol? s = command; s is Command c; s = c.Parents.FirstOrDefault())
        {
            if (needLibTorch.Contains(c))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Tokens that look like options (<c>--name</c>, <c>-x</c>) but are no option of the command or its parents,
    /// each with the nearest known option name (edit distance at most 2, or a third of its length).</summary>
    internal static List<(string Token, string? Suggestion)> UnknownOptions(Command command, IReadOnlyList<string> args)
    {
        var known = new List<string>();
        for (Symbol? s = command; s is Command c; s = c.Parents.FirstOrDefault())
        {
            foreach (var option in c.Options)
            {
                known.Add(option.Name);
                known.AddRange(option.Aliases);
            }
        }

        var subcommands = command.Subcommands.SelectMany(c => c.Aliases.Prepend(c.Name)).ToHashSet(StringComparer.Ordinal);
        var unknown = new List<(string, string?)>();
        foreach (var arg in args)
        {
            if (arg == "--")
            {
                break;
            }

            // An option is -x or --name (a letter after the dashes); "-1000,1000" or "-0.5" are values.
            var looksLikeOption = arg.StartsWith("--", StringComparison.Ordinal) ? arg.Length > 2 && char.IsLetter(arg[2]) : arg.Length > 1 && arg[0] == '-' && char.IsLetter(arg[1]);
            if (!looksLikeOption || subcommands.Contains(arg))
            {
                continue;
            }

            var name = arg.Split('=', ':')[0];
            if (!known.Contains(name, StringComparer.Ordinal))
            {
                var best = known.Where(k => k.StartsWith("--", StringComparison.Ordinal)).Select(k => (k, d: Distance(name, k))).OrderBy(x => x.d).FirstOrDefault();
                var limit = Math.Max(2, name.Length / 3);
                unknown.Add((name, best.k is not null && best.d <= limit ? best.k : null));
            }
        }

        return unknown;
    }

    private static string SuggestSubcommand(Command command, string message)
    {
        if (command.Subcommands.Count == 0)
        {
            return "";
        }

        var quoted = message.Split('\'');
        if (quoted.Length < 3 || !message.StartsWith("Unrecognized", StringComparison.Ordinal))
        {
            return "";
        }

        var token = quoted[1];
        var best = command.Subcommands.Select(c => (c.Name, d: Distance(token, c.Name))).OrderBy(x => x.d).First();
        return best.d <= Math.Max(2, token.Length / 3) ? $"; did you mean '{best.Name}'?" : $" (commands: {string.Join(", ", command.Subcommands.Select(c => c.Name))})";
    }

    private static string Path(Command command)
    {
        var names = new List<string>();
        for (Symbol? s = command; s is Command c; s = c.Parents.FirstOrDefault())
        {
            names.Insert(0, c.Name);
        }

        return string.Join(' ', names);
    }

    private static string Usage(Command command)
    {
        var parts = new List<string> { Path(command) };
        if (command.Subcommands.Count > 0)
        {
            parts.Add("<command>");
        }

        parts.AddRange(command.Options.Where(o => o.Required).Select(o => $"{o.Name} <{o.Name.TrimStart('-')}>"));
        parts.AddRange(command.Arguments.Select(a => a.Arity.MaximumNumberOfValues > 1 ? $"<{a.Name}>..." : $"<{a.Name}>"));
        if (command.Options.Any(o => !o.Required && o is not HelpOption))
        {
            parts.Add("[options]");
        }

        return string.Join(' ', parts);
    }

    /// <summary>Levenshtein distance, case-insensitive.</summary>
    internal static int Distance(string a, string b)
    {
        a = a.ToLowerInvariant();
        b = b.ToLowerInvariant();
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                current[j] = Math.Min(Math.Min(current[j - 1], previous[j]) + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}
