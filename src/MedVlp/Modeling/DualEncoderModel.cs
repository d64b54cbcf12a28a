using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Modeling;

/// <summary>
/// A CLIP-style dual encoder for volumes and reports, laid out as Hugging Face's <c>CLIPModel</c>: <c>vision_model</c>
/// (<see cref="VolumeTransformer"/>), <c>text_model</c> (<see cref="BertModel"/>), <c>visual_projection</c>,
/// <c>text_projection</c> (no bias) and the learnable <c>logit_scale</c> (log of the inverse temperature).
/// </summary>
public sealed class DualEncoderModel : Module
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow Hugging Face CLIPModel.
    private readonly VolumeTransformer vision_model;
    private readonly BertModel text_model;
    private readonly Linear visual_projection;
    private readonly Linear text_projection;
    private readonly Parameter logit_scale;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the model with freshly initialised weights on <paramref name="device"/>.</summary>
    public DualEncoderModel(VisionLanguageModelConfig config, Device? device = null)
        : base(nameof(DualEncoderModel))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        vision_model = new VolumeTransformer(config.Volume, device);
        text_model = new BertModel(config.Text, device);
        visual_projection = Linear(config.Volume.Width, config.EmbeddingDim, hasBias: false, device: device);
        text_projection = Linear(config.Text.HiddenSize, config.EmbeddingDim, hasBias: false, device: device);
        logit_scale = new Parameter(full([], Math.Log(1 / config.InitialTemperature), device: device));
        RegisterComponents();
        if (device is null || device.type != DeviceType.META)
        {
            using var noGrad = no_grad();
            init.normal_(visual_projection.weight, 0, Math.Pow(config.Volume.Width, -0.5));
            init.normal_(text_projection.weight, 0, Math.Pow(config.Text.HiddenSize, -0.5));
        }
    }

    /// <summary>The configuration.</summary>
    public VisionLanguageModelConfig Config { get; }

    /// <summary>The learnable log inverse temperature (0-d).</summary>
    public Parameter LogitScale => logit_scale;

    /// <summary>exp(logit_scale), clamped to <see cref="VisionLanguageModelConfig.MaxLogitScale"/>.</summary>
    public Tensor ScaleFactor()
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(logit_scale.exp().clamp_max(Config.MaxLogitScale));
    }

    /// <summary>L2-normalised volume embeddings (B x E) for preprocessed volumes (B x C x S x S x S).</summary>
    public Tensor EncodeVolumes(Tensor volumes)
    {
        using var scope = NewDisposeScope();
        var features = visual_projection.forward(vision_model.forward(volumes));
        return scope.MoveToOuter(F.normalize(features, dim: -1));
    }

    /// <summary>L2-normalised text embeddings (B x E) for token ids and attention mask (B x T).</summary>
    public Tensor EncodeTexts(Tensor inputIds, Tensor attentionMask)
    {
        using var scope = NewDisposeScope();
        var hidden = text_model.forward(inputIds, attentionMask);
        Tensor pooled;
        if (Config.TextPooling == TextPooling.Mean)
        {
            var mask = attentionMask.to(hidden.dtype).unsqueeze(-1);
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1);
        }
        else
        {
            pooled = hidden[.., 0];
        }

        return scope.MoveToOuter(F.normalize(text_projection.forward(pooled), dim: -1));
    }
}
