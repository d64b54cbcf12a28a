using System.Diagnostics;
using System.Globalization;
using MedVlp.Distributed;
using MedVlp.Losses;
using MedVlp.Modeling;
using MedVlp.Synthetic;
using MedVlp.Text;
using MedVlp.Training;
using MedVlp.Volumes;
using MedVlp.Volumes.Transforms;

namespace MedVlp.DistributedWorker;

/// <summary>
/// The same data-parallel CLIP training through the library's <see cref="Trainer"/> (TrainerOptions.ProcessGroup,
/// sharded PreparedTrainingData, the recipe's gatherer, rank-0 checkpoints and resume): the tiny clip3d model without
/// dropout, so one process with batch 2B and two with B can be compared. Rank 0 writes the final weights.
/// </summary>
internal static class TrainerRun
{
    public static int Run(ProcessGroup group, Dictionary<string, string> options)
    {
        var vocab = options.String("vocab") ?? throw new ArgumentException("--vocab is required");
        var perRank = options.Int("batch", 4);
        var steps = options.Int("steps", 4);
        var pairCount = options.Int("pairs", 16);
        var seed = options.Int("seed", 11);
        var dieRank = options.Int("die-rank", -1);
        var dieStep = options.Int("die-step", -1);
        var output = options.String("out");
        TorchSharp.torch.set_num_threads(1);

        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(vocab);
        var config = new Clip3dConfig
        {
            Volume = new VolumeTransformerConfig { InputSize = 16, PatchSize = 8, Width = 16, Depth = 1, Heads = 2, MlpRatio = 2 },
            Text = new BertConfig
            {
                VocabSize = tokenizer.VocabularySize, HiddenSize = 16, NumHiddenLayers = 1, NumAttentionHeads = 2, IntermediateSize = 32,
                MaxPositionEmbeddings = 128, HiddenDropoutProb = 0, AttentionProbsDropoutProb = 0, AddPoolingLayer = false,
            },
            EmbeddingDim = 8,
            MaxTextTokens = 128,
        };
        TransformPipeline preprocessing = new(
        [
            new MinMaxNormalize { OutputMin = 0, OutputMax = 1 },
            new ResizeLongestSide { Size = 16, AlignCorners = true, Interpolation = Interpolation.Trilinear },
            new CropOrPad { Size = new VolumeShape(16, 16, 16), FillValue = 0, Centering = CropOrPadCentering.ExtraAfter },
        ], "worker");

        // Different initial weights per rank: the Trainer must broadcast rank 0's.
        using var model = VisionLanguageModel.Create(config, tokenizer, preprocessing, seed: 100 + group.Rank);
        var recipe = new TrainingRecipe { Name = "worker", Size = "tiny", Seed = seed, Steps = steps, CheckpointEvery = options.Int("checkpoint-every", 0) };
        using var objective = recipe.CreateObjective(model, group);
        var cases = SyntheticBrainDataset.Generate(pairCount, seed);
        using var data = new PreparedTrainingData([.. cases.Select(c => c.Volume)], [.. cases.Select(c => c.Report)],
            v => model.PrepareVolumesForTraining(v), new TrainingBatchCollator(tokenizer, config.MaxTextTokens, 0.5, seed), perRank, seed)
        {
            ShardIndex = group.Rank,
            ShardCount = group.WorldSize,
        };
        using var trainer = new Trainer(objective, recipe.CreateTrainerOptions(options.String("out-dir"), options.String("resume") == "true", group));
        var progress = new Inline(p =>
        {
            if (group.IsMain)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {p.Step} loss {p.Losses["total"]:R}"));
            }

            if (group.Rank == dieRank && p.Step == dieStep)
            {
                using var self = Process.GetCurrentProcess();
                self.Kill(); // SIGKILL, no cleanup
            }
        });
        trainer.Fit(data, progress: progress);
        if (group.IsMain && output is not null)
        {
            TrainLoop.WriteWeights(output, [.. model.Module.named_parameters().Where(p => p.parameter.requires_grad)]);
        }

        return 0;
    }

    private sealed class Inline(Action<TrainingProgress> handler) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => handler(value);
    }
}
