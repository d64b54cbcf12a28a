using System.Globalization;
using MedVlp.Distributed;
using MedVlp.DistributedWorker;

// One rank of a distributed test job, started by the tests under mpirun (or alone, as a job of one process).
//   collectives                      checks every collective and the gatherer's gradients against known values
//   train --vocab V --batch B ...    data-parallel CLIP training of a tiny dual encoder (see TrainLoop)
var group = ProcessGroup.Create();
try
{
    var mode = args.Length > 0 ? args[0] : throw new ArgumentException("usage: worker collectives|train [options]");
    var options = ParseOptions(args.Skip(1).ToArray());
    var code = mode switch
    {
        "collectives" => CollectiveChecks.Run(group),
        "train" => TrainLoop.Run(group, options),
        "trainer" => TrainerRun.Run(group, options),
        _ => throw new ArgumentException($"unknown mode '{mode}'"),
    };
    group.Dispose();
    return code;
}
catch (Exception e) when (group.WorldSize > 1)
{
    // Never leave the other ranks waiting in a collective: end the whole job, naming this rank.
    group.Abort(3, e.GetType().Name + ": " + e.Message);
    return 3;
}

static Dictionary<string, string> ParseOptions(string[] args)
{
    var options = new Dictionary<string, string>(StringComparer.Ordinal);
    for (var i = 0; i < args.Length; i += 2)
    {
        if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
        {
            throw new ArgumentException($"expected --name value pairs, got '{args[i]}'");
        }

        options[args[i][2..]] = args[i + 1];
    }

    return options;
}

namespace MedVlp.DistributedWorker
{
    internal static class OptionsExtensions
    {
        public static int Int(this Dictionary<string, string> options, string name, int fallback) =>
            options.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;

        public static double Double(this Dictionary<string, string> options, string name, double fallback) =>
            options.TryGetValue(name, out var v) ? double.Parse(v, CultureInfo.InvariantCulture) : fallback;

        public static string? String(this Dictionary<string, string> options, string name) =>
            options.TryGetValue(name, out var v) ? v : null;
    }
}
