using System.CommandLine;
using MedVlp.Cli.Commands;

var root = new RootCommand("medvlp: 3D medical volumes and vision-language models from the command line.");
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(ConvertCommand.Create());
root.Subcommands.Add(PreprocessCommand.Create());
root.Subcommands.Add(SynthCommand.Create());
root.Subcommands.Add(DemoCommand.Create());
root.Subcommands.Add(ZeroShotCommand.Create());
root.Subcommands.Add(ModelCommand.Create());
root.Subcommands.Add(AskCommand.Create());
return root.Parse(args).Invoke();
