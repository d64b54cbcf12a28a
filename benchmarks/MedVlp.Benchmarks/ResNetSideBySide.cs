using System.Globalization;
using MedVlp.Modeling.Backbones;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Benchmarks;

/// <summary>
/// <c>-- resnet [threads] [repeats] [2d|3d|all] [batch]</c>: ResNet-50 forward + backward (train mode, batch-norm statistics updated, gradients
/// of every parameter) in images per second, 2D (3 x 224 x 224, 1000-class head, torchvision's <c>resnet50()</c>) and 3D
/// (1 x 64^3, the same stages with 3D convolutions), timed as benchmarks/reference/resnet_torch.py times torchvision's model
/// in PyTorch on the same shapes and threads.
/// </summary>
internal static class ResNetSideBySide
{
    private const int Warmup = 2;

    public static void Run(int threads, int repeats, string? only = null, int? batchSize = null)
    {
        set_num_threads(threads);
        Console.WriteLine($"MedVlp ResNet-50, TorchSharp on libtorch, {threads} thread(s), .NET {Environment.Version}");
        var cases = new (string Name, ResNetConfig Config, long[] Shape)[]
        {
            ("2d", ResNetConfig.ResNet50 with { NumClasses = 1000 }, [8, 3, 224, 224]),
            ("3d", ResNetConfig.ResNet50 with { SpatialDims = 3, InChannels = 1 }, [2, 1, 64, 64, 64]),
        };
        foreach (var (name, config, caseShape) in cases.Where(c => only is null || only == "all" || c.Name == only))
        {
            long[] shape = batchSize is int b ? [b, .. caseShape[1..]] : caseShape;
            manual_seed(0);
            using var model = new ResNet(config);
            model.train();
            using var input = rand(shape);
            var parameters = model.parameters().ToArray();
            void Step()
            {
                using var scope = NewDisposeScope();
                foreach (var p in parameters)
                {
                    p.grad?.zero_();
                }

                model.forward(input).sum().backward();
            }

            var times = CpuTimer.Measure(Step, Warmup, repeats);
            var batch = shape[0];
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{name}: input [{string.Join(", ", shape)}], {parameters.Sum(p => p.numel()):N0} parameters: {batch * 1000 / times.Median:F2} images/s (best {batch * 1000 / times.Min:F2}), {batch * 1000 / times.Cpu:F2} images per CPU second"));
        }
    }
}
