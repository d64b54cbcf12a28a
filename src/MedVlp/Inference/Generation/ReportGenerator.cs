using System.Runtime.CompilerServices;
using MedVlp.Data;
using MedVlp.Text;
using MedVlp.Volumes;
using MedVlp.Volumes.Transforms;
using static TorchSharp.torch;

namespace MedVlp.Inference.Generation;

/// <summary>
/// Report generation with a model that writes reports (<see cref="IReportGeneratingModel"/>, e.g. COLIPRI's report
/// decoder): preprocesses the volume, conditions the decoder on it and decodes with <see cref="TextGenerator"/> (greedy,
/// beams or seeded sampling; stop sequences; streaming). Does not own the model.
/// </summary>
public sealed class ReportGenerator : IVolumeTextGenerator
{
    private readonly IReportGeneratingModel _reports;
    private readonly TransformPipeline _preprocessing;
    private readonly Device _device;

    /// <summary>Wraps a loaded model package whose model (or one of its parts) writes reports; the package's default tokenizer is the report's.</summary>
    /// <exception cref="ArgumentException">The model writes no reports.</exception>
    public ReportGenerator(VisionLanguageModel model)
        : this(
            Find(model ?? throw new ArgumentNullException(nameof(model))) ?? throw new ArgumentException($"A \"{model.Architecture}\" model has no report decoder.", nameof(model)),
            model.Tokenizer,
            model.Preprocessing,
            model.Device)
    {
    }

    /// <summary>Wraps a model built in the program.</summary>
    /// <param name="model">The report-writing model (not owned).</param>
    /// <param name="tokenizer">The report tokenizer (start and end tokens, decoding).</param>
    /// <param name="preprocessing">Turns a volume into the model's input.</param>
    /// <param name="device">Where the model lives (default CPU).</param>
    public ReportGenerator(IReportGeneratingModel model, TextTokenizer tokenizer, TransformPipeline preprocessing, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(preprocessing);
        _reports = model;
        _preprocessing = preprocessing;
        _device = device ?? CPU;
        Tokenizer = tokenizer;
        Generator = new TextGenerator(tokenizer);
    }

    /// <summary>The report tokenizer.</summary>
    public TextTokenizer Tokenizer { get; }

    /// <summary>The decoding engine.</summary>
    public TextGenerator Generator { get; }

    /// <summary>Writes a report of a volume.</summary>
    /// <param name="volume">The volume (preprocessed here).</param>
    /// <param name="options">How to decode (default greedy, 64 tokens).</param>
    /// <param name="cancellationToken">Checked before every token.</param>
    public GeneratedText Generate(Volume volume, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        using var head = Start(volume);
        var result = Generator.Generate(head, options, cancellationToken);
        return result with { Text = result.Text.Trim() };
    }

    /// <summary>Writes a report of a volume, streaming the text as it is decoded (leading blanks left out, as in the non-streaming text).</summary>
    /// <param name="volume">The volume.</param>
    /// <param name="options">How to decode.</param>
    /// <param name="cancellationToken">Checked before every token.</param>
    public async IAsyncEnumerable<string> GenerateStreamingAsync(Volume volume, GenerationOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var head = Start(volume);
        var started = false;
        await foreach (var piece in Generator.GenerateStreamingAsync(head, options, cancellationToken).ConfigureAwait(false))
        {
            // As the non-streaming result, the text starts at its first non-blank character.
            var text = started ? piece : piece.TrimStart();
            if (text.Length > 0)
            {
                started = true;
                yield return text;
            }
        }
    }

    /// <inheritdoc/>
    GeneratedText IVolumeTextGenerator.Generate(Volume volume, string? question, GenerationOptions? options, CancellationToken cancellationToken) =>
        Generate(volume, options, cancellationToken);

    /// <inheritdoc/>
    IAsyncEnumerable<string> IVolumeTextGenerator.GenerateStreamingAsync(Volume volume, string? question, GenerationOptions? options, CancellationToken cancellationToken) =>
        GenerateStreamingAsync(volume, options, cancellationToken);

    private static IReportGeneratingModel? Find(VisionLanguageModel model) =>
        model.Module as IReportGeneratingModel ?? model.Module.children().OfType<IReportGeneratingModel>().FirstOrDefault();

    private ILanguageHead Start(Volume volume)
    {
        ArgumentNullException.ThrowIfNull(volume);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var prepared = Collator.CollateVolumes([_preprocessing.Apply(volume)], null, _device);
        return _reports.StartReport(prepared, Tokenizer);
    }
}
