using System.Runtime.CompilerServices;
using System.Threading.Channels;
using MedVlp.Data;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;
using static TorchSharp.torch;

namespace MedVlp.Inference.Batch;

/// <summary>One volume to embed: an id, the file or series folder, and (optionally) its report, carried to the output.</summary>
/// <param name="Id">A unique id.</param>
/// <param name="SourcePath">The volume file or DICOM series folder.</param>
/// <param name="Report">The report text (empty when none).</param>
public sealed record EmbeddingInput(string Id, string SourcePath, string Report = "");

/// <summary>The outcome for one input: its embedding, or the error that made it unreadable.</summary>
/// <param name="Input">The input.</param>
/// <param name="Embedding">The L2-normalised embedding; null when <paramref name="Error"/> is set.</param>
/// <param name="Error">Why the volume could not be read or preprocessed; null on success.</param>
public sealed record EmbeddingResult(EmbeddingInput Input, float[]? Embedding, string? Error)
{
    /// <summary>True when the volume was embedded.</summary>
    public bool Succeeded => Embedding is not null;
}

/// <summary>Progress of a streaming embedding run.</summary>
/// <param name="Embedded">Volumes embedded so far.</param>
/// <param name="Failed">Volumes that could not be read so far.</param>
public readonly record struct EmbeddingProgress(int Embedded, int Failed);

/// <summary>Options of <see cref="StreamingEmbedder"/>.</summary>
public sealed class StreamingEmbedderOptions
{
    /// <summary>Volumes per forward pass (default 8).</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>Threads that read and preprocess volumes while the model runs (default: the processor count).</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;

    /// <summary>Batches that may be read ahead of the model (default 2). Memory holds at most
    /// <c>(PrefetchBatches + 1) x BatchSize + Workers</c> preprocessed volumes.</summary>
    public int PrefetchBatches { get; init; } = 2;

    /// <summary>Options for reading volumes.</summary>
    public VolumeReadOptions? ReadOptions { get; init; }

    /// <summary>Reads a volume file or series folder; defaults to <see cref="VolumeReader"/>.</summary>
    public Func<string, CancellationToken, Volume>? Reader { get; init; }

    internal void Validate()
    {
        if (BatchSize < 1 || Workers < 1 || PrefetchBatches < 1)
        {
            throw new ArgumentException($"Streaming embedder options need BatchSize, Workers and PrefetchBatches >= 1; got {BatchSize}, {Workers}, {PrefetchBatches}.");
        }
    }
}

/// <summary>
/// Embeds a stream of volumes of any length with bounded memory: worker threads read and preprocess volumes (the model's
/// own pipeline) ahead of the model, in order, while the model encodes the previous batch. A volume that cannot be read
/// or preprocessed yields a failed <see cref="EmbeddingResult"/> and the stream goes on.
/// </summary>
public sealed class StreamingEmbedder
{
    private readonly VisionLanguageModel _model;
    private readonly StreamingEmbedderOptions _options;

    /// <summary>An embedder over a model's volume encoder.</summary>
    public StreamingEmbedder(VisionLanguageModel model, StreamingEmbedderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _options = options ?? new StreamingEmbedderOptions();
        _options.Validate();
    }

    /// <summary>The options.</summary>
    public StreamingEmbedderOptions Options => _options;

    /// <summary>Embeds the inputs; results come in input order, a batch at a time.</summary>
    /// <param name="inputs">The volumes to embed.</param>
    /// <param name="progress">Receives counts after every batch (optional).</param>
    /// <param name="cancellationToken">Stops reading, preprocessing and embedding.</param>
    public async IAsyncEnumerable<EmbeddingResult> EmbedAsync(IAsyncEnumerable<EmbeddingInput> inputs, IProgress<EmbeddingProgress>? progress = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        _model.ThrowIfDisposed();
        var shape = _model.ImageEncoder.ImageInputShape.ToArray();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var pending = Channel.CreateBounded<Task<Prepared>>(new BoundedChannelOptions(_options.PrefetchBatches * _options.BatchSize) { SingleReader = true, SingleWriter = true });
        using var workers = new SemaphoreSlim(_options.Workers);
        var producer = Task.Run(() => ProduceAsync(inputs, pending.Writer, workers, shape, stop.Token), stop.Token);
        int embedded = 0, failed = 0;
        try
        {
            var batch = new List<Prepared>(_options.BatchSize);
            var results = new List<EmbeddingResult>(_options.BatchSize);
            while (await pending.Reader.WaitToReadAsync(stop.Token).ConfigureAwait(false))
            {
                while (pending.Reader.TryRead(out var next))
                {
                    stop.Token.ThrowIfCancellationRequested();
                    var prepared = await next.ConfigureAwait(false);
                    batch.Add(prepared);
                    if (batch.Count == _options.BatchSize)
                    {
                        Encode(batch, shape, results);
                        foreach (var r in results)
                        {
                            stop.Token.ThrowIfCancellationRequested();
                            _ = r.Succeeded ? embedded++ : failed++;
                            yield return r;
                        }

                        progress?.Report(new EmbeddingProgress(embedded, failed));
                        batch.Clear();
                        results.Clear();
                    }
                }
            }

            await producer.ConfigureAwait(false);
            if (batch.Count > 0)
            {
                Encode(batch, shape, results);
                foreach (var r in results)
                {
                    stop.Token.ThrowIfCancellationRequested();
                    _ = r.Succeeded ? embedded++ : failed++;
                    yield return r;
                }

                progress?.Report(new EmbeddingProgress(embedded, failed));
            }
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            try
            {
                await producer.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // stopped early
            }

            // Let in-flight preparations finish so that no worker outlives the enumeration.
            while (pending.Reader.TryRead(out var left))
            {
                try
                {
                    await left.ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    // cancelled
                }
            }
        }
    }

    private sealed record Prepared(EmbeddingInput Input, Volume? Volume, string? Error);

    private async Task ProduceAsync(IAsyncEnumerable<EmbeddingInput> inputs, ChannelWriter<Task<Prepared>> writer, SemaphoreSlim workers, long[] shape, CancellationToken token)
    {
        try
        {
            await foreach (var input in inputs.WithCancellation(token).ConfigureAwait(false))
            {
                ArgumentNullException.ThrowIfNull(input, nameof(inputs));
                await workers.WaitAsync(token).ConfigureAwait(false);
                // On the thread pool: at most Workers preparations at once (the semaphore). A dedicated thread per volume
                // (LongRunning) cost a thread start per volume and halved the rate on an idle 2-core machine (0.53x the
                // slower half vs 0.80-0.98x here); the transforms' Parallel.For loops take the calling thread as a worker.
                var task = Task.Factory.StartNew(() =>
                {
                    try
                    {
                        return Prepare(input, shape, token);
                    }
                    finally
                    {
                        workers.Release();
                    }
                }, token, TaskCreationOptions.None, TaskScheduler.Default);
                await writer.WriteAsync(task, token).ConfigureAwait(false);
            }

            writer.TryComplete();
        }
        catch (Exception ex)
        {
            writer.TryComplete(ex);
            throw;
        }
    }

    private Prepared Prepare(EmbeddingInput input, long[] shape, CancellationToken token)
    {
        try
        {
            var volume = _options.Reader is { } reader ? reader(input.SourcePath, token) : VolumeReader.Read(input.SourcePath, _options.ReadOptions, token);
            var prepared = _model.Preprocessing.Apply(volume, null, token);
            long[] got = [prepared.Frames, prepared.Shape.Z, prepared.Shape.Y, prepared.Shape.X];
            if (!got.SequenceEqual(shape))
            {
                return new Prepared(input, null, $"the model's preprocessing made [{string.Join(", ", got)}] (channels, k, j, i) of it; the image encoder needs [{string.Join(", ", shape)}]");
            }

            return new Prepared(input, prepared, null);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return new Prepared(input, null, $"{ex.GetType().Name}: {ex.Message}");
        }
    }

    private void Encode(List<Prepared> batch, long[] shape, List<EmbeddingResult> results)
    {
        var ok = batch.Where(p => p.Volume is not null).ToArray();
        float[][] rows = [];
        if (ok.Length > 0)
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            var input = Collator.CollateVolumes([.. ok.Select(p => p.Volume!)], shape, _model.Device);
            var embeddings = _model.ImageEncoder.EncodeImages(input).cpu().contiguous();
            var flat = embeddings.data<float>().ToArray();
            var e = (int)embeddings.shape[1];
            rows = new float[ok.Length][];
            for (var n = 0; n < ok.Length; n++)
            {
                rows[n] = flat.AsSpan(n * e, e).ToArray();
            }
        }

        var next = 0;
        foreach (var p in batch)
        {
            results.Add(p.Volume is null ? new EmbeddingResult(p.Input, null, p.Error) : new EmbeddingResult(p.Input, rows[next++], null));
        }
    }
}
