using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Losses.Tests;

/// <summary>ClipLoss, SigLipLoss and the BLIP-2 ITC against PyTorch (tests/golden/make_loss_golden.py), value and gradients.</summary>
public sealed class ContrastiveGoldenTests
{
    public static IEnumerable<object[]> ClipCases => Golden.Names("clip");

    public static IEnumerable<object[]> GatherCases => Golden.Names("clip_gather");

    public static IEnumerable<object[]> SigLipCases => Golden.Names("siglip");

    public static IEnumerable<object[]> ItcCases => Golden.Names("itc");

    [Theory]
    [MemberData(nameof(ClipCases))]
    public void ClipLossMatchesTorch(string name)
    {
        var c = Golden.Get(name);
        using var scope = NewDisposeScope();
        var image = c.Input("image");
        var text = c.Input("text");
        var scale = c.Input("logit_scale");
        using var loss = new ClipLoss(new ClipLossOptions { LabelSmoothing = c.Param("label_smoothing") });
        using var output = loss.call(new ContrastiveInput(image, text, scale));
        Golden.AssertOutput(c, output);
        output.Total.backward();
        Golden.AssertClose(c.Grad("image"), image.grad, name + " dImage");
        Golden.AssertClose(c.Grad("text"), text.grad, name + " dText");
        Golden.AssertClose(c.Grad("logit_scale"), scale.grad, name + " dScale");
    }

    [Theory]
    [MemberData(nameof(ClipCases))]
    public void ChunkedClipLossMatchesTorch(string name)
    {
        var c = Golden.Get(name);
        using var scope = NewDisposeScope();
        var image = c.Input("image");
        var text = c.Input("text");
        var scale = c.Input("logit_scale");
        using var loss = new ChunkedClipLoss(new ClipLossOptions { LabelSmoothing = c.Param("label_smoothing"), ChunkSize = 3 });
        using var output = loss.call(new ContrastiveInput(image, text, scale));
        Golden.AssertOutput(c, output);
        output.Total.backward();
        Golden.AssertClose(c.Grad("image"), image.grad, name + " dImage");
        Golden.AssertClose(c.Grad("text"), text.grad, name + " dText");
        Golden.AssertClose(c.Grad("logit_scale"), scale.grad, name + " dScale");
    }

    [Theory]
    [MemberData(nameof(GatherCases))]
    public void ClipLossWithGathererMatchesTorch(string name)
    {
        var c = Golden.Get(name);
        using var scope = NewDisposeScope();
        var image = c.Input("image");
        var text = c.Input("text");
        var scale = c.Input("logit_scale");
        var gatherer = new FakeTwoProcessGatherer(image, c.Input("other_image", false), c.Input("other_text", false), rank: (int)c.Param("rank"));
        using var loss = new ClipLoss(new ClipLossOptions { LocalLoss = c.Flag("local_loss"), Gatherer = gatherer });
        using var output = loss.call(new ContrastiveInput(image, text, scale));
        Golden.AssertOutput(c, output);
        output.Total.backward();
        Golden.AssertClose(c.Grad("image"), image.grad, name + " dImage");
        Golden.AssertClose(c.Grad("text"), text.grad, name + " dText");
        Golden.AssertClose(c.Grad("logit_scale"), scale.grad, name + " dScale");
    }

    [Theory]
    [MemberData(nameof(SigLipCases))]
    public void SigLipLossMatchesTorch(string name)
    {
        var c = Golden.Get(name);
        using var scope = NewDisposeScope();
        var image = c.Input("image");
        var text = c.Input("text");
        var scale = c.Input("logit_scale");
        var bias = c.Input("logit_bias");
        using var loss = new SigLipLoss();
        using var output = loss.call(new ContrastiveInput(image, text, scale, bias));
        Golden.AssertOutput(c, output);
        output.Total.backward();
        Golden.AssertClose(c.Grad("image"), image.grad, name + " dImage");
        Golden.AssertClose(c.Grad("text"), text.grad, name + " dText");
        Golden.AssertClose(c.Grad("logit_scale"), scale.grad, name + " dScale");
        Golden.AssertClose(c.Grad("logit_bias"), bias.grad, name + " dBias");
    }

    [Theory]
    [MemberData(nameof(ItcCases))]
    public void QueryContrastiveLossMatchesTorch(string name)
    {
        var c = Golden.Get(name);
        using var scope = NewDisposeScope();
        var queries = c.Input("queries");
        var text = c.Input("text");
        var scale = c.Input("logit_scale");
        using var loss = new QueryContrastiveLoss(new QueryContrastiveLossOptions { LabelSmoothing = c.Param("label_smoothing") });
        using var output = loss.call(new QueryContrastiveInput(queries, text, scale));
        Golden.AssertOutput(c, output);
        output.Total.backward();
        Golden.AssertClose(c.Grad("queries"), queries.grad, name + " dQueries");
        Golden.AssertClose(c.Grad("text"), text.grad, name + " dText");
        Golden.AssertClose(c.Grad("logit_scale"), scale.grad, name + " dScale");
    }

    [Fact]
    public void SigLipLossWithGathererMatchesOpenClipsNeighbourExchange()
    {
        var c = Golden.Get("siglip_gather/rank1");
        using var scope = NewDisposeScope();
        var image = c.Input("image");
        var text = c.Input("text");
        var scale = c.Input("logit_scale");
        var bias = c.Input("logit_bias");
        var otherText = c.Input("other_text", false);
        var gatherer = new PeerGatherer(1, local => cat([otherText, local]));
        using var loss = new SigLipLoss(new SigLipLossOptions { Gatherer = gatherer });
        using var output = loss.call(new ContrastiveInput(image, text, scale, bias));
        Golden.AssertOutput(c, output);
        output.Total.backward();
        Golden.AssertClose(c.Grad("image"), image.grad, "dImage");
        Golden.AssertClose(c.Grad("text"), text.grad, "dText");
        Golden.AssertClose(c.Grad("logit_scale"), scale.grad, "dScale");
        Golden.AssertClose(c.Grad("logit_bias"), bias.grad, "dBias");
    }

    [Fact]
    public void QueryContrastiveLossWithGathererMatchesBlip2()
    {
        var c = Golden.Get("itc_gather/rank1");
        using var scope = NewDisposeScope();
        var queries = c.Input("queries");
        var text = c.Input("text");
        var scale = c.Input("logit_scale");
        var otherQueries = c.Input("other_queries", false);
        var otherText = c.Input("other_text", false);
        var gatherer = new PeerGatherer(1, local => cat([local.dim() == 3 ? otherQueries : otherText, local]));
        using var loss = new QueryContrastiveLoss(new QueryContrastiveLossOptions { LabelSmoothing = c.Param("label_smoothing"), Gatherer = gatherer });
        using var output = loss.call(new QueryContrastiveInput(queries, text, scale));
        Golden.AssertOutput(c, output);
        output.Total.backward();
        Golden.AssertClose(c.Grad("queries"), queries.grad, "dQueries");
        Golden.AssertClose(c.Grad("text"), text.grad, "dText");
        Golden.AssertClose(c.Grad("logit_scale"), scale.grad, "dScale");
    }

    [Fact]
    public void ItcDefaultsToLabelSmoothingPointOne()
    {
        var c = Golden.Get("itc/3x4x8/ls0.1");
        using var scope = NewDisposeScope();
        using var loss = new QueryContrastiveLoss();
        using var output = loss.call(new QueryContrastiveInput(c.Input("queries"), c.Input("text"), c.Input("logit_scale")));
        Golden.AssertClose(c.Value, output.Total.ToDouble(), "default smoothing");
    }

    [Fact]
    public void SigLipWithoutBiasIsRejected()
    {
        using var scope = NewDisposeScope();
        using var loss = new SigLipLoss();
        var ex = Assert.Throws<ArgumentException>(() => loss.call(new ContrastiveInput(randn(3, 4), randn(3, 4), tensor(10f))));
        Assert.Contains("LogitBias", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MismatchedShapesAreRejected()
    {
        using var scope = NewDisposeScope();
        using var loss = new ClipLoss();
        var ex = Assert.Throws<ArgumentException>(() => loss.call(new ContrastiveInput(randn(3, 4), randn(3, 5), tensor(10f))));
        Assert.Contains("same shape", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>Rank <c>rank</c> of two: the other rank's features are fixed tensors; the local slice keeps its gradient.</summary>
    private sealed class FakeTwoProcessGatherer(Tensor localImage, Tensor otherImage, Tensor otherText, int rank) : IFeatureGatherer
    {
        public int Rank => rank;

        public int WorldSize => 2;

        public Tensor AllGather(Tensor local)
        {
            var other = ReferenceEquals(local, localImage) ? otherImage : otherText;
            return rank == 0 ? cat([local, other]) : cat([other, local]);
        }
    }

    /// <summary>A process of a two-process job whose gather is given as a function.</summary>
    private sealed class PeerGatherer(int rank, Func<Tensor, Tensor> gather) : IFeatureGatherer
    {
        public int Rank => rank;

        public int WorldSize => 2;

        public Tensor AllGather(Tensor local) => gather(local);
    }
}
