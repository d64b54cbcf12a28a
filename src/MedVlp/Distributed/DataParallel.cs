using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MedVlp.Distributed;

/// <summary>Options of <see cref="DataParallel"/>.</summary>
public sealed class DataParallelOptions
{
    /// <summary>Gradient bytes per all-reduce (PyTorch DDP's default bucket is 25 MiB). Default 25 MiB.</summary>
    public long BucketBytes { get; init; } = 25L << 20;
}

/// <summary>
/// Data-parallel training over a <see cref="ProcessGroup"/>: every process holds a full replica, trains on its shard
/// of each global batch, and <see cref="AllReduceGradients"/> averages the gradients before the optimizer step, so
/// the replicas stay identical. Call <see cref="BroadcastParameters"/> once before training so all replicas start
/// from rank 0's weights.
/// </summary>
/// <remarks>
/// <para>Gradients are flattened into buckets of <see cref="DataParallelOptions.BucketBytes"/> (parameters in reverse
/// order, as PyTorch's DDP, grouped by element type and device), all-reduced and copied back. The all-reduce runs
/// after the backward, not overlapped with it: TorchSharp 0.107 exposes no tensor gradient hooks
/// (<c>register_hook</c>, <c>register_post_accumulate_grad_hook</c>) and no module backward hooks, only forward hooks
/// and custom autograd functions, so there is no reliable signal that a parameter's gradient is final while the
/// backward still runs.</para>
/// <para>A parameter without a gradient on this process contributes zeros; it stays without a gradient only when it
/// has none on every process (the reduced bucket slice is all zeros), so the optimizer skips it everywhere.</para>
/// </remarks>
public sealed class DataParallel : IDisposable
{
    private readonly ProcessGroup _group;
    private readonly Parameter[] _parameters;
    private readonly Bucket[] _buckets;
    private bool _disposed;

    /// <summary>Creates the synchroniser for <paramref name="parameters"/> (the trainable parameters, in the same order on every process).</summary>
    /// <param name="group">The processes.</param>
    /// <param name="parameters">The parameters whose gradients are averaged.</param>
    /// <param name="options">Options; null for the defaults.</param>
    public DataParallel(ProcessGroup group, IEnumerable<Parameter> parameters, DataParallelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(parameters);
        options ??= new DataParallelOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BucketBytes, 1L, nameof(options));
        _group = group;
        _parameters = parameters.ToArray();
        _buckets = MakeBuckets(_parameters, options.BucketBytes);
        CheckSameLayout();
    }

    /// <summary>The processes.</summary>
    public ProcessGroup Group => _group;

    /// <summary>The number of all-reduce buckets.</summary>
    public int BucketCount => _buckets.Length;

    /// <summary>Copies rank 0's values of the parameters (and of <paramref name="buffers"/>, such as norm statistics) to every process.</summary>
    /// <param name="buffers">Extra tensors to broadcast (for example <c>module.buffers()</c>); null for none.</param>
    public void BroadcastParameters(IEnumerable<Tensor>? buffers = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var noGrad = no_grad();
        foreach (var p in _parameters)
        {
            _group.Broadcast(p, 0);
        }

        foreach (var b in buffers ?? [])
        {
            _group.Broadcast(b, 0);
        }
    }

    /// <summary>Replaces every parameter's gradient by its average over the processes. Call it after the backward and
    /// before gradient clipping and the optimizer step, on every process.</summary>
    public void AllReduceGradients()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_group.WorldSize == 1)
        {
            return;
        }

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var bucket in _buckets)
        {
            var flat = bucket.Buffer;
            var hadGradient = new bool[bucket.Members.Length];
            for (var i = 0; i < bucket.Members.Length; i++)
            {
                var (p, offset, count) = bucket.Members[i];
                using var slice = flat.narrow(0, offset, count);
                var grad = p.grad;
                if (grad is null)
                {
                    slice.zero_();
                }
                else
                {
                    hadGradient[i] = true;
                    using var view = grad.reshape(-1);
                    slice.copy_(view);
                }
            }

            _group.AllReduce(flat, ReduceOperation.Average);
            for (var i = 0; i < bucket.Members.Length; i++)
            {
                var (p, offset, count) = bucket.Members[i];
                using var slice = flat.narrow(0, offset, count);
                var grad = p.grad;
                if (grad is null)
                {
                    if (!hadGradient[i] && slice.count_nonzero().ToInt64() == 0)
                    {
                        continue;
                    }

                    p.grad = slice.reshape(p.shape).clone().DetachFromDisposeScope();
                }
                else
                {
                    using var shaped = slice.view(grad.shape);
                    grad.copy_(shaped);
                }
            }
        }
    }

    /// <summary>Releases the buckets.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var b in _buckets)
        {
            b.Buffer.Dispose();
        }
    }

    /// <summary>Every process must hold the same parameters in the same order; a mismatch would silently mix unrelated weights.</summary>
    private void CheckSameLayout()
    {
        if (_group.WorldSize == 1)
        {
            return;
        }

        Span<long> mine = [_parameters.Length, _parameters.Sum(p => p.numel()), _buckets.Length];
        Span<long> root = [mine[0], mine[1], mine[2]];
        _group.Broadcast(root, 0);
        if (!mine.SequenceEqual(root))
        {
            throw new InvalidOperationException(
                $"Rank {_group.Rank} has {mine[0]} parameters with {mine[1]} elements in {mine[2]} buckets, rank 0 has {root[0]} with {root[1]} in {root[2]}: " +
                "every process must build the same model.");
        }
    }

    private static Bucket[] MakeBuckets(Parameter[] parameters, long bucketBytes)
    {
        var buckets = new List<Bucket>();
        foreach (var group in parameters.Reverse().GroupBy(p => (p.dtype, p.device.type, p.device.index)))
        {
            var members = new List<(Parameter, long, long)>();
            long elements = 0;
            var elementSize = group.First().ElementSize;
            foreach (var p in group)
            {
                if (members.Count > 0 && (elements + p.numel()) * elementSize > bucketBytes)
                {
                    buckets.Add(new Bucket(members.ToArray(), elements, group.Key.dtype, group.First().device));
                    members.Clear();
                    elements = 0;
                }

                members.Add((p, elements, p.numel()));
                elements += p.numel();
            }

            if (members.Count > 0)
            {
                buckets.Add(new Bucket(members.ToArray(), elements, group.Key.dtype, group.First().device));
            }
        }

        return buckets.ToArray();
    }

    private sealed class Bucket
    {
        public Bucket((Parameter Parameter, long Offset, long Count)[] members, long elements, ScalarType type, Device device)
        {
            Members = members;
            Buffer = zeros(elements, type, device).DetachFromDisposeScope();
        }

        public (Parameter Parameter, long Offset, long Count)[] Members { get; }

        public Tensor Buffer { get; }
    }
}
