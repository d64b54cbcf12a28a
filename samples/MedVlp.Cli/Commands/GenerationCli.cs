using System.CommandLine;
using MedVlp.Inference.Generation;

namespace MedVlp.Cli.Commands;

/// <summary>
/// The decoding options that <c>ask</c>, <c>report</c> and <c>zeroshot --generative</c> share: <c>--max-tokens</c>,
/// <c>--temperature</c>, <c>--top-p</c>, <c>--top-k</c> (any of them samples), <c>--seed</c>, <c>--beams</c>,
/// <c>--length-penalty</c>, <c>--repetition-penalty</c>, <c>--stop</c> (repeatable) and <c>--stream</c>.
/// </summary>
internal sealed class GenerationCli
{
    private readonly Option<int> _maxTokens;
    private readonly Option<double?> _temperature = new("--temperature") { Description = "Sample with this temperature (> 0); 0 decodes greedily." };
    private readonly Option<double?> _topP = new("--top-p") { Description = "Sample from the smallest set of tokens whose probability reaches P (0 < P <= 1)." };
    private readonly Option<int?> _topK = new("--top-k") { Description = "Sample from the K most likely tokens." };
    private readonly Option<long?> _seed = new("--seed") { Description = "Seed of the sampling: the same seed gives the same text." };
    private readonly Option<int> _beams = new("--beams") { Description = "Beam search with N beams (1: greedy or sampling).", DefaultValueFactory = _ => 1 };
    private readonly Option<double> _lengthPenalty = new("--length-penalty") { Description = "Beam search: exponent of the length dividing a beam's log-probability.", DefaultValueFactory = _ => 1.0 };
    private readonly Option<double> _repetitionPenalty = new("--repetition-penalty") { Description = "Penalty on tokens already generated (1: none).", DefaultValueFactory = _ => 1.0 };
    private readonly Option<string[]> _stop = new("--stop") { Description = "Stop when the text contains this string (repeatable); the text is cut before it.", AllowMultipleArgumentsPerToken = false };

    public GenerationCli(int defaultMaxTokens)
    {
        _maxTokens = new Option<int>("--max-tokens") { Description = "The most tokens to generate.", DefaultValueFactory = _ => defaultMaxTokens };
    }

    public Option<bool> Stream { get; } = new("--stream") { Description = "Print the text as it is generated (not with --json)." };

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { _maxTokens, _temperature, _topP, _topK, _seed, _beams, _lengthPenalty, _repetitionPenalty, _stop, Stream })
        {
            command.Options.Add(option);
        }
    }

    /// <summary>The options as given; throws an <see cref="ArgumentException"/> naming the command-line option that is wrong.</summary>
    public GenerationOptions Read(ParseResult parse)
    {
        var maxTokens = parse.GetValue(_maxTokens);
        if (maxTokens is < 1 or > 1024)
        {
            throw new ArgumentException($"--max-tokens must be in [1, 1024], got {maxTokens}.");
        }

        var temperature = parse.GetValue(_temperature);
        var topP = parse.GetValue(_topP);
        var topK = parse.GetValue(_topK);
        var beams = parse.GetValue(_beams);
        Check(temperature is null or >= 0 and <= 100, "--temperature", temperature, ">= 0");
        Check(topP is null or > 0 and <= 1, "--top-p", topP, "in (0, 1]");
        Check(topK is null or >= 1, "--top-k", topK, ">= 1");
        Check(beams is >= 1 and <= 64, "--beams", beams, "in [1, 64]");
        var sample = temperature is not 0 && (temperature is not null || topP is not null || topK is not null);
        if (sample && beams > 1)
        {
            throw new ArgumentException("--beams > 1 decodes deterministically: leave out --temperature, --top-p and --top-k (or give --temperature 0).");
        }

        var options = new GenerationOptions
        {
            MaxNewTokens = maxTokens,
            DoSample = sample,
            Temperature = temperature is > 0 ? temperature.Value : 1.0,
            TopP = topP ?? 1.0,
            TopK = topK,
            Seed = parse.GetValue(_seed),
            NumBeams = beams,
            LengthPenalty = parse.GetValue(_lengthPenalty),
            RepetitionPenalty = parse.GetValue(_repetitionPenalty),
            StopSequences = [.. parse.GetValue(_stop) ?? []],
        };
        try
        {
            options.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException($"Invalid generation option: {ex.Message}", ex);
        }

        return options;
    }

    /// <summary>The JSON fields of a generated text besides the text.</summary>
    public static Dictionary<string, object?> Describe(GeneratedText result) => new()
    {
        ["finish_reason"] = result.FinishReason switch
        {
            GenerationFinishReason.EndOfSequence => "end",
            GenerationFinishReason.StopSequence => "stop",
            _ => "length",
        },
        ["tokens"] = result.TokenIds.Count,
        ["score"] = result.Score,
    };

    private static void Check(bool ok, string name, object? value, string expected)
    {
        if (!ok)
        {
            throw new ArgumentException($"{name} must be {expected}, got {value}.");
        }
    }
}
