// CustomLoss: write a loss of your own (subclass VlpLoss<TInput>), compose it with ClipLoss, and train with it.
// Usage: dotnet run -c Release --project samples/CustomLoss -- [STEPS]
using System.Globalization;
using MedVlp.Losses;
using CustomLossSample;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

var steps = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 100;
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
manual_seed(1);
const int Count = 256, VolumeDim = 64, ReportDim = 48, EmbeddingDim = 32, Batch = 32;

// Paired data standing in for encoder outputs: 256 "volume" features and their "report" features, which are a fixed
// random linear map of them plus noise. A model that learns the pairing retrieves each report from its volume.
var volumes = randn(Count, VolumeDim);
var reports = volumes.matmul(randn(VolumeDim, ReportDim) / Math.Sqrt(VolumeDim)) + (0.1 * randn(Count, ReportDim));

using var volumeHead = nn.Linear(VolumeDim, EmbeddingDim);
using var reportHead = nn.Linear(ReportDim, EmbeddingDim);
var logitScale = new Parameter(tensor(MathF.Log(1 / 0.07f)));   // CLIP's learnable temperature

// The objective: CLIP's symmetric InfoNCE plus 0.1 x the custom loss on the volume side.
using var objective = new CompositeLoss<ContrastiveInput>()
    .Add("clip", new ClipLoss())
    .Add("uniformity", new UniformityLoss(), input => input.ImageFeatures, weight: 0.1);
var parameters = volumeHead.parameters().Concat(reportHead.parameters()).Append(logitScale).Concat(objective.parameters());
using var optimizer = optim.AdamW(parameters, lr: 1e-2);

Console.WriteLine($"before training: top-1 report retrieval {Retrieval():P1} of {Count} (chance {1.0 / Count:P1})");
for (var step = 1; step <= steps; step++)
{
    using var scope = NewDisposeScope();
    var batch = randperm(Count).narrow(0, 0, Batch);
    optimizer.zero_grad();
    // As in CLIP, the embeddings are L2-normalised before the loss; the logit scale sets the softmax temperature.
    var volumeEmbeddings = nn.functional.normalize(volumeHead.call(volumes.index_select(0, batch)), dim: -1);
    var reportEmbeddings = nn.functional.normalize(reportHead.call(reports.index_select(0, batch)), dim: -1);
    using var output = objective.call(new ContrastiveInput(volumeEmbeddings, reportEmbeddings, logitScale.exp()));
    output.Total.backward();
    optimizer.step();
    if (step == 1 || step % 20 == 0 || step == steps)
    {
        // The total and each part, unweighted (a part's own terms, such as clip/image_to_text, are left out here).
        var terms = output.ToScalars().Where(t => !t.Key.Contains('/', StringComparison.Ordinal));
        Console.WriteLine($"step {step,4}: " + string.Join(", ", terms.Select(t => $"{t.Key} {t.Value:F4}")));
    }
}

Console.WriteLine($"after {steps} steps: top-1 report retrieval {Retrieval():P1} of {Count}");
return 0;

// Top-1 retrieval accuracy over all pairs: is each volume's most similar report its own?
double Retrieval()
{
    using var scope = NewDisposeScope();
    using var noGrad = no_grad();
    var v = nn.functional.normalize(volumeHead.call(volumes), dim: -1);
    var r = nn.functional.normalize(reportHead.call(reports), dim: -1);
    return v.matmul(r.t()).argmax(1).eq(arange(Count)).to_type(ScalarType.Float64).mean().ToDouble();
}
