using System.Runtime.CompilerServices;
using MedVlp.Data;
using MedVlp.Text;
using MedVlp.Volumes;
using static TorchSharp.torch;

namespace MedVlp.Inference.Generation;

/// <summary>
/// Visual question answering with a model package whose model answers questions (<see cref="IQuestionAnsweringModel"/>,
/// e.g. MedBLIP): preprocesses the volume with the package's pipeline, builds the model's prompt, and decodes the answer
/// with <see cref="TextGenerator"/> (greedy, beams or seeded sampling; stop sequences; streaming). Does not own the model.
/// </summary>
public sealed class VisualQuestionAnswering : IVolumeTextGenerator
{
    private readonly VisionLanguageModel _model;
    private readonly IQuestionAnsweringModel _answering;

    /// <summary>Wraps a loaded model package.</summary>
    /// <exception cref="ArgumentException">The model does not answer questions.</exception>
    public VisualQuestionAnswering(VisionLanguageModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _answering = model.Module as IQuestionAnsweringModel
            ?? throw new ArgumentException($"A \"{model.Architecture}\" model does not answer questions (it has no language head for answers).", nameof(model));
        Tokenizer = _answering.AnswerTokenizer(model.Tokenizers);
        Generator = new TextGenerator(Tokenizer);
    }

    /// <summary>The tokenizer of prompts and answers.</summary>
    public TextTokenizer Tokenizer { get; }

    /// <summary>The decoding engine.</summary>
    public TextGenerator Generator { get; }

    /// <summary>Answers a question about a volume.</summary>
    /// <param name="volume">The volume (preprocessed here with the package's pipeline).</param>
    /// <param name="question">The question.</param>
    /// <param name="context">Optional text before the question (MedBLIP: EHR text).</param>
    /// <param name="options">How to decode (default greedy, 64 tokens).</param>
    /// <param name="cancellationToken">Checked before every token.</param>
    public GeneratedText Answer(Volume volume, string question, string? context = null, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        using var head = Start(volume, question, context);
        var result = Generator.Generate(head, options, cancellationToken);
        return result with { Text = result.Text.Trim() };
    }

    /// <summary>Answers a question about a volume, streaming the text as it is decoded (leading blanks left out, as in the non-streaming text).</summary>
    /// <param name="volume">The volume.</param>
    /// <param name="question">The question.</param>
    /// <param name="context">Optional text before the question.</param>
    /// <param name="options">How to decode.</param>
    /// <param name="cancellationToken">Checked before every token.</param>
    public async IAsyncEnumerable<string> AnswerStreamingAsync(Volume volume, string question, string? context = null, GenerationOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var head = Start(volume, question, context);
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
        Answer(volume, RequireQuestion(question), null, options, cancellationToken);

    /// <inheritdoc/>
    IAsyncEnumerable<string> IVolumeTextGenerator.GenerateStreamingAsync(Volume volume, string? question, GenerationOptions? options, CancellationToken cancellationToken) =>
        AnswerStreamingAsync(volume, RequireQuestion(question), null, options, cancellationToken);

    private static string RequireQuestion(string? question) =>
        string.IsNullOrWhiteSpace(question) ? throw new ArgumentException("Visual question answering needs a question in the message's text.", nameof(question)) : question;

    private ILanguageHead Start(Volume volume, string question, string? context)
    {
        ArgumentNullException.ThrowIfNull(volume);
        ArgumentException.ThrowIfNullOrWhiteSpace(question);
        var prompt = Tokenizer.Encode(_answering.FormatPrompt(question, context), int.MaxValue);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var prepared = Collator.CollateVolumes([_model.Preprocessing.Apply(volume)], null, _model.Device);
        return _answering.StartAnswer(prepared, [.. prompt]);
    }
}
