using MedVlp.Modeling.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Backbones;

/// <summary>
/// GPT-2's transformer (Hugging Face <c>GPT2Model</c>, the <c>transformer</c> of <c>GPT2LMHeadModel</c>): <c>wte</c>,
/// <c>wpe</c>, <c>h.{i}</c> (<see cref="Gpt2Block"/>), <c>ln_f</c>. Accepts token ids or <c>inputs_embeds</c>, an
/// attention mask over cached + new tokens, and a <see cref="KeyValueCache"/> for incremental decoding.
/// </summary>
public sealed class Gpt2Model : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow Hugging Face.
    private readonly Embedding wte;
    private readonly Embedding wpe;
    private readonly Dropout drop;
    private readonly ModuleList<Gpt2Block> h;
    private readonly LayerNorm ln_f;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the transformer (no initialisation beyond TorchSharp's defaults; see <see cref="Gpt2LMHeadModel"/>).</summary>
    public Gpt2Model(Gpt2Config config, Device? device = null)
        : base(nameof(Gpt2Model))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        wte = Embedding(config.VocabSize, config.NEmbd, device: device);
        wpe = Embedding(config.NPositions, config.NEmbd, device: device);
        drop = Dropout(config.EmbdPdrop);
        var block = new Gpt2BlockOptions
        {
            Width = config.NEmbd,
            Heads = config.NHead,
            Inner = config.NInner ?? 4 * config.NEmbd,
            LayerNormEps = config.LayerNormEpsilon,
            AttentionDropout = config.AttnPdrop,
            ResidualDropout = config.ResidPdrop,
        };
        h = new ModuleList<Gpt2Block>(Enumerable.Range(0, config.NLayer).Select(_ => new Gpt2Block(block, device)).ToArray());
        ln_f = LayerNorm(config.NEmbd, config.LayerNormEpsilon, device: device);
        RegisterComponents();
    }

    /// <summary>The configuration.</summary>
    public Gpt2Config Config { get; }

    /// <summary>The token table (<c>wte</c>), shared with a tied <c>lm_head</c>.</summary>
    public Embedding TokenEmbeddings => wte;

    /// <summary>Final hidden states (B x T x n_embd) of token ids (B x T).</summary>
    public override Tensor forward(Tensor inputIds) => forward(inputIds, null);

    /// <summary>Final hidden states (B x T x n_embd).</summary>
    /// <param name="inputIds">Token ids (B x T), or null when <paramref name="inputsEmbeds"/> is given.</param>
    /// <param name="inputsEmbeds">Token vectors (B x T x n_embd) instead of ids (e.g. projected image queries and a prompt).</param>
    /// <param name="attentionMask">(B x (cached + T)) 1 = token, 0 = padding; all tokens when null.</param>
    /// <param name="positionIds">Positions (B x T or 1 x T); <c>cached .. cached + T - 1</c> when null.</param>
    /// <param name="cache">Key/value cache (one entry per layer), appended to.</param>
    public Tensor forward(Tensor? inputIds, Tensor? inputsEmbeds, Tensor? attentionMask = null, Tensor? positionIds = null, KeyValueCache? cache = null)
    {
        if ((inputIds is null) == (inputsEmbeds is null))
        {
            throw new ArgumentException("Give exactly one of token ids and inputs_embeds.");
        }

        if (cache is not null && cache.Count != h.Count)
        {
            throw new ArgumentException($"The cache has {cache.Count} layers, the model {h.Count}.", nameof(cache));
        }

        using var scope = NewDisposeScope();
        var x = inputsEmbeds ?? wte.forward(inputIds!);
        var length = x.shape[1];
        var past = cache?.Length ?? 0;
        if (past + length > Config.NPositions)
        {
            throw new ArgumentException($"{past} cached + {length} new tokens exceed the {Config.NPositions} positions of this model.");
        }

        var positions = positionIds ?? arange(past, past + length, dtype: ScalarType.Int64, device: x.device).unsqueeze(0);
        x = drop.forward(x + wpe.forward(positions));
        var mask = AttentionMask.Causal(length, past + length, x.device);
        if (attentionMask is not null)
        {
            if (attentionMask.Dimensions != 2 || attentionMask.shape[1] != past + length)
            {
                throw new ArgumentException($"The attention mask must be (batch x {past + length}) (cached + new tokens), got [{string.Join(", ", attentionMask.shape)}].", nameof(attentionMask));
            }

            mask = AttentionMask.And(mask, AttentionMask.Padding(attentionMask));
        }

        for (var i = 0; i < h.Count; i++)
        {
            x = h[i].forward(x, mask, cache?[i]);
        }

        return scope.MoveToOuter(ln_f.forward(x));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}
