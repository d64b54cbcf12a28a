using MedVlp.Text;
using static TorchSharp.torch;

namespace MedVlp.Inference.Generation;

/// <summary>A model that answers free questions about a volume with a language head (MedBLIP).</summary>
public interface IQuestionAnsweringModel
{
    /// <summary>The tokenizer of prompts and answers, chosen among a model package's tokenizers.</summary>
    TextTokenizer AnswerTokenizer(IReadOnlyDictionary<string, TextTokenizer> packageTokenizers);

    /// <summary>The prompt text of a question, with optional context (for example EHR text) before it.</summary>
    string FormatPrompt(string question, string? context);

    /// <summary>Conditions the language head on one preprocessed volume (1 x C x D x H x W) and the prompt's tokens.</summary>
    ILanguageHead StartAnswer(Tensor volume, IReadOnlyList<int> promptTokenIds);
}

/// <summary>A model that writes a report of a volume with a language head (COLIPRI's report decoder).</summary>
public interface IReportGeneratingModel
{
    /// <summary>Conditions the report decoder on one preprocessed volume (1 x C x D x H x W); the tokenizer gives the start and end tokens.</summary>
    ILanguageHead StartReport(Tensor volume, TextTokenizer reportTokenizer);
}

/// <summary>Generates text about a volume: what <see cref="VolumeChatClient"/> talks to.</summary>
public interface IVolumeTextGenerator
{
    /// <summary>The text for one volume and an optional question (report generators may ignore it).</summary>
    GeneratedText Generate(MedVlp.Volumes.Volume volume, string? question, GenerationOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>As <see cref="Generate"/>, streamed as it is decoded.</summary>
    IAsyncEnumerable<string> GenerateStreamingAsync(MedVlp.Volumes.Volume volume, string? question, GenerationOptions? options = null, CancellationToken cancellationToken = default);
}
