using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace MedVlp.Training;

/// <summary>Where a checkpoint left a run: the step, the data position, early-stopping state.</summary>
public sealed record CheckpointInfo
{
    /// <summary>The format tag.</summary>
    public string Format { get; init; } = CheckpointStore.Format;

    /// <summary>Optimisation steps completed.</summary>
    public long Step { get; init; }

    /// <summary>The epoch (1-based) of the next micro-batch.</summary>
    public int Epoch { get; init; } = 1;

    /// <summary>The index of the next micro-batch within <see cref="Epoch"/>.</summary>
    public int BatchInEpoch { get; init; }

    /// <summary>The run seed.</summary>
    public int Seed { get; init; }

    /// <summary>The best value of the chosen metric so far, or null.</summary>
    public double? BestMetric { get; init; }

    /// <summary>The step of the best value.</summary>
    public long BestStep { get; init; }

    /// <summary>Evaluations since the best one (early stopping).</summary>
    public int EvaluationsWithoutImprovement { get; init; }

    /// <summary>The metric value this checkpoint was evaluated at, or null.</summary>
    public double? Metric { get; init; }
}

/// <summary>
/// Checkpoint files in a folder: <c>step-NNNNNNNN.ckpt</c>, each written to a temporary file, flushed to disk and renamed, so
/// a crash at any moment leaves either the complete new file or none; every file ends in a SHA-256 of its content, so a
/// damaged one is detected and skipped. Keeps the last K and the best by a metric (as <c>best.ckpt</c>).
/// </summary>
/// <remarks>A file: "MVLPCKPT", a length-prefixed JSON <see cref="CheckpointInfo"/>, the sections the trainer writes
/// (model, losses, optimizer, RNG, EMA), then the SHA-256 of everything before it and "MVLPEND!".</remarks>
public sealed class CheckpointStore
{
    /// <summary>The format tag in every checkpoint.</summary>
    public const string Format = "medvlp.checkpoint.v1";

    /// <summary>The name of the best checkpoint.</summary>
    public const string BestFileName = "best.ckpt";

    /// <summary>Environment variable (tests only): milliseconds to pause half-way through writing a checkpoint's temporary file.</summary>
    public const string TestPauseVariable = "MEDVLP_TEST_CHECKPOINT_PAUSE_MS";

    private static readonly byte[] Head = "MVLPCKPT"u8.ToArray();
    private static readonly byte[] Tail = "MVLPEND!"u8.ToArray();
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };
    private readonly int _keep;

    /// <summary>Creates a store in <paramref name="directory"/> (created if needed) keeping the last <paramref name="keepLast"/>.</summary>
    public CheckpointStore(string directory, int keepLast = 2)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentOutOfRangeException.ThrowIfLessThan(keepLast, 1);
        Directory = System.IO.Directory.CreateDirectory(directory).FullName;
        _keep = keepLast;
    }

    /// <summary>The folder.</summary>
    public string Directory { get; }

    /// <summary>The path of the checkpoint after <paramref name="step"/> steps.</summary>
    public string PathOf(long step) => Path.Combine(Directory, string.Create(CultureInfo.InvariantCulture, $"step-{step:D8}.ckpt"));

    /// <summary>The complete step checkpoints, newest first.</summary>
    public IReadOnlyList<string> List() =>
        [.. System.IO.Directory.EnumerateFiles(Directory, "step-*.ckpt").OrderByDescending(p => p, StringComparer.Ordinal)];

    /// <summary>Writes a checkpoint atomically; then deletes step checkpoints beyond the last K and leftover temporary files.</summary>
    /// <param name="info">The run state.</param>
    /// <param name="writeSections">Writes the tensors' sections.</param>
    /// <param name="isBest">Also store it as <see cref="BestFileName"/>.</param>
    /// <returns>The path written.</returns>
    public string Save(CheckpointInfo info, Action<BinaryWriter> writeSections, bool isBest = false)
    {
        ArgumentNullException.ThrowIfNull(info);
        ArgumentNullException.ThrowIfNull(writeSections);
        byte[] content;
        using (var buffer = new MemoryStream())
        {
            using (var writer = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true))
            {
                writer.Write(Head);
                var header = JsonSerializer.SerializeToUtf8Bytes(info, Json);
                writer.Write(header.Length);
                writer.Write(header);
                writeSections(writer);
                writer.Flush();
                var hash = SHA256.HashData(buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
                writer.Write(hash);
                writer.Write(Tail);
            }

            content = buffer.ToArray();
        }

        var target = PathOf(info.Step);
        WriteAtomically(target, content);
        if (isBest)
        {
            WriteAtomically(Path.Combine(Directory, BestFileName), content);
        }

        foreach (var old in List().Skip(_keep))
        {
            File.Delete(old);
        }

        // Temporary files of writes that a crash interrupted.
        foreach (var stale in System.IO.Directory.EnumerateFiles(Directory, "*.tmp"))
        {
            File.Delete(stale);
        }

        return target;
    }

    /// <summary>The newest complete, undamaged checkpoint, or null when there is none (damaged files are skipped).</summary>
    public (string Path, CheckpointInfo Info, byte[] Content, int SectionsOffset)? LoadLatest()
    {
        foreach (var path in List())
        {
            if (TryRead(path) is { } loaded)
            {
                return (path, loaded.Info, loaded.Content, loaded.Offset);
            }
        }

        return null;
    }

    /// <summary>Reads and verifies one checkpoint file.</summary>
    /// <exception cref="InvalidDataException">The file is damaged or not a MedVlp checkpoint (the message says which).</exception>
    public static (CheckpointInfo Info, byte[] Content, int Offset) Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var content = File.ReadAllBytes(path);
        var min = Head.Length + 4 + 32 + Tail.Length;
        if (content.Length < min || !content.AsSpan(0, Head.Length).SequenceEqual(Head) || !content.AsSpan(content.Length - Tail.Length).SequenceEqual(Tail))
        {
            throw new InvalidDataException($"{path} is not a complete MedVlp checkpoint (bad start or end marker).");
        }

        var body = content.Length - 32 - Tail.Length;
        if (!SHA256.HashData(content.AsSpan(0, body)).AsSpan().SequenceEqual(content.AsSpan(body, 32)))
        {
            throw new InvalidDataException($"{path} is damaged: its SHA-256 does not match its content.");
        }

        var headerLength = BitConverter.ToInt32(content, Head.Length);
        if (headerLength <= 0 || Head.Length + 4 + headerLength > body)
        {
            throw new InvalidDataException($"{path}: header length {headerLength} is out of range.");
        }

        CheckpointInfo info;
        try
        {
            info = JsonSerializer.Deserialize<CheckpointInfo>(content.AsSpan(Head.Length + 4, headerLength), Json)
                ?? throw new InvalidDataException($"{path}: empty header.");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{path}: header is not valid JSON ({ex.Message}).", ex);
        }

        if (info.Format != Format)
        {
            throw new InvalidDataException($"{path}: format \"{info.Format}\", expected \"{Format}\".");
        }

        return (info, content[..body], Head.Length + 4 + headerLength);
    }

    private static (CheckpointInfo Info, byte[] Content, int Offset)? TryRead(string path)
    {
        try
        {
            return Read(path);
        }
        catch (InvalidDataException)
        {
            return null;
        }
    }

    private static void WriteAtomically(string target, byte[] content)
    {
        var temp = target + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
        {
            var pause = Environment.GetEnvironmentVariable(TestPauseVariable);
            if (pause is not null && int.TryParse(pause, CultureInfo.InvariantCulture, out var ms) && ms > 0)
            {
                stream.Write(content, 0, content.Length / 2);
                stream.Flush(flushToDisk: true);
                Thread.Sleep(ms);
                stream.Write(content, content.Length / 2, content.Length - (content.Length / 2));
            }
            else
            {
                stream.Write(content);
            }

            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, target, overwrite: true);
    }
}
