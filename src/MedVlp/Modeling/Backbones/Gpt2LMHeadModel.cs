using MedVlp.Modeling.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Modeling.Backbones;

/// <summary>Logits and, when labels were given, the language-modelling loss. Owns its tensors.</summary>
public sealed class CausalLMOutput : IDisposable
{
    internal CausalLMOutput(Tensor logits, Tensor? loss)
    {
        Logits = logits;
        Loss = loss;
    }

    /// <summary>Next-token logits (B x T x vocabulary).</summary>
    public Tensor Logits { get; }

    /// <summary>Mean cross-entropy of the shifted labels (tokens labelled -100 ignored), or null without labels.</summary>
    public Tensor? Loss { get; }

    /// <summary>Releases the tensors.</summary>
    public void Dispose()
    {
        Logits.Dispose();
        Loss?.Dispose();
    }
}

/// <summary>
/// A GPT-2 causal language model laid out as Hugging Face's <c>GPT2LMHeadModel</c>: <c>transformer</c>
/// (<see cref="Gpt2Model"/>: <c>wte</c>, <c>wpe</c>, <c>h.{i}.ln_1</c>, <c>attn.c_attn</c>, <c>attn.c_proj</c>,
/// <c>ln_2</c>, <c>mlp.c_fc</c>, <c>mlp.c_proj</c>, <c>ln_f</c>) and <c>lm_head</c>, tied to <c>wte</c> by default
/// (then the state dict holds no <c>lm_head.weight</c>, as Hugging Face's safetensors files do not). Its projections are
/// <c>Linear</c> ([out, in]); Hugging Face's <c>Conv1D</c> weights are [in, out] and are transposed when a checkpoint is
/// mapped. Takes token ids or <c>inputs_embeds</c>, an attention mask and labels (shifted cross-entropy, -100 ignored),
/// and decodes incrementally with a <see cref="KeyValueCache"/>.
/// </summary>
public sealed class Gpt2LMHeadModel : Module<Tensor, Tensor>, INoWeightDecay
{
    /// <summary>The label that the loss ignores (padding, prompt or image positions).</summary>
    public const long IgnoreIndex = -100;

#pragma warning disable IDE1006, SA1300 // State-dict names follow Hugging Face.
    private readonly Gpt2Model transformer;
    private readonly Linear? lm_head;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the model with GPT-2's initialisation (normal std 0.02, <c>c_proj</c> scaled by 1/sqrt(2 n_layer)) unless on <c>meta</c>.</summary>
    public Gpt2LMHeadModel(Gpt2Config config, Device? device = null)
        : base(nameof(Gpt2LMHeadModel))
    {
        ArgumentNullException.ThrowIfNull(config);
        transformer = new Gpt2Model(config, device);
        lm_head = config.TieWordEmbeddings ? null : Linear(config.NEmbd, config.VocabSize, hasBias: false, device: device);
        RegisterComponents();
        if (device is null || device.type != DeviceType.META)
        {
            using var noGrad = no_grad();
            foreach (var (name, m) in named_modules())
            {
                switch (m)
                {
                    case Linear linear:
                        init.normal_(linear.weight, 0, name.EndsWith("c_proj", StringComparison.Ordinal) ? 0.02 / Math.Sqrt(2.0 * Math.Max(1, config.NLayer)) : 0.02);
                        if (linear.bias is not null)
                        {
                            init.zeros_(linear.bias);
                        }

                        break;
                    case Embedding embedding:
                        init.normal_(embedding.weight, 0, 0.02);
                        break;
                    case LayerNorm norm:
                        init.ones_(norm.weight);
                        init.zeros_(norm.bias);
                        break;
                }
            }
        }
    }

    /// <summary>The configuration.</summary>
    public Gpt2Config Config => transformer.Config;

    /// <summary>The transformer.</summary>
    public Gpt2Model Transformer => transformer;

    /// <summary>The vocabulary projection's weight (vocabulary x n_embd): <c>lm_head.weight</c>, or the token embedding when tied.</summary>
    public Tensor OutputEmbeddingWeight => lm_head?.weight ?? transformer.TokenEmbeddings.weight!;

    /// <summary>Logits (B x T x vocabulary) of token ids.</summary>
    public override Tensor forward(Tensor inputIds)
    {
        var output = Compute(inputIds, null); // no labels: the logits are all it holds
        return output.Logits;
    }

    /// <summary>Logits and optional loss.</summary>
    /// <param name="inputIds">Token ids (B x T), or null when <paramref name="inputsEmbeds"/> is given.</param>
    /// <param name="inputsEmbeds">Token vectors (B x T x n_embd).</param>
    /// <param name="attentionMask">(B x (cached + T)), 1 = token, 0 = padding.</param>
    /// <param name="labels">(B x T) target ids aligned with the inputs (the model shifts them), -100 where ignored.</param>
    /// <param name="positionIds">Explicit positions.</param>
    /// <param name="cache">Key/value cache, appended to.</param>
    public CausalLMOutput Compute(Tensor? inputIds, Tensor? inputsEmbeds, Tensor? attentionMask = null, Tensor? labels = null, Tensor? positionIds = null, KeyValueCache? cache = null)
    {
        using var scope = NewDisposeScope();
        var hidden = transformer.forward(inputIds, inputsEmbeds, attentionMask, positionIds, cache);
        var logits = lm_head is null ? F.linear(hidden, transformer.TokenEmbeddings.weight!) : lm_head.forward(hidden);
        Tensor? loss = null;
        if (labels is not null)
        {
            if (labels.Dimensions != 2 || labels.shape[0] != logits.shape[0] || labels.shape[1] != logits.shape[1])
            {
                throw new ArgumentException($"Labels must be (batch x tokens) = [{logits.shape[0]}, {logits.shape[1]}], got [{string.Join(", ", labels.shape)}].", nameof(labels));
            }

            var length = logits.shape[1];
            var shiftedLogits = logits.narrow(1, 0, length - 1).reshape(-1, logits.shape[2]);
            var shiftedLabels = labels.narrow(1, 1, length - 1).reshape(-1);
            loss = F.cross_entropy(shiftedLogits, shiftedLabels, ignore_index: IgnoreIndex);
            scope.MoveToOuter(loss);
        }

        return new CausalLMOutput(scope.MoveToOuter(logits), loss);
    }

    /// <summary>
    /// Greedy decoding with a key/value cache: runs the prompt (ids or <c>inputs_embeds</c>, right-aligned; a mask marks
    /// left padding), then appends the arg-max token <paramref name="maxNewTokens"/> times or until every row has
    /// produced <paramref name="endOfText"/>. Returns the new token ids (B x n), padded with <paramref name="endOfText"/>
    /// after a row's end.
    /// </summary>
    public Tensor GenerateGreedy(Tensor? inputIds, Tensor? inputsEmbeds, Tensor? attentionMask, int maxNewTokens, long endOfText = 50256, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxNewTokens);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var cache = new KeyValueCache(Config.NLayer);
        var batch = (inputIds ?? inputsEmbeds)!.shape[0];
        var promptLength = (inputIds ?? inputsEmbeds)!.shape[1];
        var device = (inputIds ?? inputsEmbeds)!.device;
        var mask = attentionMask ?? ones(batch, promptLength, ScalarType.Int64, device);
        // Positions count real tokens only, so left padding does not shift them (as Hugging Face's generate does).
        var positions = (mask.cumsum(1) - 1).clamp_min(0);
        var output = Compute(inputIds, inputsEmbeds, mask, null, positions, cache);
        var next = output.Logits.select(1, -1).argmax(-1);
        output.Dispose();
        var finished = next.eq(endOfText);
        var generated = new List<Tensor> { next };
        for (var step = 1; step < maxNewTokens && !finished.all().item<bool>(); step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            mask = cat([mask, ones(batch, 1, mask.dtype, device)], 1);
            var position = mask.sum(1, keepdim: true) - 1;
            using var stepOutput = Compute(next.unsqueeze(1), null, mask, null, position, cache);
            next = stepOutput.Logits.select(1, -1).argmax(-1).masked_fill(finished, endOfText);
            finished = finished.logical_or(next.eq(endOfText));
            generated.Add(next);
        }

        return scope.MoveToOuter(stack(generated, 1));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}
