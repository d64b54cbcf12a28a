using System.Diagnostics;
using System.Globalization;
using MedVlp.Distributed;
using MedVlp.Losses;
using MedVlp.Modeling;
using MedVlp.Synthetic;
using MedVlp.Text;
using MedVlp.Volumes;
using MedVlp.Volumes.Transforms;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MedVlp.DistributedWorker;

/// <summary>
/// Data-parallel CLIP training of a tiny dual encoder (the clip3d architecture: ViT volume encoder, BERT text encoder,
/// symmetric InfoNCE over the global batch), written against the public distributed API: replicas created with
/// different seeds and then broadcast from rank 0, the loss sees the gathered batch, gradients are averaged in
/// buckets, AdamW with clipping. Each rank takes every W-th example of the global batch, as <c>VolumeDataLoader</c>
/// shards. Rank 0 alone writes the weights. (Checkpoints and resume: see TrainerRun, which goes through the Trainer.)
/// </summary>
internal static class TrainLoop
{
    public static int Run(ProcessGroup group, Dictionary<string, string> options)
    {
        var vocab = options.String("vocab") ?? throw new ArgumentException("--vocab is required");
        var perRank = options.Int("batch", 4);
        var steps = options.Int("steps", 3);
        var pairCount = options.Int("pairs", 16);
        var seed = options.Int("seed", 11);
        var failRank = options.Int("fail-rank", -1);
        var failStep = options.Int("fail-step", -1);
        var pidDirectory = options.String("pid-dir");
        var output = options.String("out");
        var size = options.Int("size", 16);
        torch.set_num_threads(options.Int("threads", 1));

        var rank = group.Rank;
        var world = group.WorldSize;
        var globalBatch = perRank * world;
        if (pairCount < globalBatch)
        {
            throw new ArgumentException($"{pairCount} pairs are fewer than one global batch of {globalBatch}");
        }

        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(vocab);
        var config = Config(tokenizer.VocabularySize, size);
        TransformPipeline preprocessing = new(
        [
            new MinMaxNormalize { OutputMin = 0, OutputMax = 1 },
            new ResizeLongestSide { Size = size, AlignCorners = true, Interpolation = Interpolation.Trilinear },
            new CropOrPad { Size = new VolumeShape(size, size, size), FillValue = 0, Centering = CropOrPadCentering.ExtraAfter },
        ], "worker");

        // Every rank starts from different random weights; the broadcast below must make them rank 0's.
        using var model = VisionLanguageModel.Create(config, tokenizer, preprocessing, seed: 100 + rank);
        var pairs = SyntheticBrainDataset.Generate(pairCount, seed);
        using var volumes = model.PrepareVolumes(pairs.Select(p => p.Volume).ToArray());
        var (ids, mask) = model.PrepareTexts(pairs.Select(p => p.Report).ToArray());
        using var idsAll = ids;
        using var maskAll = mask;

        var named = model.Module.named_parameters().Where(p => p.parameter.requires_grad).ToArray();
        var parameters = named.Select(p => p.parameter).ToArray();
        using var optimizer = optim.AdamW(
            [
                new AdamW.ParamGroup { Parameters = named.Where(p => Decays(p.parameter)).Select(p => p.parameter), Options = new AdamW.Options { weight_decay = 0.05 } },
                new AdamW.ParamGroup { Parameters = named.Where(p => !Decays(p.parameter)).Select(p => p.parameter), Options = new AdamW.Options { weight_decay = 0 } },
            ],
            lr: options.Double("lr", 1e-3), beta1: 0.9, beta2: 0.98, eps: 1e-6);
        using var dataParallel = new DataParallel(group, parameters);
        dataParallel.BroadcastParameters(model.Module.buffers());
        using var loss = new ClipLoss(new ClipLossOptions
        {
            Gatherer = new ProcessGroupGatherer(group, options.String("gather-gradient") switch
            {
                "local" => GatheredGradient.LocalOnly,
                "allreduce" => GatheredGradient.AllReduced,
                _ => GatheredGradient.ScaledByWorldSize,
            }),
            LocalLoss = options.String("local-loss") == "true",
        });

        var stepsPerEpoch = pairCount / globalBatch;
        var order = Enumerable.Range(0, pairCount).ToArray();
        var random = new Random(seed);
        model.Module.train();
        var clock = Stopwatch.StartNew();
        var firstStepSeconds = 0.0;
        for (var step = 0; step < steps; step++)
        {
            var b = step % stepsPerEpoch;
            if (b == 0)
            {
                random.Shuffle(order); // the same permutation on every rank
            }

            if (rank == failRank && step == failStep)
            {
                throw new InvalidOperationException($"injected failure at step {step}");
            }

            var mine = Enumerable.Range(0, perRank).Select(j => (long)order[(b * globalBatch) + (j * world) + rank]).ToArray();
            double value;
            using (var scope = NewDisposeScope())
            {
                var index = tensor(mine);
                optimizer.zero_grad();
                var image = model.DualEncoder.EncodeImages(volumes.index_select(0, index));
                var text = model.DualEncoder.EncodeTexts(idsAll.index_select(0, index), maskAll.index_select(0, index));
                var result = loss.forward(new ContrastiveInput(image, text, model.DualEncoder.LogitScale()));
                result.Total.backward();
                dataParallel.AllReduceGradients();
                nn.utils.clip_grad_norm_(parameters, 1.0);
                optimizer.step();
                value = result.Total.ToDouble();
            }

            if (step == 0)
            {
                firstStepSeconds = clock.Elapsed.TotalSeconds;
                clock.Restart();
                if (pidDirectory is not null)
                {
                    File.WriteAllText(Path.Combine(pidDirectory, $"rank{rank}.pid"), Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
                }
            }

            if (group.IsMain)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {step + 1} loss {value:R}"));
            }
        }

        if (group.IsMain)
        {
            var later = steps > 1 ? clock.Elapsed.TotalSeconds / (steps - 1) : double.NaN;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"world {world} per-rank batch {perRank} first step {firstStepSeconds:F3} s, later steps {later:F4} s/step"));
            if (output is not null)
            {
                WriteWeights(output, named);
            }
        }

        return 0;
    }

    /// <summary>AdamW decays weight matrices only (biases, norm scales and the logit scale get none).</summary>
    private static bool Decays(Tensor parameter) => parameter.dim() >= 2;

    /// <summary>The tiny clip3d configuration of the tests (dropout off, so ranks and batch sizes can be compared exactly).</summary>
    private static Clip3dConfig Config(int vocabularySize, int size) => new()
    {
        Volume = new VolumeTransformerConfig { InputSize = size, PatchSize = 8, Width = 16, Depth = 1, Heads = 2, MlpRatio = 2 },
        Text = new BertConfig
        {
            VocabSize = vocabularySize,
            HiddenSize = 16,
            NumHiddenLayers = 1,
            NumAttentionHeads = 2,
            IntermediateSize = 32,
            MaxPositionEmbeddings = 128,
            HiddenDropoutProb = 0,
            AttentionProbsDropoutProb = 0,
            AddPoolingLayer = false,
        },
        EmbeddingDim = 8,
        TextPooling = TextPooling.Mean,
        MaxTextTokens = 128,
    };

    /// <summary>name, element count, float32 values; for every trainable parameter in order.</summary>
    internal static void WriteWeights(string path, (string name, Parameter parameter)[] named)
    {
        using (var stream = File.Create(path + ".tmp"))
        using (var writer = new BinaryWriter(stream))
        {
            WriteWeights(writer, named);
        }

        File.Move(path + ".tmp", path, overwrite: true);
    }

    private static void WriteWeights(BinaryWriter writer, (string name, Parameter parameter)[] named)
    {
        writer.Write(named.Length);
        foreach (var (name, p) in named)
        {
            using var cpu = p.detach().cpu();
            var values = cpu.data<float>().ToArray();
            writer.Write(name);
            writer.Write(values.Length);
            foreach (var v in values)
            {
                writer.Write(v);
            }
        }
    }
}
