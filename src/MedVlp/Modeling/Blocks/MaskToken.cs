using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Blocks;

/// <summary>
/// A learned <c>mask_token</c> (1 x 1 x width, normal std 0.02) for masked image modelling: replaces the tokens
/// selected by a boolean (B x T) mask.
/// </summary>
public sealed class MaskToken : Module<Tensor, Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow BEiT / timm.
    private readonly Parameter mask_token;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the token.</summary>
    public MaskToken(int width, Device? device = null)
        : base(nameof(MaskToken))
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        mask_token = new Parameter(zeros([1, 1, width], device: device));
        RegisterComponents();
        if (device is null || device.type != DeviceType.META)
        {
            using var noGrad = no_grad();
            init.normal_(mask_token, 0, 0.02);
        }
    }

    /// <summary>(B x T x width) tokens with those where <paramref name="mask"/> (B x T, bool) is true replaced by the mask token.</summary>
    public override Tensor forward(Tensor tokens, Tensor mask)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(mask);
        if (mask.Dimensions != 2 || mask.shape[0] != tokens.shape[0] || mask.shape[1] != tokens.shape[1])
        {
            throw new ArgumentException($"The mask must be (batch x tokens) = [{tokens.shape[0]}, {tokens.shape[1]}], got [{string.Join(", ", mask.shape)}].", nameof(mask));
        }

        using var scope = NewDisposeScope();
        return scope.MoveToOuter(where(mask.to(ScalarType.Bool).unsqueeze(-1), mask_token.to(tokens.dtype), tokens));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => ["mask_token"];
}
