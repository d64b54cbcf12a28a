using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Losses.Tests;

// The sample from src/MedVlp.Losses/README.md: a custom loss in a dozen lines.
// Wang & Isola's uniformity loss, log mean exp(-t |x_i - x_j|^2) over the normalised embeddings.
public sealed class UniformityLoss(double t = 2.0) : VlpLoss<Tensor>(nameof(UniformityLoss))
{
    protected override LossOutput ComputeLoss(Tensor embeddings)
    {
        var x = nn.functional.normalize(embeddings, dim: -1);
        var squaredDistances = x.matmul(x.t()).mul(-2).add(2);              // |x_i - x_j|^2 on the unit sphere
        var offDiagonal = ones_like(squaredDistances).triu(1).to_type(ScalarType.Bool);
        var loss = squaredDistances.masked_select(offDiagonal).mul(-t).exp().mean().log();
        return new LossOutput(loss);                                         // one term, "loss"
    }
}

/// <summary>The README's custom-loss sample runs, equals its formula, trains, and composes with the built-in losses.</summary>
public sealed class CustomLossSampleTests
{
    [Fact]
    public void UniformityLossEqualsItsFormula()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(4);
        var z = randn(6, 5, dtype: ScalarType.Float64);
        using var loss = new UniformityLoss();
        using var output = loss.call(z);

        var x = z.data<double>().ToArray();
        var sum = 0.0;
        var pairs = 0;
        for (var i = 0; i < 6; i++)
        {
            for (var j = i + 1; j < 6; j++)
            {
                double ni = 0, nj = 0, d2 = 0;
                for (var k = 0; k < 5; k++)
                {
                    ni += x[(i * 5) + k] * x[(i * 5) + k];
                    nj += x[(j * 5) + k] * x[(j * 5) + k];
                }

                for (var k = 0; k < 5; k++)
                {
                    var diff = (x[(i * 5) + k] / Math.Sqrt(ni)) - (x[(j * 5) + k] / Math.Sqrt(nj));
                    d2 += diff * diff;
                }

                sum += Math.Exp(-2 * d2);
                pairs++;
            }
        }

        Assert.Equal(Math.Log(sum / pairs), output.Total.ToDouble(), 1e-10);
    }

    [Fact]
    public void CustomLossComposesWithClipLossAndTrains()
    {
        random.manual_seed(5);
        using var scope = NewDisposeScope();
        var image = new TorchSharp.Modules.Parameter(randn(16, 8));
        var text = new TorchSharp.Modules.Parameter(randn(16, 8));
        var logScale = new TorchSharp.Modules.Parameter(tensor(MathF.Log(10f)));
        using var objective = new CompositeLoss<ContrastiveInput>("objective")
            .Add("clip", new ClipLoss())
            .Add("uniformity", new UniformityLoss(), b => b.ImageFeatures, weight: 0.1);
        var optimizer = optim.Adam([image, text, logScale], 0.05);
        double first = 0, last = 0;
        for (var step = 0; step < 30; step++)
        {
            using var stepScope = NewDisposeScope();
            optimizer.zero_grad();
            var input = new ContrastiveInput(nn.functional.normalize(image, dim: -1), nn.functional.normalize(text, dim: -1), logScale.exp());
            using var output = objective.call(input);
            Assert.Equal(["clip", "clip/image_to_text", "clip/text_to_image", "uniformity"], output.Terms.Keys);
            output.Total.backward();
            optimizer.step();
            last = output.Total.ToDouble();
            if (step == 0)
            {
                first = last;
            }
        }

        Assert.True(last < first, $"the composite objective did not fall: {first} -> {last}");
    }
}
