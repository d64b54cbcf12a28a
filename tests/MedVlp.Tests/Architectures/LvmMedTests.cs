using System.Text.Json;
using MedVlp.Architectures.LvmMed;
using MedVlp.Losses;
using MedVlp.Modeling;
using MedVlp.Modeling.Backbones;
using MedVlp.Serialization;
using MedVlp.Testing;
using MedVlp.Text;
using MedVlp.Tests.Blocks;
using MedVlp.Training;
using MedVlp.Weights;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MedVlp.Tests.Architectures;

/// <summary>
/// LVM-Med against a PyTorch reference written after the paper (tests/golden/make_lvmmed_golden.py): encoder, projector,
/// k-NN graphs, message passing, vertex (global + local) and edge affinities, the exactly solved second-order matching,
/// the Hamming loss and its black-box gradients into every parameter, and the batch-norm running statistics, in float64
/// to 1e-5; the released ResNet-50 weights' names; the full-size layout; no tensor left by a training step.
/// </summary>
[Collection(nameof(TorchRandomState))] // creates randomly initialised modules: libtorch's global generator is shared
public sealed class LvmMedTests(ITestOutputHelper output)
{
    private static readonly Device Meta = new(DeviceType.META);

    private static readonly Lazy<Dictionary<string, Tensor>> Golden = new(() => GoldenTensors.Load("lvmmed_golden.safetensors"));

    [Fact]
    public void ForwardMatchingLossAndGradientsMatchTheReferenceInFloat64()
    {
        using var scope = NewDisposeScope();
        var (model, loss) = Loaded(ScalarType.Float64);
        using var _ = model;
        using var objective = new LvmMedObjective(model, loss, useLocalFeatures: true);
        using var batch = new TrainingBatch(Get("input/view1").to(ScalarType.Float64), Get("input/view2").to(ScalarType.Float64), null, null, new bool[6]);
        using var features = objective.Encode(batch);
        var worst = BlocksGolden.AssertClose(Get("z1"), features["z1"], "z1 (projector, view 1)");
        worst = Math.Max(worst, BlocksGolden.AssertClose(Get("z2"), features["z2"], "z2 (projector, view 2)"));
        worst = Math.Max(worst, BlocksGolden.AssertClose(Get("local1"), features["local1"], "local features (layer4 map, view 1)"));

        var input = new GraphMatchingInput(features["z1"], features["z2"], features["local1"], features["local2"]);
        var assignment = loss.Match(input);
        Assert.Equal(Ints(Get("assignment")), assignment);
        using var result = objective.ComputeLoss(features);
        worst = Math.Max(worst, BlocksGolden.AssertClose(Get("loss"), result.Total.reshape(1), "hamming loss"));
        Assert.True(result.Total.ToDouble() > 0);
        result.Total.backward();

        var trainable = model.named_parameters().Select(p => (Name: p.name, p.parameter))
            .Concat(loss.named_parameters().Select(p => (Name: p.name, p.parameter))).ToList();
        var expected = Golden.Value.Keys.Where(k => k.StartsWith("grad/", StringComparison.Ordinal)).Select(k => k[5..]).Order(StringComparer.Ordinal);
        Assert.Equal(expected, trainable.Select(p => p.Name).Order(StringComparer.Ordinal));
        var nonZero = 0;
        foreach (var (name, p) in trainable)
        {
            Assert.True(p.grad is not null, $"no gradient reached {name}");
            worst = Math.Max(worst, BlocksGolden.AssertClose(Get($"grad/{name}"), p.grad!, $"grad {name}"));
            nonZero += p.grad!.abs().max().ToDouble() > 0 ? 1 : 0;
        }

        Assert.True(nonZero > trainable.Count / 2, $"only {nonZero} of {trainable.Count} parameters received a gradient");
        foreach (var (name, b) in model.named_buffers().Where(b => !b.name.EndsWith("num_batches_tracked", StringComparison.Ordinal)))
        {
            worst = Math.Max(worst, BlocksGolden.AssertClose(Get($"after/{name}"), b, $"running statistic {name}"));
        }

        output.WriteLine($"LVM-Med tiny float64: loss {result.Total.ToDouble():F6}, assignment [{string.Join(", ", assignment)}], {trainable.Count} tensors, largest difference {worst:E2}");
    }

    [Fact]
    public void Float32ForwardAndReleasedWeightsLoad()
    {
        using var scope = NewDisposeScope();
        using var model = (LvmMedModel)ModelRegistry.Create(LvmMedConfig.Tiny(), new ModelCreateOptions { Seed = 9 });

        // The released ResNet-50 checkpoint format: torchvision names, DataParallel's "module.", a classifier head.
        var report = WeightLoader.Load(model, TestData.Golden("lvmmed_released_tiny.pt"),
            new WeightLoadOptions { Layout = "torchvision-resnet50", AddPrefix = "encoder.", Strict = false });
        Assert.Empty(report.Mismatched);
        Assert.All(report.Missing, n => Assert.StartsWith("projector.", n, StringComparison.Ordinal));
        Assert.True(report.Unexpected.Order(StringComparer.Ordinal).SequenceEqual(["module.fc.bias", "module.fc.weight"]), report.Describe());
        Assert.Equal(model.ImageEncoder.state_dict().Count, report.Loaded.Count);
        foreach (var (name, p) in model.ImageEncoder.named_parameters())
        {
            BlocksGolden.AssertClose(Get($"param/encoder.{name}"), p, $"loaded {name}");
        }

        using var noGrad = no_grad();
        model.eval();
        var embedding = model.EncodeImages(Get("input/view1"));
        Assert.Equal([6L, 128], embedding.shape);
        var norms = embedding.norm(1);
        Assert.True(norms.sub(1).abs().max().ToDouble() < 1e-5, "EncodeImages must be L2-normalised");
    }

    [Fact]
    public void FullSizeHasTheReleasedEncoderLayout()
    {
        using var model = (LvmMedModel)ModelRegistry.Create("lvmmed", ModelRegistry.Full, new ModelCreateOptions { Device = Meta });
        using var doc = JsonDocument.Parse(File.ReadAllText(TestData.Golden("resnet50_keys.json")));
        var torchvision = doc.RootElement.GetProperty("keys").EnumerateObject().Where(p => !p.Name.StartsWith("fc.", StringComparison.Ordinal))
            .ToDictionary(p => "encoder." + p.Name, p => p.Value.EnumerateArray().Select(v => v.GetInt64()).ToArray());
        var state = model.state_dict();
        var encoder = state.Where(kv => kv.Key.StartsWith("encoder.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(torchvision.Keys.Order(StringComparer.Ordinal), encoder.Keys.Order(StringComparer.Ordinal));
        Assert.All(torchvision, kv => Assert.Equal(kv.Value, encoder[kv.Key]));
        Assert.Equal([64L, 3, 7, 7], state["encoder.conv1.weight"].shape);
        Assert.Equal([2048L, 2048], state["projector.0.weight"].shape);
        Assert.Equal([256L, 2048], state["projector.3.weight"].shape);
        Assert.Equal([3L, 224, 224], model.ImageInputShape);
        Assert.Equal(2048, model.EmbeddingDim);
        var counts = model.CountParameters();
        long resnet = 25557032 - ((2048 * 1000) + 1000);
        Assert.Equal(resnet + (2048 * 2048) + 2048 + (2 * 2048) + (2048 * 256) + 256, counts.Total);
        output.WriteLine($"LVM-Med full: {counts.Total:N0} parameters ({resnet:N0} in the ResNet-50 encoder)");
    }

    [Fact]
    public void ThreeDimensionalVariantEncodesVolumes()
    {
        using var scope = NewDisposeScope();
        var config = LvmMedConfig.Tiny() with { Image = ResNetConfig.Tiny with { InChannels = 1, SpatialDims = 3 }, ImageSize = 32 };
        using var model = (LvmMedModel)ModelRegistry.Create(config, new ModelCreateOptions { Seed = 4 });
        model.train();
        using var outputs = model.Forward(randn([3, 1, 32, 32, 32]));
        Assert.Equal([3L, 32], outputs.Embedding.shape);
        Assert.Equal([3L, 1, 128], outputs.Local.shape);
        Assert.Equal([1L, 32, 32, 32], model.ImageInputShape);
    }

    [Fact]
    public void ATrainerStepLeavesNoTensorAlive()
    {
        // The tiny recipe's objective: contrastive term on, encoder batch-norm statistics frozen.
        var tiny = LvmMedConfig.Tiny();
        using var model = (LvmMedModel)ModelRegistry.Create(tiny with { Matching = tiny.Matching with { Neighbors = 3 } }, new ModelCreateOptions { Seed = 3 });
        using var objective = new LvmMedObjective(model, freezeEncoderNormStatistics: true);
        using var trainer = new Trainer(objective, new TrainerOptions { Optimizer = new OptimizerSettings { LearningRate = 1e-3 }, Steps = 10 });
        using var views = rand(8, 1, 64, 64);
        using var other = views.flip(-1);
        void Step()
        {
            using var batch = new TrainingBatch(views.alias(), other.alias(), null, null, new bool[8]);
            trainer.TrainStep([batch], 1e-3);
        }

        Step();
        var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (var i = 0; i < 3; i++)
        {
            Step();
        }

        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        Assert.Contains(trainer.Parameters.All, p => p.grad is not null);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void FrozenEncoderNormStatisticsStayAtInitialisationWhileTheContrastiveTermTrains(bool freeze)
    {
        using var model = (LvmMedModel)ModelRegistry.Create("lvmmed", ModelRegistry.Tiny, new ModelCreateOptions { Seed = 5 });
        Assert.Equal(1, model.Sizes.Matching.ContrastiveWeight);
        using var objective = new LvmMedObjective(model, freezeEncoderNormStatistics: freeze);
        Assert.Equal(freeze, objective.FreezesEncoderNormStatistics);
        var norms = FrozenNormAssert.Norms(model.ImageEncoder);
        using var trainer = new Trainer(objective, new TrainerOptions { Optimizer = new OptimizerSettings { LearningRate = 1e-2 }, Steps = 2 });
        using var views = rand(6, 1, 64, 64);
        using var other = views.flip(-1);
        model.train(); // as Trainer.Fit does before its steps
        var terms = new List<string>();
        for (var i = 0; i < 2; i++)
        {
            using var batch = new TrainingBatch(views.alias(), other.alias(), null, null, new bool[6]);
            var step = trainer.TrainStep([batch], 1e-2);
            terms = [.. step.Keys];
        }

        Assert.Contains("hamming", terms);
        Assert.Contains("contrastive", terms);
        FrozenNormAssert.AfterTraining(norms, freeze);
        var recipe = TrainingRecipe.Resolve("lvmmed");
        using var recipeModel = recipe.CreateModel(WordPieceTextTokenizer.FromVocabularyFile(TestData.File("bert/vocab.txt")));
        using var recipeObjective = (LvmMedObjective)recipe.Plugin!.CreateObjective(recipe, recipeModel, null);
        Assert.True(recipeObjective.FreezesEncoderNormStatistics);
        Assert.Equal(1, ((LvmMedModel)recipeModel.Module).Sizes.Matching.ContrastiveWeight);
    }

    private static int[] Ints(Tensor t) => t.to(ScalarType.Float64).data<double>().Select(v => (int)Math.Round(v)).ToArray();

    private static Tensor Get(string key) => Golden.Value.TryGetValue(key, out var t) ? t : throw new KeyNotFoundException($"golden key {key}");

    /// <summary>The tiny model and loss with the golden weights and running statistics, in training mode, with an exhaustive
    /// solver (the reference solves the 6-node QAP exactly).</summary>
    private static (LvmMedModel Model, GraphMatchingLoss Loss) Loaded(ScalarType dtype)
    {
        var model = (LvmMedModel)ModelRegistry.Create(LvmMedConfig.Tiny());
        var loss = new GraphMatchingLoss(new GraphMatchingLossOptions
        {
            Order = GraphMatchingOrder.Second,
            Neighbors = 2,
            Solver = new ExhaustiveMatchingSolver(),
            Lambda = 80,
            LocalWeight = 0.5,
            EdgeWeight = 0.2,
            MessagePassingDim = 32,
        });
        model.to(dtype);
        loss.to(dtype);
        using (no_grad())
        {
            foreach (var (name, p) in model.named_parameters())
            {
                p.copy_(Get($"param/{name}"));
            }

            foreach (var (name, p) in loss.named_parameters())
            {
                p.copy_(Get($"param/{name}"));
            }

            foreach (var (name, b) in model.named_buffers().Where(b => !b.name.EndsWith("num_batches_tracked", StringComparison.Ordinal)))
            {
                b.copy_(Get($"buffer/{name}"));
            }
        }

        model.train();
        return (model, loss);
    }
}

/// <summary>Solves a small matching problem exactly: every permutation in lexicographic order, the first best kept (as the
/// reference's itertools.permutations loop).</summary>
internal sealed class ExhaustiveMatchingSolver : IMatchingSolver
{
    public bool UsesEdges => true;

    public void Solve(MatchingProblem problem, Span<int> colForRow, CancellationToken cancellationToken = default)
    {
        if (problem.Rows != problem.Cols || problem.Rows > 8)
        {
            throw new ArgumentException("The exhaustive solver takes square problems of at most 8 nodes.", nameof(problem));
        }

        var n = problem.Rows;
        var perm = Enumerable.Range(0, n).ToArray();
        int[]? best = null;
        var bestScore = double.NegativeInfinity;
        do
        {
            var score = problem.Objective(perm);
            if (best is null || score > bestScore + 1e-12)
            {
                best = (int[])perm.Clone();
                bestScore = score;
            }
        }
        while (NextPermutation(perm));

        best!.CopyTo(colForRow);
    }

    private static bool NextPermutation(int[] a)
    {
        var i = a.Length - 2;
        while (i >= 0 && a[i] >= a[i + 1])
        {
            i--;
        }

        if (i < 0)
        {
            return false;
        }

        var j = a.Length - 1;
        while (a[j] <= a[i])
        {
            j--;
        }

        (a[i], a[j]) = (a[j], a[i]);
        Array.Reverse(a, i + 1, a.Length - i - 1);
        return true;
    }
}
