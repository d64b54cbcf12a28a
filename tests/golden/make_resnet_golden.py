"""Golden values for MedVlp's ResNet (src/MedVlp/Modeling/Backbones/ResNet.cs) from torchvision 0.14's own code, never
from MedVlp's:

  * 2D cases: torchvision.models.resnet.ResNet built through its own _make_layer with Bottleneck blocks, only the widths
    made tiny (stem 8, planes 4, 8, 16, 32, one block per stage; torchvision hard-codes 64 / 64..512 in __init__, so the
    stem is assigned here exactly as __init__ does), fc replaced by Identity (the pooled feature), layer4 map by a hook.
  * 3D cases (stem 4, planes 2, 4, 8, 16): the same torchvision code with its module-level conv1x1 / conv3x3 helpers pointed at Conv3d and
    norm_layer=BatchNorm3d, stem Conv3d / MaxPool3d / AdaptiveAvgPool3d: "the same stages in 3D".

Every case randomises all weights, BatchNorm affine parameters and running statistics, runs in eval or train mode on a
tiny input and stores: param/<name>, buffer/<name> (running_mean, running_var before the forward), input/x, map (layer4),
pooled, probe_map, probe_pooled, grad/<name> and grad_input/x of sum(map * probe_map) + sum(pooled * probe_pooled), and
in train mode after/<name> (the running statistics after the forward, momentum 0.1, unbiased variance).

Also writes data/resnet50_keys.json: torchvision.models.resnet50() state_dict names and shapes (buffers included).
Writes data/resnet_golden.safetensors and data/resnet50_keys.json.
Run: /usr/bin/python3 tests/golden/make_resnet_golden.py
"""
import json
import os

import torch
import torch.nn as nn
import torchvision
import torchvision.models.resnet as tvr
from golden_io import save_f32_safetensors  # the shared writer (tests/golden/golden_io.py)

torch.manual_seed(2025)
here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
tensors = {}


def tiny_resnet(in_channels, dims, stem, planes):
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
    saved = (tvr.conv1x1, tvr.conv3x3)
    if dims == 3:
        tvr.conv1x1 = lambda i, o, stride=1: nn.Conv3d(i, o, kernel_size=1, stride=stride, bias=False)
        tvr.conv3x3 = lambda i, o, stride=1, groups=1, dilation=1: nn.Conv3d(i, o, kernel_size=3, stride=stride, padding=dilation, groups=groups, bias=False, dilation=dilation)
    try:
        m = tvr.ResNet.__new__(tvr.ResNet)
        nn.Module.__init__(m)
        # As torchvision's ResNet.__init__, with a tiny stem width in place of 64.
        m._norm_layer = norm
        m.inplanes = stem
        m.dilation = 1
        m.groups = 1
        m.base_width = 64
        m.conv1 = conv(in_channels, m.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        m.bn1 = norm(m.inplanes)
        m.relu = nn.ReLU(inplace=True)
        m.maxpool = (nn.MaxPool2d if dims == 2 else nn.MaxPool3d)(kernel_size=3, stride=2, padding=1)
        m.layer1 = m._make_layer(tvr.Bottleneck, planes[0], 1)
        m.layer2 = m._make_layer(tvr.Bottleneck, planes[1], 1, stride=2)
        m.layer3 = m._make_layer(tvr.Bottleneck, planes[2], 1, stride=2)
        m.layer4 = m._make_layer(tvr.Bottleneck, planes[3], 1, stride=2)
        m.avgpool = (nn.AdaptiveAvgPool2d if dims == 2 else nn.AdaptiveAvgPool3d)(1)
        m.fc = nn.Identity()
    finally:
        tvr.conv1x1, tvr.conv3x3 = saved
    return m


def case(name, in_channels, dims, shape, train, stem=8, planes=(4, 8, 16, 32)):
    m = tiny_resnet(in_channels, dims, stem, planes)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        for n, b in m.named_buffers():
            if n.endswith("running_mean"):
                b.copy_(torch.randn_like(b) * 0.2)
            elif n.endswith("running_var"):
                b.copy_(torch.rand_like(b) + 0.5)
    for n, p in m.named_parameters():
        tensors[f"{name}/param/{n}"] = p.detach().clone()
    for n, b in m.named_buffers():
        if not n.endswith("num_batches_tracked"):
            tensors[f"{name}/buffer/{n}"] = b.detach().clone()
    # The weights and input are float32 values; the reference runs in float64 so that its own rounding is not part of the
    # comparison (train-mode BatchNorm gradients through five normalisations amplify float32 rounding).
    m.double()
    m.train(train)
    x = torch.randn(*shape).double().requires_grad_(True)
    captured = {}
    m.layer4.register_forward_hook(lambda mod, i, o: captured.__setitem__("map", o))
    pooled = m(x)
    fmap = captured["map"]
    probe_map, probe_pooled = torch.randn_like(fmap), torch.randn_like(pooled)
    loss = (fmap * probe_map).sum() + (pooled * probe_pooled).sum()
    names = [n for n, _ in m.named_parameters()]
    grads = torch.autograd.grad(loss, [p for _, p in m.named_parameters()] + [x])
    tensors[f"{name}/input/x"] = x.detach().clone()
    tensors[f"{name}/map"] = fmap.detach().clone()
    tensors[f"{name}/pooled"] = pooled.detach().clone()
    tensors[f"{name}/probe_map"] = probe_map
    tensors[f"{name}/probe_pooled"] = probe_pooled
    for n, g in zip(names, grads[:-1]):
        tensors[f"{name}/grad/{n}"] = g.detach().clone()
    tensors[f"{name}/grad_input/x"] = grads[-1].detach().clone()
    if train:
        for n, b in m.named_buffers():
            if not n.endswith("num_batches_tracked"):
                tensors[f"{name}/after/{n}"] = b.detach().clone()


case("resnet2d_eval_rgb", 3, 2, (2, 3, 40, 36), train=False)
case("resnet2d_train_grey", 1, 2, (4, 1, 48, 48), train=True)
case("resnet3d_eval", 1, 3, (2, 1, 20, 18, 16), train=False, stem=4, planes=(2, 4, 8, 16))
case("resnet3d_train", 1, 3, (4, 1, 16, 16, 24), train=True, stem=4, planes=(2, 4, 8, 16))


save_f32_safetensors(os.path.join(here, "resnet_golden.safetensors"), tensors)

full = torchvision.models.resnet50()
keys = {n: list(t.shape) for n, t in full.state_dict().items()}
with open(os.path.join(here, "resnet50_keys.json"), "w") as f:
    json.dump({"torchvision": torchvision.__version__, "keys": keys,
               "parameters": sum(p.numel() for p in full.parameters())}, f, indent=0, sort_keys=True)
print("wrote resnet_golden.safetensors (%d tensors) and resnet50_keys.json (%d keys, %d parameters)"
      % (len(tensors), len(keys), sum(p.numel() for p in full.parameters())))
