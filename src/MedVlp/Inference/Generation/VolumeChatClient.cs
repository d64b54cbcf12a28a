using System.Runtime.CompilerServices;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;
using Microsoft.Extensions.AI;

namespace MedVlp.Inference.Generation;

/// <summary>
/// Microsoft.Extensions.AI's <see cref="IChatClient"/> over a model that writes about volumes (<see cref="VisualQuestionAnswering"/>
/// or <see cref="ReportGenerator"/>), so chat middleware (logging, caching, telemetry) applies unchanged. The last user
/// message carries the question as text and the volume either as <see cref="DataContent"/> (the bytes of a NIfTI file,
/// <c>application/x-nifti</c>, <c>application/gzip</c> or <c>application/octet-stream</c>) or as <see cref="UriContent"/>
/// with a <c>file:</c> URI; without one, the latest earlier user message's volume is used. <see cref="ChatOptions"/> maps to
/// <see cref="GenerationOptions"/>: <c>MaxOutputTokens</c>, <c>Temperature</c> (0: greedy; otherwise sampling, as
/// <c>TopP</c> and <c>TopK</c> also ask for), <c>Seed</c>, <c>StopSequences</c>, and the additional properties
/// <c>num_beams</c>, <c>repetition_penalty</c> and <c>length_penalty</c>. Does not own the generator.
/// </summary>
public sealed class VolumeChatClient : IChatClient
{
    /// <summary>The media types of NIfTI bytes this client reads.</summary>
    public static IReadOnlyList<string> VolumeMediaTypes { get; } = ["application/x-nifti", "application/gzip", "application/x-gzip", "application/octet-stream", "image/nifti", "image/x-nifti"];

    private readonly IVolumeTextGenerator _generator;
    private readonly ChatClientMetadata _metadata;

    /// <summary>Creates the client.</summary>
    /// <param name="generator">What writes the answers (not owned).</param>
    /// <param name="modelId">The model's name in responses and metadata (for example the package folder's name).</param>
    /// <param name="defaultOptions">Decoding when the chat options say nothing (default greedy, 64 tokens).</param>
    public VolumeChatClient(IVolumeTextGenerator generator, string modelId = "medvlp", GenerationOptions? defaultOptions = null)
    {
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentException.ThrowIfNullOrWhiteSpace(modelId);
        _generator = generator;
        DefaultOptions = defaultOptions ?? new GenerationOptions();
        DefaultOptions.Validate();
        _metadata = new ChatClientMetadata("MedVlp", null, modelId);
    }

    /// <summary>Decoding when the chat options say nothing.</summary>
    public GenerationOptions DefaultOptions { get; }

    /// <inheritdoc/>
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var (volume, question) = Read(messages);
        var generation = ToGenerationOptions(options);
        var result = await Task.Run(() => _generator.Generate(volume, question, generation, cancellationToken), cancellationToken).ConfigureAwait(false);
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, result.Text))
        {
            ModelId = options?.ModelId ?? _metadata.DefaultModelId,
            FinishReason = result.FinishReason == GenerationFinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop,
            Usage = new UsageDetails { OutputTokenCount = result.TokenIds.Count },
            CreatedAt = DateTimeOffset.UtcNow,
        };
    }

    /// <inheritdoc/>
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var (volume, question) = Read(messages);
        var generation = ToGenerationOptions(options);
        var id = Guid.NewGuid().ToString("N");
        await foreach (var piece in _generator.GenerateStreamingAsync(volume, question, generation, cancellationToken).ConfigureAwait(false))
        {
            yield return new ChatResponseUpdate(ChatRole.Assistant, piece) { ResponseId = id, MessageId = id, ModelId = options?.ModelId ?? _metadata.DefaultModelId };
        }

        yield return new ChatResponseUpdate { Role = ChatRole.Assistant, ResponseId = id, MessageId = id, FinishReason = ChatFinishReason.Stop, ModelId = options?.ModelId ?? _metadata.DefaultModelId };
    }

    /// <inheritdoc/>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        return serviceKey is not null ? null
            : serviceType == typeof(ChatClientMetadata) ? _metadata
            : serviceType.IsInstanceOfType(this) ? this
            : serviceType.IsInstanceOfType(_generator) ? _generator
            : null;
    }

    /// <summary>Nothing to release: the generator is not owned.</summary>
    public void Dispose()
    {
    }

    /// <summary>Maps chat options onto <see cref="DefaultOptions"/>.</summary>
    public GenerationOptions ToGenerationOptions(ChatOptions? options)
    {
        var d = DefaultOptions;
        if (options is null)
        {
            return d;
        }

        var greedy = options.Temperature == 0;
        var sample = !greedy && (options.Temperature is > 0 || options.TopP is not null || options.TopK is not null);
        var properties = options.AdditionalProperties;
        var result = new GenerationOptions
        {
            MaxNewTokens = options.MaxOutputTokens ?? d.MaxNewTokens,
            DoSample = greedy ? false : sample || d.DoSample,
            Temperature = options.Temperature is > 0 ? options.Temperature.Value : d.Temperature,
            TopP = options.TopP ?? d.TopP,
            TopK = options.TopK ?? d.TopK,
            MinTokensToKeep = d.MinTokensToKeep,
            Seed = options.Seed ?? d.Seed,
            StopSequences = options.StopSequences is { Count: > 0 } stops ? [.. stops] : d.StopSequences,
            NumBeams = properties is not null && properties.TryGetValue("num_beams", out int beams) ? beams : d.NumBeams,
            RepetitionPenalty = properties is not null && properties.TryGetValue("repetition_penalty", out double repetition) ? repetition : d.RepetitionPenalty,
            LengthPenalty = properties is not null && properties.TryGetValue("length_penalty", out double length) ? length : d.LengthPenalty,
            EarlyStopping = d.EarlyStopping,
        };
        result.Validate();
        return result;
    }

    private static (Volume Volume, string? Question) Read(IEnumerable<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var users = messages.Where(m => m.Role == ChatRole.User).ToArray();
        if (users.Length == 0)
        {
            throw new ArgumentException("The chat has no user message: send the volume and the question as a user message.", nameof(messages));
        }

        var question = users[^1].Text;
        foreach (var message in users.Reverse())
        {
            foreach (var content in message.Contents)
            {
                switch (content)
                {
                    case DataContent data when !data.HasTopLevelMediaType("text"):
                        return (ReadBytes(data), string.IsNullOrWhiteSpace(question) ? null : question);
                    case UriContent uri:
                        return (ReadUri(uri.Uri), string.IsNullOrWhiteSpace(question) ? null : question);
                }
            }
        }

        throw new ArgumentException("No user message carries a volume: attach a NIfTI file as DataContent (application/x-nifti or application/gzip) or a UriContent with a file: URI.", nameof(messages));
    }

    private static Volume ReadUri(Uri uri)
    {
        if (!uri.IsAbsoluteUri || !uri.IsFile)
        {
            throw new ArgumentException($"A volume reference must be a file: URI or an absolute path, got \"{uri}\".");
        }

        return VolumeReader.Read(uri.LocalPath);
    }

    private static Volume ReadBytes(DataContent data)
    {
        if (!VolumeMediaTypes.Contains(data.MediaType, StringComparer.OrdinalIgnoreCase))
        {
            throw new ArgumentException($"A volume attachment must be NIfTI bytes ({string.Join(", ", VolumeMediaTypes)}), got media type \"{data.MediaType}\".");
        }

        var bytes = data.Data.Span;
        if (bytes.Length < 4)
        {
            throw new VolumeFormatException(data.Name ?? "(attachment)", "length", $"a NIfTI file (at least a header), got {bytes.Length} bytes");
        }

        // The hardened readers take files: the bytes go to a private temporary file named by their format.
        var gzip = bytes[0] == 0x1f && bytes[1] == 0x8b;
        var path = Path.Combine(Path.GetTempPath(), $"medvlp-chat-{Guid.NewGuid():N}{(gzip ? ".nii.gz" : ".nii")}");
        try
        {
            using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                file.Write(bytes);
            }

            return VolumeReader.Read(path);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
