using MedVlp.Text;
using MedVlp.Volumes;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Data;

/// <summary>Which side of a short sequence gets the padding.</summary>
public enum PaddingSide
{
    /// <summary>Tokens first, padding after (BERT encoders).</summary>
    Right,

    /// <summary>Padding first, tokens last (decoder-only language models generating after the prompt).</summary>
    Left,
}

/// <summary>How <see cref="Collator.CollateTexts"/> tokenizes.</summary>
public sealed record TextCollation
{
    /// <summary>The longest sequence, special tokens included; longer texts are truncated. Default 128.</summary>
    public int MaxTokens { get; init; } = 128;

    /// <summary>Where padding goes. Default <see cref="PaddingSide.Right"/>.</summary>
    public PaddingSide Padding { get; init; } = PaddingSide.Right;

    /// <summary>The name of the tokenizer to use; null for the collator's default.</summary>
    public string? Tokenizer { get; init; }
}

/// <summary>Token ids and attention mask of a batch of texts (both B x T, int64). Dispose when done.</summary>
/// <param name="InputIds">Token ids (padding: the tokenizer's padding id).</param>
/// <param name="AttentionMask">1 for a token, 0 for padding.</param>
public sealed record TextInputs(Tensor InputIds, Tensor AttentionMask) : IDisposable
{
    /// <summary>Disposes both tensors.</summary>
    public void Dispose()
    {
        InputIds.Dispose();
        AttentionMask.Dispose();
    }
}

/// <summary>
/// Turns examples into model inputs, the one place that does so for inference, training and
/// <see cref="VolumeDataLoader"/>: volumes of any shape the preprocessing yields (every frame becomes a channel),
/// 2D images (volumes one slice thick: slices, projections, X-rays), and texts through one of the model's tokenizers.
/// Thread-safe.
/// </summary>
public sealed class Collator
{
    private readonly IReadOnlyDictionary<string, TextTokenizer> _tokenizers;

    /// <summary>A collator over one tokenizer (named <c>text</c>).</summary>
    public Collator(TextTokenizer tokenizer)
        : this(new Dictionary<string, TextTokenizer> { [DefaultTokenizerName] = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer)) }, DefaultTokenizerName)
    {
    }

    /// <summary>A collator over several named tokenizers (MedBLIP: a BERT one for the Q-Former, a BPE one for the language model).</summary>
    /// <param name="tokenizers">The tokenizers by name.</param>
    /// <param name="defaultTokenizer">The name used when <see cref="TextCollation.Tokenizer"/> is null.</param>
    public Collator(IReadOnlyDictionary<string, TextTokenizer> tokenizers, string defaultTokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizers);
        ArgumentNullException.ThrowIfNull(defaultTokenizer);
        if (!tokenizers.ContainsKey(defaultTokenizer))
        {
            throw new ArgumentException($"The default tokenizer \"{defaultTokenizer}\" is not among {string.Join(", ", tokenizers.Keys)}.", nameof(defaultTokenizer));
        }

        _tokenizers = new Dictionary<string, TextTokenizer>(tokenizers, StringComparer.Ordinal);
        DefaultTokenizer = defaultTokenizer;
    }

    /// <summary>The name of the tokenizer of a single-tokenizer model.</summary>
    public const string DefaultTokenizerName = "text";

    /// <summary>The tokenizers by name.</summary>
    public IReadOnlyDictionary<string, TextTokenizer> Tokenizers => _tokenizers;

    /// <summary>The name of the default tokenizer.</summary>
    public string DefaultTokenizer { get; }

    /// <summary>
    /// Stacks volumes into a <c>[batch, frames, k, j, i]</c> float32 tensor: the frames of a volume (channels, time points,
    /// modalities) become the channel axis. All volumes must have one shape (end the pipeline in a fixed-size step).
    /// </summary>
    /// <param name="volumes">The preprocessed volumes (at least one).</param>
    /// <param name="expectedShape">When given, the shape one example must have (<c>[channels, k, j, i]</c>).</param>
    /// <param name="device">Where the tensor goes (CPU when null).</param>
    /// <exception cref="ArgumentException">The volumes differ in shape, or differ from <paramref name="expectedShape"/>.</exception>
    public static Tensor CollateVolumes(IReadOnlyList<Volume> volumes, IReadOnlyList<long>? expectedShape = null, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        var first = Check(volumes, expectedShape, v => [v.Frames, v.Shape.Z, v.Shape.Y, v.Shape.X], "volume");
        return Stack(volumes, [volumes.Count, first.Frames, first.Shape.Z, first.Shape.Y, first.Shape.X], device);
    }

    /// <summary>
    /// Stacks 2D images (volumes one voxel thick along k) into a <c>[batch, channels, j, i]</c> float32 tensor.
    /// </summary>
    /// <param name="images">The preprocessed images.</param>
    /// <param name="expectedShape">When given, the shape one example must have (<c>[channels, j, i]</c>).</param>
    /// <param name="device">Where the tensor goes (CPU when null).</param>
    /// <exception cref="ArgumentException">An image is not 2D, or the shapes differ.</exception>
    public static Tensor CollateImages(IReadOnlyList<Volume> images, IReadOnlyList<long>? expectedShape = null, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        for (var n = 0; n < images.Count; n++)
        {
            if (images[n] is { } v && v.Shape.Z != 1)
            {
                throw new ArgumentException($"Image {n} has {v.Shape.Z} slices; a 2D image has one (extract a slice or projection first).", nameof(images));
            }
        }

        var first = Check(images, expectedShape, v => [v.Frames, v.Shape.Y, v.Shape.X], "image");
        return Stack(images, [images.Count, first.Frames, first.Shape.Y, first.Shape.X], device);
    }

    /// <summary>Tokenizes texts into ids and mask (B x T, int64), padded on the configured side.</summary>
    /// <exception cref="ArgumentException">No tokenizer of that name, or a null text.</exception>
    public TextInputs CollateTexts(IReadOnlyList<string> texts, TextCollation? options = null, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        options ??= new TextCollation();
        var name = options.Tokenizer ?? DefaultTokenizer;
        if (!_tokenizers.TryGetValue(name, out var tokenizer))
        {
            throw new ArgumentException($"No tokenizer \"{name}\"; this model has {string.Join(", ", _tokenizers.Keys)}.", nameof(options));
        }

        var batch = tokenizer.EncodeBatch(texts, options.MaxTokens);
        var ids = batch.Ids.ToArray();
        var mask = batch.AttentionMask.ToArray();
        if (options.Padding == PaddingSide.Left)
        {
            var length = batch.SequenceLength;
            for (var n = 0; n < batch.BatchSize; n++)
            {
                var row = n * length;
                var used = 0;
                while (used < length && mask[row + used] == 1)
                {
                    used++;
                }

                var shift = length - used;
                if (shift == 0)
                {
                    continue;
                }

                Array.Copy(ids, row, ids, row + shift, used);
                Array.Copy(mask, row, mask, row + shift, used);
                Array.Fill(ids, tokenizer.PaddingTokenId, row, shift);
                Array.Fill(mask, 0L, row, shift);
            }
        }

        long[] shape = [batch.BatchSize, batch.SequenceLength];
        return new TextInputs(tensor(ids, shape, device: device), tensor(mask, shape, device: device));
    }

    private static Volume Check(IReadOnlyList<Volume> volumes, IReadOnlyList<long>? expected, Func<Volume, long[]> shapeOf, string what)
    {
        if (volumes.Count == 0)
        {
            throw new ArgumentException($"At least one {what} is needed.", nameof(volumes));
        }

        var first = volumes[0] ?? throw new ArgumentException($"{what} 0 is null.", nameof(volumes));
        var firstShape = shapeOf(first);
        if (expected is not null && !firstShape.SequenceEqual(expected))
        {
            throw new ArgumentException($"A {what} of shape [{string.Join(", ", firstShape)}] (channels, spatial) does not fit the model's input [{string.Join(", ", expected)}].", nameof(volumes));
        }

        for (var n = 1; n < volumes.Count; n++)
        {
            var v = volumes[n] ?? throw new ArgumentException($"{what} {n} is null.", nameof(volumes));
            if (!shapeOf(v).SequenceEqual(firstShape))
            {
                throw new ArgumentException(
                    $"Cannot stack {what}s of shapes [{string.Join(", ", firstShape)}] and [{string.Join(", ", shapeOf(v))}] ({what} {n}); end the pipeline with a fixed-size step such as crop_or_pad.",
                    nameof(volumes));
            }
        }

        return first;
    }

    private static Tensor Stack(IReadOnlyList<Volume> volumes, long[] shape, Device? device)
    {
        var per = volumes[0].Data.Length;
        var data = GC.AllocateUninitializedArray<float>(checked(per * volumes.Count));
        for (var n = 0; n < volumes.Count; n++)
        {
            volumes[n].Data.Span.CopyTo(data.AsSpan(n * per, per));
        }

        var t = tensor(data, shape, ScalarType.Float32);
        if (device is null || device.type == DeviceType.CPU)
        {
            return t;
        }

        using (t)
        {
            return t.to(device);
        }
    }
}
