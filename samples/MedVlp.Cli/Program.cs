using System.CommandLine;
using MedVlp.Cli;
using MedVlp.Cli.Commands;

var root = new RootCommand("medvlp: 3D medical volumes and vision-language models from the command line.");
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(ConvertCommand.Create());
root.Subcommands.Add(PreprocessCommand.Create());
root.Subcommands.Add(SynthCommand.Create());
root.Subcommands.Add(DemoCommand.Create());
root.Subcommands.Add(ZeroShotCommand.Create());
root.Subcommands.Add(ModelCommand.Create());
CliLimits.AddTo(root);
var parsed = root.Parse(args);
return parsed.Errors.Count > 0 ? parsed.Invoke() : CliLimits.Apply(parsed) ?? parsed.Invoke();
