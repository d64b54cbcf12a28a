using MedVlp.Data;
using MedVlp.Synthetic;
using MedVlp.Volumes;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Architectures.MedBlip;

/// <summary>One generative diagnosis: the generated answer and the class it names (null: unmatched).</summary>
/// <param name="Answer">The generated text.</param>
/// <param name="Diagnosis">The class the answer names, or null when it names none.</param>
public sealed record MedBlipDiagnosis(string Answer, CognitiveDiagnosis? Diagnosis);

/// <summary>
/// Inference with a MedBLIP model package: visual question answering (greedy decoding with the key/value cache after
/// [prompt; image tokens]), generative zero-shot diagnosis (the answer mapped to the three labels, unmatched answers
/// reported) and contrastive zero-shot diagnosis (query-max similarity of the image to each "question + answer" text).
/// Does not own the model.
/// </summary>
public sealed class MedBlipAssistant
{
    private readonly VisionLanguageModel _model;
    private readonly MedBlipModel _medblip;

    /// <summary>Wraps a loaded <c>medblip</c> model (its default tokenizer is the Q-Former's).</summary>
    /// <exception cref="ArgumentException">The model is not a MedBLIP.</exception>
    public MedBlipAssistant(VisionLanguageModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _medblip = model.Module as MedBlipModel ?? throw new ArgumentException($"The model is a \"{model.Architecture}\", not a \"{MedBlipConfig.ArchitectureName}\".", nameof(model));
        Text = new MedBlipText(model.Tokenizer, _medblip.MedBlipConfig.MaxTextTokens);
    }

    /// <summary>The texts and tokenizers.</summary>
    public MedBlipText Text { get; }

    /// <summary>The model.</summary>
    public MedBlipModel Model => _medblip;

    /// <summary>Preprocesses volumes with the package's pipeline into (B x 1 x S x S x S) on the model's device.</summary>
    public Tensor Prepare(IReadOnlyList<Volume> volumes)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        var s = _medblip.MedBlipConfig.InputSize;
        var prepared = new Volume[volumes.Count];
        Parallel.For(0, volumes.Count, n => prepared[n] = _model.Preprocessing.Apply(volumes[n] ?? throw new ArgumentException($"Volume {n} is null.", nameof(volumes))));
        return Collator.CollateVolumes(prepared, [1, s, s, s], _model.Device);
    }

    /// <summary>Answers free questions about volumes (greedy, at most <paramref name="maxTokens"/> tokens).</summary>
    /// <param name="volumes">The volumes.</param>
    /// <param name="questions">One question per volume.</param>
    /// <param name="contexts">Optional EHR text per volume (null or empty: none).</param>
    /// <param name="maxTokens">The most tokens per answer.</param>
    /// <param name="cancellationToken">Stops between tokens.</param>
    public IReadOnlyList<string> Ask(IReadOnlyList<Volume> volumes, IReadOnlyList<string> questions, IReadOnlyList<string?>? contexts = null, int maxTokens = 16, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(questions);
        if (questions.Count != volumes.Count || (contexts is not null && contexts.Count != volumes.Count))
        {
            throw new ArgumentException($"Expected one question (and context) per volume: {volumes.Count} volumes, {questions.Count} questions, {contexts?.Count} contexts.", nameof(questions));
        }

        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxTokens);
        using var scope = NewDisposeScope();
        var images = Prepare(volumes);
        var prompts = questions.Select((q, n) => (IReadOnlyList<int>)Text.EncodePrompt(MedBlipText.Prompt(contexts?[n] ?? "", q))).ToArray();
        var generated = _medblip.GenerateGreedy(images, prompts, maxTokens, MedBlipText.EndOfText, cancellationToken);
        return [.. generated.Select(ids => Text.Decode(ids).Trim())];
    }

    /// <summary>Generative zero-shot diagnosis: the answer to "What will this subject be diagnosed with?" after each EHR text.</summary>
    public IReadOnlyList<MedBlipDiagnosis> DiagnoseGenerative(IReadOnlyList<Volume> volumes, IReadOnlyList<string?>? contexts = null, int maxTokens = 12, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        var answers = Ask(volumes, [.. volumes.Select(_ => MedBlipText.DiagnosisQuestion)], contexts, maxTokens, cancellationToken);
        return [.. answers.Select(a => new MedBlipDiagnosis(a, MedBlipText.ParseDiagnosis(a)))];
    }

    /// <summary>Contrastive zero-shot diagnosis: the class whose "Question: ... Answer: label" text is most similar (max over
    /// the queries) to each volume's query features.</summary>
    public IReadOnlyList<CognitiveDiagnosis> DiagnoseContrastive(IReadOnlyList<Volume> volumes)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var images = _medblip.ImageFeatures(_medblip.EncodeQueries(Prepare(volumes)));
        var labels = CognitiveDiagnosisNames.All;
        var tokens = Text.QFormerTokenizer.EncodeBatch([.. labels.Select(d => $"Question: {MedBlipText.DiagnosisQuestion} Answer: {MedBlipText.Answer(d)}")], Text.MaxTextTokens);
        var ids = tensor(tokens.Ids.ToArray(), [tokens.BatchSize, tokens.SequenceLength], device: images.device);
        var mask = tensor(tokens.AttentionMask.ToArray(), [tokens.BatchSize, tokens.SequenceLength], device: images.device);
        var text = _medblip.TextFeatures(ids, mask, questionAnswer: true);
        var best = einsum("bqd,kd->bkq", images, text).amax([2]).argmax(1).data<long>().ToArray();
        return [.. best.Select(i => labels[(int)i])];
    }
}
