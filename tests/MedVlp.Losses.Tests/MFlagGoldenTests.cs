using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Losses.Tests;

/// <summary>M-FLAG's orthogonality and alignment losses against PyTorch (tests/golden/make_loss_golden.py).</summary>
public sealed class MFlagGoldenTests
{
    public static IEnumerable<object[]> OrthCases => Golden.Names("orth");

    public static IEnumerable<object[]> AlignCases => Golden.Names("align");

    [Theory]
    [MemberData(nameof(OrthCases))]
    public void OrthogonalityLossMatchesTorch(string name)
    {
        var c = Golden.Get(name);
        using var scope = NewDisposeScope();
        var z = c.Input("z");
        using var loss = new OrthogonalityLoss(new OrthogonalityLossOptions { OffDiagonalWeight = c.Param("off_diagonal_weight"), Scale = c.Param("scale") });
        using var output = loss.call(z);
        Golden.AssertOutput(c, output);
        output.Total.backward();
        Golden.AssertClose(c.Grad("z"), z.grad, name + " dZ");
    }

    [Fact]
    public void OrthogonalityDefaultsAreTheReleasedCode()
    {
        var c = Golden.Get("orth/8x16/released");
        using var scope = NewDisposeScope();
        using var loss = new OrthogonalityLoss();
        using var output = loss.call(c.Input("z"));
        Golden.AssertClose(c.Value, output.Total.ToDouble(), "released defaults");
        var paper = Golden.Get("orth/8x16/paper");
        using var paperLoss = new OrthogonalityLoss(OrthogonalityLossOptions.Paper);
        using var paperOutput = paperLoss.call(paper.Input("z"));
        Golden.AssertClose(paper.Value, paperOutput.Total.ToDouble(), "paper variant");
    }

    [Theory]
    [MemberData(nameof(AlignCases))]
    public void AlignmentLossMatchesTorch(string name)
    {
        var c = Golden.Get(name);
        using var scope = NewDisposeScope();
        var image = c.Input("image");
        var text = c.Input("text");
        using var loss = new AlignmentLoss();
        using var output = loss.call(new EmbeddingPair(image, text));
        Golden.AssertOutput(c, output);
        output.Total.backward();
        Golden.AssertClose(c.Grad("image"), image.grad, name + " dImage");
        Golden.AssertClose(c.Grad("text"), text.grad, name + " dText");
    }
}
