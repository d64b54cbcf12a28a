"""Golden values for MedVlp's LVM-Med model and objective (src/MedVlp/Architectures/LvmMed) from a PyTorch reference
written after the paper (Nguyen et al., NeurIPS 2023, arXiv 2306.11925, section 3 and figure 2) and the method summary in
shared/reference/methods.md section 5, never from MedVlp's code. The pre-training code was never released, so the
reference implements the documented defaults of MedVlp's options, at tiny sizes:

  * encoder    f_theta: torchvision 0.14's own ResNet / Bottleneck code (stem 8, planes 4, 8, 16, 32, one block per stage,
               1 input channel), fc = Identity; the layer4 map by a hook (the local features, (N, h*w, 128))
  * projector  h_theta: Sequential(Linear(128, 64), BatchNorm1d(64), ReLU, Linear(64, 32)); each view forwarded on its own
               (its own batch statistics), the model in training mode
  * graphs     per view, z = normalize(h_theta(pooled)); k-NN graph (k = 2, N = 6) on the detached cosine similarities,
               neighbours from the most similar, ties by the lower index, no self loops
  * message    g_eps: h_i = z_i + W mean_{j in N(i)} z_j + b (Linear(32, 32), random weights), then normalised again
  * affinities c_v(i, a) = <h1_i, h2_a> + 0.5 * mean_p max_q cos(l1_i,p, l2_a,q);
               c_e(e, f) = 0.2 * cos(h1_s(e) - h1_t(e), h2_s(f) - h2_t(f)) over the directed k-NN edges
  * matching   X = argmax over permutations of sum c_v(i, p(i)) + sum_{e, f: p maps e onto f} c_e(e, f): Lawler's QAP,
               solved EXACTLY by enumerating the 720 permutations (MedVlp's test passes an exhaustive solver too)
  * loss       Hamming(X, I) / N; black-box differentiation (Vlastelica et al. 2020), lambda = 80:
               X' = argmax <c_v - lambda dL/dX, X> + edge term; dL/dc_v = (X - X') / lambda, dL/dc_e = (Y - Y') / lambda
               with Y the edge-matching indicator of each solution (Rolinek et al. 2020)

Everything runs in float64 on float32 weights and inputs. Stores param/<name> (encoder.*, projector.*,
message_passing.message.*), buffer/<name>, input/view1, input/view2, pooled1, z1, z2, local1, cv, ce, assignment,
perturbed, loss, grad/<name> and after/<name> (running statistics after both views' forwards). Also writes
data/lvmmed_released_tiny.pt: the encoder's state dict as a torch.save checkpoint in torchvision names with DataParallel's
"module." prefix and an fc head (as released weights may carry), for the weight-loading test.
Writes data/lvmmed_golden.safetensors. Run: /usr/bin/python3 tests/golden/make_lvmmed_golden.py
"""
import itertools
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.models.resnet as tvr
from golden_io import save_f32_safetensors  # the shared writer (tests/golden/golden_io.py)

torch.manual_seed(1123)
here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
N, K, LAM, LOCAL_W, EDGE_W = 6, 2, 80.0, 0.5, 0.2


def tiny_resnet():
    m = tvr.ResNet.__new__(tvr.ResNet)
    nn.Module.__init__(m)
    m._norm_layer, m.inplanes, m.dilation, m.groups, m.base_width = nn.BatchNorm2d, 8, 1, 1, 64
    m.conv1 = nn.Conv2d(1, 8, kernel_size=7, stride=2, padding=3, bias=False)
    m.bn1 = nn.BatchNorm2d(8)
    m.relu = nn.ReLU(inplace=True)
    m.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    m.layer1 = m._make_layer(tvr.Bottleneck, 4, 1)
    m.layer2 = m._make_layer(tvr.Bottleneck, 8, 1, stride=2)
    m.layer3 = m._make_layer(tvr.Bottleneck, 16, 1, stride=2)
    m.layer4 = m._make_layer(tvr.Bottleneck, 32, 1, stride=2)
    m.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    m.fc = nn.Identity()
    return m


encoder = tiny_resnet()
projector = nn.Sequential(nn.Linear(128, 64), nn.BatchNorm1d(64), nn.ReLU(inplace=True), nn.Linear(64, 32))
message = nn.Linear(32, 32)
parts = {"encoder.": encoder, "projector.": projector, "message_passing.message.": message}
with torch.no_grad():
    for m, std in [(encoder, 0.3), (projector, 0.15), (message, 0.2)]:
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * std)
        for n, b in m.named_buffers():
            if n.endswith("running_mean"):
                b.copy_(torch.randn_like(b) * 0.2)
            elif n.endswith("running_var"):
                b.copy_(torch.rand_like(b) + 0.5)

tensors = {}
params = {}
for prefix, m in parts.items():
    params.update({prefix + n: p for n, p in m.named_parameters()})
    tensors.update({f"buffer/{prefix}{n}": b.detach().clone() for n, b in m.named_buffers() if not n.endswith("num_batches_tracked")})
for n, p in params.items():
    tensors[f"param/{n}"] = p.detach().clone()

# The released-weights checkpoint: the encoder in torchvision names, DataParallel prefix, a classifier head besides.
released = {"module." + n: t.detach().clone() for n, t in encoder.state_dict().items()}
released["module.fc.weight"] = torch.randn(5, 128)
released["module.fc.bias"] = torch.randn(5)
torch.save(released, os.path.join(here, "lvmmed_released_tiny.pt"))

# Two views of six images: the second is the first flipped left-right with noise and a gamma change.
view1 = torch.rand(N, 1, 64, 64)
view2 = (view1.flip(-1) ** 1.3 + 0.05 * torch.randn(N, 1, 64, 64)).float()
tensors["input/view1"], tensors["input/view2"] = view1, view2

for m in parts.values():
    m.double()
    m.train()

maps = {}
encoder.layer4.register_forward_hook(lambda mod, inp, out: maps.__setitem__("map", out))


def encode(x):
    pooled = encoder(x.double()).flatten(1)
    local = maps["map"].flatten(2).transpose(1, 2)
    return pooled, projector(pooled), local


def knn(z):
    sim = (z @ z.T).detach()
    src, dst = [], []
    for i in range(N):
        keys = [(float("inf") if j == i else -sim[i, j].item(), j) for j in range(N)]
        for _, j in sorted(keys)[:K]:
            src.append(i)
            dst.append(j)
    return src, dst


def message_pass(z, edges):
    a = torch.zeros(N, N, dtype=z.dtype)
    a[edges[0], edges[1]] = 1
    mean = (a / a.sum(1, keepdim=True).clamp_min(1)) @ z
    return F.normalize(z + message(mean), dim=-1)


def local_affinity(l1, l2):
    p, q, d = l1.shape[1], l2.shape[1], l1.shape[2]
    a = F.normalize(l1, dim=-1).reshape(N * p, d)
    b = F.normalize(l2, dim=-1).reshape(N * q, d)
    return (a @ b.T).reshape(N, p, N, q).amax(3).mean(1)


def solve(cv, ce, e1, e2):
    index2 = {(s, t): f for f, (s, t) in enumerate(zip(*e2))}
    best, best_p = None, None
    for perm in itertools.permutations(range(N)):
        score = sum(cv[i, perm[i]] for i in range(N))
        for e, (s, t) in enumerate(zip(*e1)):
            f = index2.get((perm[s], perm[t]))
            if f is not None:
                score += ce[e, f]
        if best is None or score > best + 1e-12:
            best, best_p = score, perm
    return list(best_p)


def edge_indicator(perm, e1, e2):
    index2 = {(s, t): f for f, (s, t) in enumerate(zip(*e2))}
    y = torch.zeros(len(e1[0]), len(e2[0]), dtype=torch.float64)
    for e, (s, t) in enumerate(zip(*e1)):
        f = index2.get((perm[s], perm[t]))
        if f is not None:
            y[e, f] = 1
    return y


def matrix(perm):
    x = torch.zeros(N, N, dtype=torch.float64)
    x[range(N), perm] = 1
    return x


class BlackBoxQap(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cv, ce, e1, e2):
        perm = solve(cv.detach().numpy(), ce.detach().numpy(), e1, e2)
        ctx.save_for_backward(cv, ce)
        ctx.edges, ctx.perm = (e1, e2), perm
        return matrix(perm)

    @staticmethod
    def backward(ctx, g):
        cv, ce = ctx.saved_tensors
        e1, e2 = ctx.edges
        perturbed = solve((cv - LAM * g).detach().numpy(), ce.detach().numpy(), e1, e2)
        ctx_store["perturbed"] = perturbed
        dcv = (matrix(ctx.perm) - matrix(perturbed)) / LAM
        dce = (edge_indicator(ctx.perm, e1, e2) - edge_indicator(perturbed, e1, e2)) / LAM
        return dcv, dce, None, None


ctx_store = {}
pooled1, p1, l1 = encode(view1)
_, p2, l2 = encode(view2)
z1, z2 = F.normalize(p1, dim=-1), F.normalize(p2, dim=-1)
e1, e2 = knn(z1), knn(z2)
h1, h2 = message_pass(z1, e1), message_pass(z2, e2)
cv = h1 @ h2.T + LOCAL_W * local_affinity(l1, l2)
f1 = F.normalize(h1[e1[0]] - h1[e1[1]], dim=-1)
f2 = F.normalize(h2[e2[0]] - h2[e2[1]], dim=-1)
ce = EDGE_W * f1 @ f2.T
x = BlackBoxQap.apply(cv, ce, e1, e2)
eye = torch.eye(N, dtype=torch.float64)
loss = (x * (1 - eye) + (1 - x) * eye).sum() / N
names = list(params.keys())
grads = torch.autograd.grad(loss, [params[n] for n in names], allow_unused=True)
assert loss.item() > 0, "the views must not match perfectly, or there is no gradient"
assert ctx_store["perturbed"] != x.argmax(1).tolist(), "the perturbed solve must differ, or the gradient is zero"
for n, g in zip(names, grads):
    tensors[f"grad/{n}"] = torch.zeros_like(params[n]) if g is None else g.detach().clone()
for prefix, m in parts.items():
    tensors.update({f"after/{prefix}{n}": b.detach().clone() for n, b in m.named_buffers() if not n.endswith("num_batches_tracked")})
tensors.update({"pooled1": pooled1, "z1": p1, "z2": p2, "local1": l1, "cv": cv, "ce": ce, "loss": loss.reshape(1),
                "assignment": x.argmax(1).double(), "perturbed": torch.tensor(ctx_store["perturbed"], dtype=torch.float64),
                "edges1": torch.tensor(e1, dtype=torch.float64), "edges2": torch.tensor(e2, dtype=torch.float64)})

save_f32_safetensors(os.path.join(here, "lvmmed_golden.safetensors"), tensors)
print("wrote lvmmed_golden.safetensors: %d tensors, loss %.6f, assignment %s, perturbed %s, edges %s"
      % (len(tensors), loss.item(), x.argmax(1).tolist(), ctx_store["perturbed"], e1))
