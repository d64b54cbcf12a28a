#!/usr/bin/python3
"""PyTorch reference for `dotnet benchmarks/MedVlp.Benchmarks/bin/Release/net10.0/MedVlp.Benchmarks.dll resnet THREADS REPEATS`
(benchmarks/MedVlp.Benchmarks/ResNetSideBySide.cs): ResNet-50 forward + backward in train mode (batch-norm statistics
updated, gradients of every parameter, loss = sum of the output), images per second.

2d: torchvision's own `resnet50()` (1000-class head) on 8 x 3 x 224 x 224.
3d: the same torchvision model with every 2D layer swapped for its 3D twin (Conv2d -> Conv3d with the same kernel, stride,
padding; BatchNorm2d -> BatchNorm3d; MaxPool2d -> MaxPool3d; AdaptiveAvgPool2d -> AdaptiveAvgPool3d), 1 input channel, no
head, on 2 x 1 x 64^3: what MedVlp's `ResNetConfig { SpatialDims = 3, InChannels = 1 }` builds.

Usage: /usr/bin/python3 benchmarks/reference/resnet_torch.py --threads 1 --repeats 3
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torchvision


def to_3d(module):
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d):
            k, s, p = child.kernel_size[0], child.stride[0], child.padding[0]
            setattr(module, name, nn.Conv3d(child.in_channels, child.out_channels, k, stride=s, padding=p, bias=child.bias is not None))
        elif isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.BatchNorm3d(child.num_features))
        elif isinstance(child, nn.MaxPool2d):
            setattr(module, name, nn.MaxPool3d(child.kernel_size, child.stride, child.padding))
        elif isinstance(child, nn.AdaptiveAvgPool2d):
            setattr(module, name, nn.AdaptiveAvgPool3d(1))
        else:
            to_3d(child)
    return module


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--case", choices=["2d", "3d", "all"], default="all", help="run one case only")
    p.add_argument("--batch", type=int, help="batch size instead of 8 (2d) / 2 (3d)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"PyTorch {torch.__version__}, torchvision {torchvision.__version__}, {torch.get_num_threads()} thread(s), oneDNN {torch.backends.mkldnn.is_available()}")
    torch.manual_seed(0)
    m3 = torchvision.models.resnet50()
    m3.conv1 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
    m3.fc = nn.Identity()
    cases = [("2d", torchvision.models.resnet50(), (8, 3, 224, 224)), ("3d", to_3d(m3), (2, 1, 64, 64, 64))]
    for name, model, shape in cases:
        if a.case not in ("all", name):
            continue
        if a.batch:
            shape = (a.batch,) + shape[1:]
        model.train()
        x = torch.rand(shape)
        params = list(model.parameters())

        def step():
            model.zero_grad(set_to_none=False)
            model(x).sum().backward()

        for _ in range(a.warmup):
            step()
        wall, cpu = [], []
        for _ in range(a.repeats):
            c0, t0 = time.process_time(), time.perf_counter()
            step()
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        b = shape[0]
        print(f"{name}: input {list(shape)}, {sum(q.numel() for q in params):,} parameters: {b / statistics.median(wall):.2f} images/s (best {b / min(wall):.2f}), "
              f"{b / statistics.median(cpu):.2f} images per CPU second")


if __name__ == "__main__":
    main()
