using System.Numerics.Tensors;

namespace MedVlp.Losses;

/// <summary>
/// CPU evaluation paths for inference without autograd (retrieval, zero-shot scoring, validation losses), on
/// row-major <see cref="float"/> spans with SIMD kernels from <see cref="TensorPrimitives"/>: L2 normalisation,
/// similarity matrices, row-wise softmax, the symmetric InfoNCE value and top-k. They agree with the TorchSharp
/// losses (<see cref="ClipLoss"/>) to float precision; nothing here allocates native memory.
/// </summary>
public static class Similarity
{
    /// <summary>L2-normalises each row of a row-major matrix in place (rows of norm 0 are left as they are).</summary>
    /// <param name="matrix">The matrix, <c>rows x dimension</c>.</param>
    /// <param name="dimension">The row length.</param>
    public static void NormalizeRows(Span<float> matrix, int dimension)
    {
        var rows = Rows(matrix.Length, dimension, nameof(matrix));
        for (var r = 0; r < rows; r++)
        {
            var row = matrix.Slice(r * dimension, dimension);
            var norm = TensorPrimitives.Norm(row);
            if (norm > 0)
            {
                TensorPrimitives.Divide(row, norm, row);
            }
        }
    }

    /// <summary>The dot-product matrix S[i, j] = scale * &lt;a_i, b_j&gt; of two row-major matrices.</summary>
    /// <param name="a">The first matrix, <c>n x dimension</c> (e.g. image embeddings).</param>
    /// <param name="b">The second matrix, <c>m x dimension</c> (e.g. text embeddings).</param>
    /// <param name="dimension">The embedding width.</param>
    /// <param name="destination">Receives S, <c>n x m</c>, row-major.</param>
    /// <param name="scale">A factor applied to every entry (e.g. the CLIP logit scale); 1 for plain dot products.</param>
    /// <remarks>Computed as one blocked matrix product (each value of <paramref name="a"/> is read from memory once for
    /// every four rows of <paramref name="b"/>), on all cores when the product is large.</remarks>
    public static unsafe void DotProducts(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int dimension, Span<float> destination, float scale = 1f)
    {
        var n = Rows(a.Length, dimension, nameof(a));
        var m = Rows(b.Length, dimension, nameof(b));
        CheckDestination(destination.Length, (long)n * m, nameof(destination));
        if (n == 0 || m == 0)
        {
            return;
        }

        fixed (float* pa = a, pb = b, pd = destination)
        {
            nint aAddress = (nint)pa, bAddress = (nint)pb, dAddress = (nint)pd;
            const int BlockRows = 64;
            var blocks = (n + BlockRows - 1) / BlockRows;
            void Run(int block)
            {
                var start = block * BlockRows;
                var count = Math.Min(BlockRows, n - start);
                var target = (float*)dAddress + ((long)start * m);
                DotKernel.Block((float*)aAddress + ((long)start * dimension), count, (float*)bAddress, m, dimension, target);
                if (scale != 1f)
                {
                    var span = new Span<float>(target, count * m);
                    TensorPrimitives.Multiply(span, scale, span);
                }
            }

            if (blocks == 1 || (long)n * m * dimension < ParallelThreshold)
            {
                for (var block = 0; block < blocks; block++)
                {
                    Run(block);
                }
            }
            else
            {
                Parallel.For(0, blocks, Run);
            }
        }
    }

    /// <summary>The L2 norm of every row, computed once so that repeated cosine similarities against the same matrix
    /// do not recompute them (or normalise the rows once with <see cref="NormalizeRows"/> and use dot products).</summary>
    /// <param name="matrix">The matrix, <c>rows x dimension</c>.</param>
    /// <param name="dimension">The row length.</param>
    /// <param name="destination">Receives one norm per row.</param>
    public static void RowNorms(ReadOnlySpan<float> matrix, int dimension, Span<float> destination)
    {
        var rows = Rows(matrix.Length, dimension, nameof(matrix));
        CheckDestination(destination.Length, rows, nameof(destination));
        for (var r = 0; r < rows; r++)
        {
            destination[r] = TensorPrimitives.Norm(matrix.Slice(r * dimension, dimension));
        }
    }

    /// <summary>The cosine-similarity matrix S[i, j] = cos(a_i, b_j) (rows of norm 0 give 0).</summary>
    /// <param name="a">The first matrix, <c>n x dimension</c>.</param>
    /// <param name="b">The second matrix, <c>m x dimension</c>.</param>
    /// <param name="dimension">The embedding width.</param>
    /// <param name="destination">Receives S, <c>n x m</c>, row-major.</param>
    public static void CosineSimilarities(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int dimension, Span<float> destination)
    {
        var normsA = new float[Rows(a.Length, dimension, nameof(a))];
        var normsB = new float[Rows(b.Length, dimension, nameof(b))];
        RowNorms(a, dimension, normsA);
        RowNorms(b, dimension, normsB);
        CosineSimilarities(a, normsA, b, normsB, dimension, destination);
    }

    /// <summary>The cosine-similarity matrix from the matrices and their row norms (from <see cref="RowNorms"/>, computed
    /// once per matrix): one matrix product, then a division by the outer product of the norms.</summary>
    /// <param name="a">The first matrix, <c>n x dimension</c>.</param>
    /// <param name="normsA">The row norms of <paramref name="a"/>.</param>
    /// <param name="b">The second matrix, <c>m x dimension</c>.</param>
    /// <param name="normsB">The row norms of <paramref name="b"/>.</param>
    /// <param name="dimension">The embedding width.</param>
    /// <param name="destination">Receives S, <c>n x m</c>, row-major.</param>
    public static void CosineSimilarities(ReadOnlySpan<float> a, ReadOnlySpan<float> normsA, ReadOnlySpan<float> b, ReadOnlySpan<float> normsB, int dimension, Span<float> destination)
    {
        var n = Rows(a.Length, dimension, nameof(a));
        var m = Rows(b.Length, dimension, nameof(b));
        CheckDestination(normsA.Length, n, nameof(normsA));
        CheckDestination(normsB.Length, m, nameof(normsB));
        DotProducts(a, b, dimension, destination);
        for (var i = 0; i < n; i++)
        {
            var target = destination.Slice(i * m, m);
            for (var j = 0; j < m; j++)
            {
                var denominator = normsA[i] * normsB[j];
                target[j] = denominator > 0 ? target[j] / denominator : 0f;
            }
        }
    }

    /// <summary>Row-wise softmax of <c>scale * logits</c> (numerically stable), e.g. zero-shot class probabilities.</summary>
    /// <param name="logits">The logits, <c>rows x columns</c>, row-major.</param>
    /// <param name="columns">The row length.</param>
    /// <param name="destination">Receives the probabilities (may be the same memory as <paramref name="logits"/>).</param>
    /// <param name="scale">A factor applied before the softmax (a logit scale, or 1 / temperature).</param>
    public static void SoftmaxRows(ReadOnlySpan<float> logits, int columns, Span<float> destination, float scale = 1f)
    {
        var rows = Rows(logits.Length, columns, nameof(logits));
        CheckDestination(destination.Length, logits.Length, nameof(destination));
        for (var r = 0; r < rows; r++)
        {
            var target = destination.Slice(r * columns, columns);
            TensorPrimitives.Multiply(logits.Slice(r * columns, columns), scale, target);
            TensorPrimitives.SoftMax(target, target);
        }
    }

    /// <summary>
    /// The symmetric InfoNCE (CLIP) loss value of paired embeddings: logits = scale * I T^T,
    /// [CE(logits, arange B) + CE(logits^T, arange B)] / 2 with label smoothing, as <see cref="ClipLoss"/> computes it.
    /// </summary>
    /// <param name="image">Image embeddings, <c>B x dimension</c> (normalised by the caller, as for <see cref="ClipLoss"/>).</param>
    /// <param name="text">Text embeddings, <c>B x dimension</c>.</param>
    /// <param name="dimension">The embedding width.</param>
    /// <param name="logitScale">The (exponentiated) logit scale.</param>
    /// <param name="labelSmoothing">Label smoothing in [0, 1).</param>
    /// <returns>The loss value.</returns>
    public static double InfoNce(ReadOnlySpan<float> image, ReadOnlySpan<float> text, int dimension, float logitScale, double labelSmoothing = 0)
    {
        var b = Rows(image.Length, dimension, nameof(image));
        if (Rows(text.Length, dimension, nameof(text)) != b)
        {
            throw new ArgumentException($"image has {b} rows but text has {text.Length / dimension}; InfoNCE needs pairs.", nameof(text));
        }

        if (!(labelSmoothing >= 0 && labelSmoothing < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(labelSmoothing), labelSmoothing, "Label smoothing must be in [0, 1).");
        }

        if (b == 0)
        {
            throw new ArgumentException("InfoNCE needs at least one pair.", nameof(image));
        }

        var logits = new float[b * b];
        DotProducts(image, text, dimension, logits, logitScale);
        var transposed = new float[b * b];
        for (var i = 0; i < b; i++)
        {
            for (var j = 0; j < b; j++)
            {
                transposed[(j * b) + i] = logits[(i * b) + j];
            }
        }

        return (RowCrossEntropy(logits, b, labelSmoothing) + RowCrossEntropy(transposed, b, labelSmoothing)) / 2;
    }

    /// <summary>The indices of the <paramref name="k"/> largest scores, largest first (ties: lower index first; NaN last).</summary>
    /// <param name="scores">The scores.</param>
    /// <param name="k">How many (at most the number of scores).</param>
    /// <returns>The indices.</returns>
    public static int[] TopK(ReadOnlySpan<float> scores, int k)
    {
        var result = new int[k];
        TopK(scores, k, result);
        return result;
    }

    /// <summary>The indices of the <paramref name="k"/> largest scores, largest first (ties: lower index first; NaN last).</summary>
    /// <param name="scores">The scores.</param>
    /// <param name="k">How many (at most the number of scores).</param>
    /// <param name="destination">Receives the <paramref name="k"/> indices.</param>
    public static void TopK(ReadOnlySpan<float> scores, int k, Span<int> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(k, scores.Length);
        CheckDestination(destination.Length, k, nameof(destination));
        if (k == 0)
        {
            return;
        }

        // Keep the best k in destination, sorted, by insertion: O(n k), fast for the small k of retrieval.
        var count = 0;
        for (var i = 0; i < scores.Length; i++)
        {
            var score = scores[i];
            if (count == k && !Better(score, i, scores[destination[k - 1]], destination[k - 1]))
            {
                continue;
            }

            var position = count < k ? count++ : k - 1;
            while (position > 0 && Better(score, i, scores[destination[position - 1]], destination[position - 1]))
            {
                destination[position] = destination[position - 1];
                position--;
            }

            destination[position] = i;
        }
    }

    /// <summary>Row-wise top-k of a score matrix (e.g. retrieval of the best texts for each image).</summary>
    /// <param name="scores">The scores, <c>rows x columns</c>, row-major.</param>
    /// <param name="columns">The row length.</param>
    /// <param name="k">How many per row.</param>
    /// <param name="destination">Receives <c>rows x k</c> indices, row-major.</param>
    public static void TopKRows(ReadOnlySpan<float> scores, int columns, int k, Span<int> destination)
    {
        var rows = Rows(scores.Length, columns, nameof(scores));
        CheckDestination(destination.Length, (long)rows * k, nameof(destination));
        for (var r = 0; r < rows; r++)
        {
            TopK(scores.Slice(r * columns, columns), k, destination.Slice(r * k, k));
        }
    }

    /// <summary>
    /// Exact maximum-inner-product search: for each query, the <paramref name="k"/> rows of <paramref name="matrix"/> with
    /// the largest dot product, best first (ties: lower row first; NaN last). With L2-normalised rows and queries this is
    /// cosine top-k. One fused, multi-threaded pass: the matrix is read once for all queries (in blocks of rows, scored
    /// against every query by a register-blocked SIMD kernel) and no score matrix is kept.
    /// </summary>
    /// <param name="matrix">The rows to search, <c>rows x dimension</c>, row-major.</param>
    /// <param name="queries">The queries, <c>queryCount x dimension</c>, row-major.</param>
    /// <param name="dimension">The embedding width.</param>
    /// <param name="k">Results per query (at most the number of rows).</param>
    /// <param name="indices">Receives <c>queryCount x k</c> row indices.</param>
    /// <param name="scores">Receives <c>queryCount x k</c> dot products.</param>
    /// <param name="maxDegreeOfParallelism">Threads to use; -1 for all cores.</param>
    public static unsafe void TopKDotProducts(ReadOnlySpan<float> matrix, ReadOnlySpan<float> queries, int dimension, int k, Span<int> indices, Span<float> scores, int maxDegreeOfParallelism = -1)
    {
        var rows = Rows(matrix.Length, dimension, nameof(matrix));
        fixed (float* m = matrix)
        {
            TopKDotProducts(m, false, rows, queries, dimension, k, indices, scores, maxDegreeOfParallelism);
        }
    }

    /// <summary>As <see cref="TopKDotProducts(ReadOnlySpan{float}, ReadOnlySpan{float}, int, int, Span{int}, Span{float}, int)"/>
    /// over a half-precision matrix, read at half the bytes. Against fewer than four queries the rows are read in registers
    /// without conversion (every product is exact; the summation order differs from the float32 kernel's, so scores agree
    /// with those of the float32 widening of the matrix to the last bits); against four or more, blocks are widened once
    /// and the scores equal those of the float32 widening bit for bit.</summary>
    /// <param name="matrix">The rows to search, <c>rows x dimension</c>, row-major.</param>
    /// <param name="queries">The queries, <c>queryCount x dimension</c>, row-major.</param>
    /// <param name="dimension">The embedding width.</param>
    /// <param name="k">Results per query (at most the number of rows).</param>
    /// <param name="indices">Receives <c>queryCount x k</c> row indices.</param>
    /// <param name="scores">Receives <c>queryCount x k</c> dot products.</param>
    /// <param name="maxDegreeOfParallelism">Threads to use; -1 for all cores.</param>
    public static unsafe void TopKDotProducts(ReadOnlySpan<Half> matrix, ReadOnlySpan<float> queries, int dimension, int k, Span<int> indices, Span<float> scores, int maxDegreeOfParallelism = -1)
    {
        var rows = Rows(matrix.Length, dimension, nameof(matrix));
        fixed (Half* m = matrix)
        {
            TopKDotProducts(m, true, rows, queries, dimension, k, indices, scores, maxDegreeOfParallelism);
        }
    }

    private const long ParallelThreshold = 1L << 21;
    private const int SearchBlockRows = 64;

    /// <summary>About how many matrix bytes a thread claims at a time: large enough to stream (hardware prefetchers
    /// ramp up within a few kilobytes), small enough that a thread the OS deschedules leaves little for the others to
    /// wait on (the others keep claiming chunks).</summary>
    private const int SearchChunkBytes = 1 << 20;

    private sealed class SearchState(int queryCount, int k, int widenedFloats)
    {
        public readonly TopKHeap[] Heaps = CreateHeaps(queryCount, k, new float[queryCount * k], new long[queryCount * k]);
        public readonly float[] Scores = new float[SearchBlockRows * queryCount];
        public readonly float[] Widened = new float[widenedFloats];

        public static TopKHeap[] CreateHeaps(int queryCount, int k, float[] scores, long[] indices)
        {
            var heaps = new TopKHeap[queryCount];
            for (var q = 0; q < queryCount; q++)
            {
                heaps[q] = new TopKHeap(scores, indices, q * k, k);
            }

            return heaps;
        }
    }

    private static unsafe void TopKDotProducts(void* matrix, bool half, int rows, ReadOnlySpan<float> queries, int dimension, int k, Span<int> indices, Span<float> scores, int maxDegreeOfParallelism)
    {
        var queryCount = Rows(queries.Length, dimension, nameof(queries));
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(k, rows);
        CheckDestination(indices.Length, (long)queryCount * k, nameof(indices));
        CheckDestination(scores.Length, (long)queryCount * k, nameof(scores));
        if (k == 0 || queryCount == 0)
        {
            return;
        }

        var globalScores = new float[queryCount * k];
        var globalIndices = new long[queryCount * k];
        var global = SearchState.CreateHeaps(queryCount, k, globalScores, globalIndices);
        var merge = new Lock();
        var threads = maxDegreeOfParallelism > 0 ? maxDegreeOfParallelism : Environment.ProcessorCount;
        if ((long)rows * queryCount * dimension < ParallelThreshold)
        {
            threads = 1;
        }

        // Half rows against a few queries are widened in registers by the kernel (the matrix is read once, at half the
        // bytes); against four or more queries a block is widened once into a buffer and then serves every query.
        var widenBlocks = half && queryCount >= 4;
        var elementSize = half ? 2 : 4;

        // The matrix is cut into chunks of whole blocks that threads claim in order from a shared counter: each thread
        // streams a chunk front to back, and no thread waits on a fixed share of another that the OS has descheduled.
        var chunkRows = (int)Math.Clamp(SearchChunkBytes / ((long)dimension * elementSize) / SearchBlockRows * SearchBlockRows, SearchBlockRows, 1 << 20);
        var chunks = (int)(((long)rows + chunkRows - 1) / chunkRows);
        threads = Math.Min(threads, chunks);
        var next = -1;
        // See DotKernel.BlockHalf: half rows read as floats times 2^-112 against queries times 2^112 (exact below 2^16).
        float[]? scaled = null;
        if (half && !widenBlocks && TensorPrimitives.MaxMagnitude(queries) < 65536f)
        {
            scaled = new float[queries.Length];
            TensorPrimitives.Multiply(queries, DotKernel.HalfScale, scaled);
        }

        fixed (float* q = queries, s = scaled)
        {
            nint matrixAddress = (nint)matrix, queryAddress = (nint)q, scaledAddress = (nint)s;
            void Work(SearchState state)
            {
                fixed (float* blockScores = state.Scores, widened = state.Widened)
                {
                    int chunk;
                    while ((chunk = Interlocked.Increment(ref next)) < chunks)
                    {
                        var end = (int)Math.Min(rows, ((long)chunk + 1) * chunkRows);
                        for (var start = chunk * chunkRows; start < end; start += SearchBlockRows)
                        {
                            var count = Math.Min(SearchBlockRows, end - start);
                            if (!half)
                            {
                                DotKernel.Block((float*)matrixAddress + ((long)start * dimension), count, (float*)queryAddress, queryCount, dimension, blockScores);
                            }
                            else if (widenBlocks)
                            {
                                var from = new ReadOnlySpan<Half>((Half*)matrixAddress + ((long)start * dimension), count * dimension);
                                TensorPrimitives.ConvertToSingle(from, new Span<float>(widened, count * dimension));
                                DotKernel.Block(widened, count, (float*)queryAddress, queryCount, dimension, blockScores);
                            }
                            else
                            {
                                DotKernel.BlockHalf((Half*)matrixAddress + ((long)start * dimension), count, (float*)queryAddress, (float*)scaledAddress, queryCount, dimension, blockScores);
                            }

                            for (var qi = 0; qi < queryCount; qi++)
                            {
                                ref var heap = ref state.Heaps[qi];
                                var threshold = heap.Threshold;
                                for (var r = 0; r < count; r++)
                                {
                                    var s = blockScores[(r * queryCount) + qi];
                                    if (!(s < threshold))
                                    {
                                        heap.Push(s, start + r);
                                        threshold = heap.Threshold;
                                    }
                                }
                            }
                        }
                    }
                }
            }

            void Merge(SearchState state)
            {
                var drainedScores = new float[k];
                var drainedIndices = new long[k];
                lock (merge)
                {
                    for (var qi = 0; qi < queryCount; qi++)
                    {
                        ref var local = ref state.Heaps[qi];
                        var count = local.Count;
                        local.Drain(drainedScores, drainedIndices);
                        for (var n = 0; n < count; n++)
                        {
                            global[qi].Push(drainedScores[n], drainedIndices[n]);
                        }
                    }
                }
            }

            var widenedFloats = widenBlocks ? SearchBlockRows * dimension : 0;
            if (threads == 1)
            {
                var state = new SearchState(queryCount, k, widenedFloats);
                Work(state);
                Merge(state);
            }
            else
            {
                // One work loop per thread; a loop that starts late (a busy thread pool) finds the chunks taken and ends.
                Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads },
                    () => new SearchState(queryCount, k, widenedFloats),
                    (_, _, state) =>
                    {
                        Work(state);
                        return state;
                    },
                    Merge);
            }
        }

        var outScores = new float[k];
        var outIndices = new long[k];
        for (var qi = 0; qi < queryCount; qi++)
        {
            global[qi].Drain(outScores, outIndices);
            outScores.CopyTo(scores.Slice(qi * k, k));
            for (var n = 0; n < k; n++)
            {
                indices[(qi * k) + n] = (int)outIndices[n];
            }
        }
    }

    private static bool Better(float score, int index, float other, int otherIndex)
    {
        if (float.IsNaN(score))
        {
            return false;
        }

        return float.IsNaN(other) || score > other || (score == other && index < otherIndex);
    }

    /// <summary>mean_i [ logsumexp_j l_ij - (1 - eps) l_ii - eps/n sum_j l_ij ] in double precision.</summary>
    private static double RowCrossEntropy(ReadOnlySpan<float> logits, int n, double smoothing)
    {
        var total = 0.0;
        var shifted = new float[n];
        for (var i = 0; i < n; i++)
        {
            var row = logits.Slice(i * n, n);
            var max = TensorPrimitives.Max(row);
            TensorPrimitives.Subtract(row, max, shifted);
            TensorPrimitives.Exp(shifted, shifted);
            var logSumExp = max + Math.Log(TensorPrimitives.Sum<float>(shifted));
            var loss = logSumExp - ((1 - smoothing) * row[i]);
            if (smoothing != 0)
            {
                loss -= smoothing / n * TensorPrimitives.Sum(row);
            }

            total += loss;
        }

        return total / n;
    }

    private static int Rows(int length, int dimension, string name)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 1);
        return length % dimension == 0
            ? length / dimension
            : throw new ArgumentException($"{name} has {length} values, not a whole number of rows of {dimension}.", name);
    }

    private static void CheckDestination(int length, long needed, string name)
    {
        if (length < needed)
        {
            throw new ArgumentException($"{name} holds {length} values but {needed} are needed.", name);
        }
    }
}
