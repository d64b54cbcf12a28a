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
    EmbedThroughput.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 96);
    return;
}

if (args.Length > 0 && args[0] == "retrieval")
{
    RetrievalSideBySide.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 15);
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
