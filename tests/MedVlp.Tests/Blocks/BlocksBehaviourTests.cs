using MedVlp.Modeling.Backbones;
using MedVlp.Modeling.Blocks;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests.Blocks;

/// <summary>Defining properties of the blocks: rotary relativity, cache = full forward, masks, and no leaked tensors.</summary>
public sealed class BlocksBehaviourTests
{
    [Theory]
    [InlineData(3, 12)]
    [InlineData(3, 16)] // 16 is not a multiple of 6: 2 channels stay unrotated
    [InlineData(1, 8)]
    public void RotaryScoresDependOnlyOnRelativePosition(int axes, int headSize)
    {
        using var scope = NewDisposeScope();
        var grid = Enumerable.Repeat(3L, axes).ToArray();
        using var tables = new RotaryEmbedding(headSize, axes).Tables(grid);
        var n = tables.Cos.shape[0];
        manual_seed(5);
        // The same query and key vector at every position: after rotation, q_m . k_n must depend on m - n only.
        var q = tables.Apply(randn(1, headSize).expand(n, -1).reshape(1, 1, n, headSize))[0, 0];
        var k = tables.Apply(randn(1, headSize).expand(n, -1).reshape(1, 1, n, headSize))[0, 0];
        var scores = q.matmul(k.t()).data<float>().ToArray();
        var coordinates = Enumerable.Range(0, (int)n).Select(i => Coordinates(i, grid)).ToArray();
        var byOffset = new Dictionary<string, float>();
        var distinct = new HashSet<int>();
        for (var m = 0; m < n; m++)
        {
            for (var j = 0; j < n; j++)
            {
                var offset = string.Join(",", coordinates[m].Zip(coordinates[j], (a, b) => a - b));
                var s = scores[(m * n) + j];
                if (byOffset.TryGetValue(offset, out var first))
                {
                    Assert.True(Math.Abs(first - s) < 1e-4, $"offset {offset}: {first} vs {s}");
                }
                else
                {
                    byOffset[offset] = s;
                }

                distinct.Add((int)Math.Round(s * 1000));
            }
        }

        // ... and it does depend on the offset (not a constant, i.e. the rotation is not the identity).
        Assert.True(distinct.Count > byOffset.Count / 2, $"only {distinct.Count} distinct scores for {byOffset.Count} offsets");
    }

    [Fact]
    public void RotationPreservesNormsAndLeavesThePrefixAlone()
    {
        using var scope = NewDisposeScope();
        using var tables = new RotaryEmbedding(12, 3).Tables([2, 2, 2], prefixTokens: 1);
        var x = randn(2, 3, 9, 12);
        var y = tables.Apply(x);
        Assert.True(allclose(x.norm(-1), y.norm(-1), 1e-5, 1e-5));
        Assert.True(x[.., .., 0].eq(y[.., .., 0]).all().item<bool>());
        Assert.False(x[.., .., 1..].allclose(y[.., .., 1..]));
        Assert.Throws<ArgumentException>(() => tables.Apply(randn(1, 1, 8, 12)));
    }

    [Fact]
    public void Gpt2IncrementalDecodingWithCacheEqualsFullForward()
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        using var model = new Gpt2LMHeadModel(BlocksParityTests.TinyGpt2());
        model.eval();
        using var noGrad = no_grad();
        var ids = randint(0, 40, [2, 9], ScalarType.Int64);
        using var full = model.Compute(ids, null);
        using var cache = new KeyValueCache(2);
        var steps = new List<Tensor>();
        using (var prompt = model.Compute(ids[.., ..4], null, cache: cache))
        {
            steps.Add(prompt.Logits.clone());
        }

        for (var t = 4; t < 9; t++)
        {
            using var step = model.Compute(ids[.., t..(t + 1)], null, cache: cache);
            steps.Add(step.Logits.clone());
        }

        Assert.Equal(9, cache.Length);
        BlocksGolden.AssertClose(full.Logits, cat(steps, 1), "cached decoding");
    }

    [Fact]
    public void Gpt2CachedDecodingWithInputsEmbedsAndLeftPaddingMatchesFullForward()
    {
        using var scope = NewDisposeScope();
        manual_seed(12);
        using var model = new Gpt2LMHeadModel(BlocksParityTests.TinyGpt2());
        model.eval();
        using var noGrad = no_grad();
        // Row 1 is left-padded by 2; positions skip the padding as generate does.
        var embeds = randn(2, 6, 16);
        var mask = tensor(new long[] { 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1 }, [2, 6]);
        var positions = (mask.cumsum(1) - 1).clamp_min(0);
        using var full = model.Compute(null, embeds, mask, positionIds: positions);
        using var cache = new KeyValueCache(2);
        using var first = model.Compute(null, embeds[.., ..3], mask[.., ..3], positionIds: positions[.., ..3], cache: cache);
        using var rest = model.Compute(null, embeds[.., 3..], mask, positionIds: positions[.., 3..], cache: cache);
        // Compare real (non-padding) positions only.
        BlocksGolden.AssertClose(full.Logits[.., 3..], rest.Logits, "cached decoding after inputs_embeds");
        BlocksGolden.AssertClose(full.Logits[0, ..3], first.Logits[0], "prompt row 0");
        BlocksGolden.AssertClose(full.Logits[1, 2..3], first.Logits[1, 2..3], "prompt row 1");
    }

    [Fact]
    public void GreedyGenerationEqualsArgmaxOfRepeatedFullForwards()
    {
        using var scope = NewDisposeScope();
        manual_seed(13);
        using var model = new Gpt2LMHeadModel(BlocksParityTests.TinyGpt2());
        model.eval();
        var ids = randint(0, 40, [2, 3], ScalarType.Int64);
        var generated = model.GenerateGreedy(ids, null, null, maxNewTokens: 5, endOfText: -1);
        using var noGrad = no_grad();
        var sequence = ids;
        for (var step = 0; step < 5; step++)
        {
            using var output = model.Compute(sequence, null);
            sequence = cat([sequence, output.Logits[.., -1].argmax(-1).unsqueeze(1)], 1);
        }

        Assert.True(sequence[.., 3..].eq(generated).all().item<bool>());
    }

    [Fact]
    public void AttentionLayerCacheEqualsCausalFullForward()
    {
        using var scope = NewDisposeScope();
        manual_seed(14);
        using var layer = new TransformerLayer(new TransformerLayerOptions { Width = 16, Heads = 2, MlpHidden = 32, FeedForward = FeedForwardKind.SwiGlu });
        layer.eval();
        using var noGrad = no_grad();
        var x = randn(2, 7, 16);
        var full = layer.forward(x, AttentionMask.Causal(7, 7));
        using var cache = new AttentionCache();
        var parts = new List<Tensor>();
        for (var t = 0; t < 7; t++)
        {
            parts.Add(layer.forward(x[.., t..(t + 1)], AttentionMask.Causal(1, t + 1), null, cache));
        }

        BlocksGolden.AssertClose(full, cat(parts, 1), "layer cache");
    }

    [Fact]
    public void RotaryAttentionWithCacheEqualsFullForward()
    {
        using var scope = NewDisposeScope();
        manual_seed(17);
        using var attention = new Attention(new AttentionOptions { Width = 16, Heads = 2, QkvBias = QkvBias.QueryValue });
        using var noGrad = no_grad();
        var rotary = new RotaryEmbedding(8, axes: 1);
        var x = randn(1, 6, 16);
        using var all = rotary.Tables([6]);
        var full = attention.forward(x, AttentionMask.Causal(6, 6), all);
        using var cache = new AttentionCache();
        var parts = new List<Tensor>();
        for (var t = 0; t < 6; t++)
        {
            using var at = rotary.TablesAt(tensor(new long[] { t }, [1, 1]));
            parts.Add(attention.forward(x[.., t..(t + 1)], AttentionMask.Causal(1, t + 1), at, cache));
        }

        BlocksGolden.AssertClose(full, cat(parts, 1), "rotary cache");
    }

    [Fact]
    public void BadInputsGetClearExceptions()
    {
        using var scope = NewDisposeScope();
        using var attention = new Attention(new AttentionOptions { Width = 16, Heads = 2 });
        using var cross = new CrossAttention(16, 2, contextWidth: 24);
        using var bert = new BertLayer(BlocksParityTests.Options() with { CrossAttentionWidth = 24, QueryFeedForward = true });
        using var lm = new Gpt2LMHeadModel(BlocksParityTests.TinyGpt2());
        using var patches = new PatchEmbed3d(1, 16, 8);
        Assert.Contains("16", Assert.Throws<ArgumentException>(() => attention.forward(randn(2, 5, 12))).Message);
        Assert.Contains("24", Assert.Throws<ArgumentException>(() => cross.forward(randn(2, 3, 16), randn(2, 4, 16))).Message);
        Assert.Throws<ArgumentException>(() => bert.forward(randn(2, 5, 16), null, null, null, 3)); // queries need image tokens
        Assert.Throws<ArgumentException>(() => lm.Compute(randint(0, 40, [1, 17], ScalarType.Int64), null)); // 17 > 16 positions
        Assert.Throws<ArgumentException>(() => lm.Compute(randint(0, 40, [1, 4], ScalarType.Int64), randn(1, 4, 16)));
        Assert.Throws<ArgumentException>(() => patches.forward(randn([1, 1, 12, 16, 16])));
        Assert.Throws<ArgumentException>(() => new Attention(new AttentionOptions { Width = 15, Heads = 2 }));
        Assert.Throws<ArgumentException>(() => new RotaryEmbedding(7, 3));
    }

    [Fact]
    public void MaskTensorsAreWhatTheirNamesSay()
    {
        using var scope = NewDisposeScope();
        Assert.Equal(new[] { true, false, false, true, true, false, true, true, true }, AttentionMask.Causal(3, 3).flatten().data<bool>().ToArray());
        // Two new tokens after one cached: query 0 is at position 1.
        Assert.Equal(new[] { true, true, false, true, true, true }, AttentionMask.Causal(2, 3).flatten().data<bool>().ToArray());
        Assert.Equal(
            new[] { true, true, false, false, true, true, false, false, true, true, true, false, true, true, true, true },
            AttentionMask.PrefixCausal(4, 2).flatten().data<bool>().ToArray());
        var padding = AttentionMask.Padding(tensor(new long[] { 1, 1, 0 }, [1, 3]));
        Assert.Equal(new long[] { 1, 1, 1, 3 }, padding.shape);
        Assert.Equal(new[] { true, true, false }, padding.flatten().data<bool>().ToArray());
        var additive = AttentionMask.ToAdditive(padding, ScalarType.Float32).flatten().data<float>().ToArray();
        Assert.Equal(0f, additive[0]);
        Assert.Equal(float.MinValue, additive[2]);
        Assert.Throws<ArgumentException>(() => AttentionMask.Causal(4, 3));
        Assert.Throws<ArgumentException>(() => AttentionMask.PrefixCausal(3, 4));
    }

    [Theory]
    [InlineData("causal")]
    [InlineData("prefix")]
    [InlineData("padding")]
    public void MaskedAttentionIgnoresExactlyTheMaskedTokens(string kind)
    {
        using var scope = NewDisposeScope();
        manual_seed(15);
        using var attention = new Attention(new AttentionOptions { Width = 16, Heads = 2 });
        using var noGrad = no_grad();
        const int T = 6, Prefix = 2;
        var mask = kind switch
        {
            "causal" => AttentionMask.Causal(T, T),
            "prefix" => AttentionMask.PrefixCausal(T, Prefix),
            _ => AttentionMask.Padding(tensor(new long[] { 1, 1, 1, 1, 0, 0 }, [1, T])),
        };
        var x = randn(1, T, 16);
        var baseline = attention.forward(x, mask);
        for (var changed = 0; changed < T; changed++)
        {
            var perturbed = x.clone();
            perturbed[0, changed] += 1f;
            var y = attention.forward(perturbed, mask);
            for (var row = 0; row < T; row++)
            {
                var sees = kind switch
                {
                    "causal" => changed <= row,
                    "prefix" => changed < Prefix || (changed <= row && row >= Prefix),
                    _ => changed < 4,
                };
                var expectChange = sees || changed == row; // a token's own value always changes its row (through q)
                var moved = !y[0, row].allclose(baseline[0, row], 1e-6, 1e-6);
                Assert.True(expectChange == moved, $"{kind}: changing token {changed} {(moved ? "changed" : "did not change")} row {row}");
            }
        }
    }

    [Fact]
    public void MaskTokenReplacesExactlyTheMaskedTokens()
    {
        using var scope = NewDisposeScope();
        using var token = new MaskToken(8);
        var x = randn(2, 4, 8);
        var mask = tensor(new[] { true, false, false, true, false, false, false, false }, [2, 4]);
        var y = token.forward(x, mask);
        var learned = token.parameters().Single().reshape(8);
        Assert.True(y[0, 0].allclose(learned) && y[0, 3].allclose(learned));
        Assert.True(y[0, 1].allclose(x[0, 1]) && y[1].allclose(x[1]));
        Assert.Throws<ArgumentException>(() => token.forward(x, mask[.., ..3]));
    }

    [Fact]
    public void DropPathDropsWholeSamplesAndRescalesTheRest()
    {
        using var scope = NewDisposeScope();
        using var drop = new DropPath(0.5);
        var x = ones(400, 3, 2);
        drop.train();
        var y = drop.forward(x);
        var perSample = y.reshape(400, -1);
        var zero = perSample.eq(0).all(1);
        var scaled = perSample.eq(2).all(1);
        Assert.True(zero.logical_or(scaled).all().item<bool>(), "every sample is either dropped or scaled by 1 / (1 - p)");
        var dropped = zero.sum().item<long>();
        Assert.InRange(dropped, 140, 260);
        drop.eval();
        Assert.True(drop.forward(x).eq(x).all().item<bool>());
    }

    [Fact]
    public void ForwardsLeaveNoTensorAlive()
    {
        manual_seed(16);
        using var layer = new TransformerLayer(new TransformerLayerOptions { Width = 16, Heads = 2, MlpHidden = 32, QkvBias = QkvBias.QueryValue, LayerScaleInit = 0.1 });
        using var bert = new BertLayer(BlocksParityTests.Options() with { CrossAttentionWidth = 24, QueryFeedForward = true });
        using var lm = new Gpt2LMHeadModel(BlocksParityTests.TinyGpt2());
        using var qformer = new QFormer(new QFormerConfig { VocabSize = 30, HiddenSize = 16, NumHiddenLayers = 2, NumAttentionHeads = 2, IntermediateSize = 32, MaxPositionEmbeddings = 20, EncoderWidth = 24, QueryTokens = 3 });
        using var eva = new EvaVisionTransformer(new EvaVitConfig { ImageSize = 16, PatchSize = 8, Width = 16, Depth = 2, Heads = 2, MlpRatio = 2 });
        using var pool = new ClipAttentionPool(16, 2, 4);
        using var rotary = new RotaryEmbedding(8, 3).Tables([1, 2, 2], prefixTokens: 1);
        using var x = randn(2, 5, 16);
        using var image = randn(2, 7, 24);
        using var ids = randint(0, 30, [2, 5], ScalarType.Int64);
        using var pixels = randn(2, 3, 16, 16);
        using var causal = AttentionMask.Causal(5, 5);
        using var idsMask = ones_like(ids);
        using var tokens = x[.., 1..];
        var calls = new Func<Tensor>[]
        {
            () => layer.forward(x, causal, rotary),
            () => bert.forward(x, null, image, null, 3),
            () => lm.forward(ids),
            () =>
            {
                using var output = lm.Compute(ids, null, labels: ids);
                return output.Loss!.alias();
            },
            () => qformer.forward(image),
            () => qformer.EncodeText(ids, idsMask),
            () => eva.forward(pixels),
            () => pool.forward(tokens),
        };
        foreach (var training in new[] { false, true })
        {
            foreach (var call in calls)
            {
                call().Dispose(); // warm up lazily created state
                var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
                var result = call();
                if (training)
                {
                    using var total = result.sum();
                    total.backward();
                    foreach (var m in new nn.Module[] { layer, bert, lm, qformer, eva, pool })
                    {
                        m.zero_grad();
                    }
                }

                result.Dispose();
                Assert.True(before == DisposeScopeManager.Statistics.ThreadTotalLiveCount, $"call {Array.IndexOf(calls, call)} (training {training}) left {DisposeScopeManager.Statistics.ThreadTotalLiveCount - before} tensors alive");
            }
        }
    }

    private static long[] Coordinates(long index, long[] grid)
    {
        var result = new long[grid.Length];
        for (var axis = grid.Length - 1; axis >= 0; axis--)
        {
            result[axis] = index % grid[axis];
            index /= grid[axis];
        }

        return result;
    }
}
