using BenchmarkDotNet.Running;
using MedVlp.Benchmarks;

// Run all: dotnet run -c Release --project benchmarks/MedVlp.Benchmarks -- --filter '*'
// Side by side with the Python reference: bash benchmarks/reference/side_by_side.sh
if (args.Length > 0 && args[0] == "side-by-side")
{
    SideBySide.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 15);
    return;
}

if (args.Length > 0 && args[0] == "embed-throughput")
{
    EmbedThroughput.Run(
        args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 96,
        args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 0);
    return;
}

if (args.Length > 0 && args[0] == "loader-vs-cached")
{
    LoaderVersusCached.Run(
        args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 3,
        args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 1);
    return;
}

if (args.Length > 0 && args[0] == "minilm")
{
    MiniLmSideBySide.Run(
        args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 5,
        args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 2);
    return;
}

if (args.Length > 0 && args[0] == "retrieval")
{
    RetrievalSideBySide.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 15, args.Length > 2 ? args[2] : null);
    return;
}

// Data-parallel measures (run alone and under mpirun): bash benchmarks/distributed.sh
if (args.Length > 0 && args[0] is "mpi-allreduce" or "mpi-step")
{
    (args[0] == "mpi-allreduce" ? (Action<string[]>)DistributedBenchmarks.AllReduce : DistributedBenchmarks.Step)(args[1..]);
    return;
}

if (args.Length > 0 && args[0] == "conv-check")
{
    ConvOps.Check();
    return;
}

if (args.Length > 0 && args[0] == "conv-ops")
{
    ConvOps.Run(
        args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 1,
        args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 5,
        args.Length > 3 ? args[3] : null);
    return;
}

if (args.Length > 0 && args[0] == "resnet")
{
    ResNetSideBySide.Run(
        args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 1,
        args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 3,
        args.Length > 3 ? args[3] : null,
        args.Length > 4 ? int.Parse(args[4], System.Globalization.CultureInfo.InvariantCulture) : null);
    return;
}

if (args.Length > 0 && args[0] == "train-step")
{
    TrainStepSideBySide.Run(
        args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 1,
        args.Length > 2 && !args[2].StartsWith("--", StringComparison.Ordinal) ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 10,
        loader: !args.Contains("--no-loader"),
        breakdown: args.Contains("--breakdown"),
        only: Array.IndexOf(args, "--model") is var m and >= 0 && m + 1 < args.Length ? args[m + 1] : null);
    return;
}

if (args.Length > 0 && args[0] == "medblip")
{
    MedBlipSideBySide.Run(
        args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 1,
        args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 10);
    return;
}

if (args.Length > 0 && args[0] == "colipri-encoder")
{
    ColipriEncoderSideBySide.Run(
        args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 1,
        args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 1,
        args.Length > 3 ? int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : 192,
        args.Length > 4 ? int.Parse(args[4], System.Globalization.CultureInfo.InvariantCulture) : 96);
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
