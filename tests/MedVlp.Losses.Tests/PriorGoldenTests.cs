using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Losses.Tests;

/// <summary>PRIOR's local alignment module and losses against PyTorch (tests/golden/make_loss_golden.py).</summary>
public sealed class PriorGoldenTests
{
    public static IEnumerable<object[]> LocalCases => Golden.Names("prior_local");

    public static IEnumerable<object[]> SimSiamCases => Golden.Names("prior_simsiam");

    public static IEnumerable<object[]> SentenceCases => Golden.Names("prior_sentence");

    public static IEnumerable<object[]> PrototypeCases => Golden.Names("prior_prototype");

    public static IEnumerable<object[]> MatchingCases => Golden.Names("prior_matching");

    [Theory]
    [MemberData(nameof(LocalCases))]
    public void LocalAlignmentModuleMatchesTorch(string name)
    {
        var c = Golden.Get(name);
        using var scope = NewDisposeScope();
        var image = c.Input("image");
        var sentences = c.Input("sentences");
        var mask = c.Input("mask", false).to_type(ScalarType.Bool);
        using var module = new LocalAlignmentModule((int)image.shape[2]);
        module.to(ScalarType.Float64);
        c.LoadParameters(module);
        var output = module.call(new LocalAlignmentInput(image, sentences, mask));

        // Padded sentences' own rows are undefined (the reference slices them off): compare real rows only.
        var rowMask = mask.unsqueeze(2).to_type(ScalarType.Float64);
        Golden.AssertClose(c.Output("image_context"), output.ImageContext, name + " c_i");
        Golden.AssertClose(c.Output("image_attention"), output.ImageAttention, name + " A_it");
        Golden.AssertClose(c.Output("text_context"), output.TextContext * rowMask, name + " c_t");
        Golden.AssertClose(c.Output("text_attention"), output.TextAttention * rowMask, name + " A_ti");

        var value = (output.ImageContext * c.Input("r1", false)).sum() + (output.TextContext * c.Input("r2", false)).sum();
        Golden.AssertClose(c.Value, value.ToDouble(), name + " value");
        value.backward();
        Golden.AssertClose(c.Grad("image"), image.grad, name + " dImage");
        Golden.AssertClose(c.Grad("sentences"), sentences.grad, name + " dSentences");
        var parameters = module.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Golden.AssertClose(c.Grad("query1.weight"), parameters["query1.weight"].grad, name + " dQuery1");
        Golden.AssertClose(c.Grad("key2.bias"), parameters["key2.bias"].grad, name + " dKey2Bias");
        Golden.AssertClose(c.Grad("value1.weight"), parameters["value1.weight"].grad, name + " dValue1");
    }

    [Fact]
    public void LocalAlignmentParameterNamesFollowTheReleasedCode()
    {
        using var module = new LocalAlignmentModule(8);
        var names = module.named_parameters().Select(p => p.name).Order(StringComparer.Ordinal).ToArray();
        string[] expected = ["key1.bias", "key1.weight", "key2.bias", "key2.weight", "query1.bias", "query1.weight", "query2.bias", "query2.weight", "value1.bias", "value1.weight", "value2.bias", "value2.weight"];
        Assert.Equal(expected, names);
    }

    [Theory]
    [MemberData(nameof(SimSiamCases))]
    public void LocalImageAlignmentLossMatchesTorch(string name)
    {
        var c = Golden.Get(name);
        using var scope = NewDisposeScope();
        var image = c.Input("image");
        var context = c.Input("context");
        using var loss = new LocalImageAlignmentLoss((int)image.shape[2]);
        loss.to(ScalarType.Float64);
        c.LoadParameters(loss);
        using var output = loss.call(new EmbeddingPair(image, context));
        Golden.AssertOutput(c, output);
        output.Total.backward();
        Golden.AssertClose(c.Grad("image"), image.grad, name + " dImage");
        Golden.AssertClose(c.Grad("context"), context.grad, name + " dContext");
        var parameters = loss.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Golden.AssertClose(c.Grad("predictor.0.weight"), parameters["predictor.0.weight"].grad, name + " dPredictor0");
        Golden.AssertClose(c.Grad("predictor.2.bias"), parameters["predictor.2.bias"].grad, name + " dPredictor2Bias");
    }

    [Theory]
    [MemberData(nameof(SentenceCases))]
    public void SentenceContrastiveLossMatchesTorch(string name)
    {
        var c = Golden.Get(name);
        using var scope = NewDisposeScope();
        var sentences = c.Input("sentences");
        var contexts = c.Input("contexts");
        var scale = c.Input("logit_scale");
        var mask = c.Input("mask", false).to_type(ScalarType.Bool);
        using var loss = new SentenceContrastiveLoss();
        using var output = loss.call(new SentenceContrastiveInput(sentences, contexts, scale, mask));
        Golden.AssertOutput(c, output);
        output.Total.backward();
        Golden.AssertClose(c.Grad("sentences"), sentences.grad, name + " dSentences");
        Golden.AssertClose(c.Grad("contexts"), contexts.grad, name + " dContexts");
        Golden.AssertClose(c.Grad("logit_scale"), scale.grad, name + " dScale");
    }

    [Theory]
    [MemberData(nameof(PrototypeCases))]
    public void NoiseFreePrototypeBankAndL1MatchTorch(string name)
    {
        var c = Golden.Get(name);
        using var scope = NewDisposeScope();
        var x = c.Input("x");
        var e = c.Input("prototypes");
        using var bank = new SentencePrototypeBank(new SentencePrototypeBankOptions
        {
            Prototypes = (int)e.shape[0],
            Dimension = (int)e.shape[1],
            Temperature = c.Param("temperature"),
            Noise = PrototypeNoise.None,
        });
        bank.to(ScalarType.Float64);
        c.LoadParameters(bank);
        var assignment = bank.call(x);
        Golden.AssertClose(c.Output("reconstructed"), assignment.Reconstructed, name + " x~");
        Golden.AssertClose(c.Output("logits"), assignment.Logits, name + " logits");
        Golden.AssertClose(c.Output("weights"), assignment.Weights, name + " weights");
        using var loss = new SentencePrototypeLoss();
        using var output = loss.call(new PrototypeLossInput(x, assignment.Reconstructed));
        Golden.AssertOutput(c, output);
        output.Total.backward();
        Golden.AssertClose(c.Grad("x"), x.grad, name + " dX");
        Golden.AssertClose(c.Grad("prototypes"), bank.Prototypes.grad, name + " dE");
    }

    [Theory]
    [MemberData(nameof(MatchingCases))]
    public void PrototypeMatchingLossMatchesTorchWithScipyAssignment(string name)
    {
        var c = Golden.Get(name);
        using var scope = NewDisposeScope();
        var predictions = c.Input("predictions");
        var targets = c.Input("targets");
        var logits = c.Input("target_logits");
        var prototypes = c.Input("prototypes");
        using var loss = new PrototypeMatchingLoss(new PrototypeMatchingLossOptions { L1Weight = c.Param("l1_weight"), KlWeight = c.Param("kl_weight") });
        var real = c.Ints("real");
        var m = (int)predictions.shape[1];

        // Predictions matched to a real target must agree with scipy; zero-padded targets are ties, any of them is optimal.
        var expected = c.Output("assignment").Data;
        var actual = loss.Match(predictions, targets).data<long>().ToArray();
        for (var i = 0; i < expected.Length; i++)
        {
            var sample = i / m;
            if (expected[i] < real[sample])
            {
                Assert.Equal((long)expected[i], actual[i]);
            }
            else
            {
                Assert.True(actual[i] >= real[sample], $"{name}: prediction {i} should match a padded target, got {actual[i]}");
            }
        }

        using var output = loss.call(new PrototypeMatchingInput(predictions, targets, logits, prototypes));
        Golden.AssertOutput(c, output);
        output.Total.backward();
        Golden.AssertClose(c.Grad("predictions"), predictions.grad, name + " dG");
        Golden.AssertClose(c.Grad("prototypes"), prototypes.grad, name + " dE");

        // Gradients of the real target rows (a padded row's gradient depends on which tied prediction took it).
        var realRows = zeros(predictions.shape[0], m, 1, dtype: ScalarType.Float64);
        for (var s = 0; s < real.Length; s++)
        {
            realRows[s, ..real[s]] = 1.0;
        }

        Golden.AssertClose(Masked(c.Grad("targets"), realRows), targets.grad! * realRows, name + " dT");
        Golden.AssertClose(Masked(c.Grad("target_logits"), realRows), logits.grad! * realRows, name + " dLgt");
    }

    private static (long[] Shape, double[] Data) Masked((long[] Shape, double[] Data) expected, Tensor rowMask)
    {
        using var t = tensor(expected.Data, expected.Shape, ScalarType.Float64) * rowMask;
        return (expected.Shape, t.data<double>().ToArray());
    }
}
