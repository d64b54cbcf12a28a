using MedVlp.Cli.Commands;

var root = MedVlp.Cli.CommandLine.CreateRoot("medvlp: 3D medical volumes and vision-language models from the command line.");
var demo = DemoCommand.Create();
var zeroShot = ZeroShotCommand.Create();
var probe = ProbeCommand.Create();
var model = ModelCommand.Create();
var ask = AskCommand.Create();
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(ConvertCommand.Create());
root.Subcommands.Add(PreprocessCommand.Create());
root.Subcommands.Add(SynthCommand.Create());
root.Subcommands.Add(demo);
root.Subcommands.Add(zeroShot);
root.Subcommands.Add(probe);
root.Subcommands.Add(model);
root.Subcommands.Add(ask);
return MedVlp.Cli.CommandLine.Run(root, args, needLibTorch: [demo, zeroShot, probe, model, ask]);
