"""Golden values for MedVlp's M-FLAG model (src/MedVlp/Architectures/MFlag) from a PyTorch reference written after the
released code (cheliu-computation/M-FLAG-MICCAI2023, utils/utils_builder.py ResNet_CXRBert and utils/utils_trainer.py),
never from MedVlp's code, at tiny sizes:

  * encoder  torchvision 0.14's own ResNet / Bottleneck code (tiny widths: stem 8, planes 4, 8, 16, 32, one block per
             stage, 1 input channel), fc = Identity, the output viewed as (b, features) as the released forward does
  * proj_v   Sequential(Linear(128, 64), BatchNorm1d(64), ReLU, Linear(64, 32), BatchNorm1d(32, affine=False))
  * proj_t   the same from the 32-wide CLS state
  * lm_model BERT (post-norm nn.TransformerEncoderLayer, GELU; word + position + token-type embeddings, LayerNorm), run
             under no_grad in eval mode as get_text_emb; its last_hidden_state[:, 0] feeds proj_t
  * loss     the released trainer's orthogonal_loss(img_emb, img_emb) (C = Z^T Z / batch, on-diagonal (C_ii - 1)^2 +
             0.0051 off-diagonal C_ij^2, halved) + align_loss (2 - 2 cos, both ways, mean)

The model is in training mode (BatchNorm on batch statistics) with lm_model in eval mode, as in the released training loop.
Everything runs in float64 on float32 weights and inputs. Stores param/<name>, buffer/<name> (randomised running
statistics), input/images, input/ids, input/mask, img_emb, proj_img_emb, proj_text_emb, loss, loss_orthogonal,
loss_align, grad/<name> (trainable parameters: encoder, proj_v, proj_t), after/<name> (running statistics after the step).
Writes data/mflag_golden.safetensors. Run: /usr/bin/python3 tests/golden/make_mflag_golden.py
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.models.resnet as tvr
from golden_io import save_f32_safetensors  # the shared writer (tests/golden/golden_io.py)

torch.manual_seed(77)
here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
VOCAB, H, LAYERS, HEADS, FFN, POS = 50, 32, 2, 2, 64, 64


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


def projector(width):
    return nn.Sequential(nn.Linear(width, 64), nn.BatchNorm1d(64), nn.ReLU(inplace=True), nn.Linear(64, 32), nn.BatchNorm1d(32, affine=False))


class Bert(nn.Module):
    def __init__(self):
        super().__init__()
        self.word = nn.Embedding(VOCAB, H)
        self.position = nn.Embedding(POS, H)
        self.token_type = nn.Embedding(2, H)
        self.norm = nn.LayerNorm(H, eps=1e-12)
        self.layers = nn.ModuleList([nn.TransformerEncoderLayer(H, HEADS, FFN, dropout=0.0, activation="gelu", layer_norm_eps=1e-12,
                                                                batch_first=True, norm_first=False) for _ in range(LAYERS)])

    def forward(self, ids, mask):
        h = self.norm(self.word(ids) + self.position(torch.arange(ids.shape[1]).unsqueeze(0)) + self.token_type(torch.zeros_like(ids)))
        for layer in self.layers:
            h = layer(h, src_key_padding_mask=(mask == 0))
        return h

    def medvlp_state(self, prefix):
        s = {prefix + "embeddings.word_embeddings.weight": self.word.weight,
             prefix + "embeddings.position_embeddings.weight": self.position.weight,
             prefix + "embeddings.token_type_embeddings.weight": self.token_type.weight,
             prefix + "embeddings.LayerNorm.weight": self.norm.weight, prefix + "embeddings.LayerNorm.bias": self.norm.bias}
        for i, l in enumerate(self.layers):
            p = f"{prefix}encoder.layer.{i}."
            wq, wk, wv = l.self_attn.in_proj_weight.chunk(3)
            bq, bk, bv = l.self_attn.in_proj_bias.chunk(3)
            s.update({p + "attention.self.query.weight": wq, p + "attention.self.query.bias": bq,
                      p + "attention.self.key.weight": wk, p + "attention.self.key.bias": bk,
                      p + "attention.self.value.weight": wv, p + "attention.self.value.bias": bv,
                      p + "attention.output.dense.weight": l.self_attn.out_proj.weight, p + "attention.output.dense.bias": l.self_attn.out_proj.bias,
                      p + "attention.output.LayerNorm.weight": l.norm1.weight, p + "attention.output.LayerNorm.bias": l.norm1.bias,
                      p + "intermediate.dense.weight": l.linear1.weight, p + "intermediate.dense.bias": l.linear1.bias,
                      p + "output.dense.weight": l.linear2.weight, p + "output.dense.bias": l.linear2.bias,
                      p + "output.LayerNorm.weight": l.norm2.weight, p + "output.LayerNorm.bias": l.norm2.bias})
        return s


encoder, proj_v, proj_t, lm = tiny_resnet(), projector(128), projector(H), Bert()
parts = {"encoder.": encoder, "proj_v.": proj_v, "proj_t.": proj_t}
with torch.no_grad():
    for m, std in [(encoder, 0.3), (proj_v, 0.1), (proj_t, 0.1), (lm, 0.1)]:
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
text_params = lm.medvlp_state("lm_model.")
for n, p in list(params.items()) + list(text_params.items()):
    tensors[f"param/{n}"] = p.detach().clone()

images = torch.randn(4, 1, 32, 32)
ids = torch.tensor([[2, 17, 5, 33, 9, 3, 0], [2, 41, 3, 0, 0, 0, 0], [2, 7, 7, 12, 3, 0, 0], [2, 44, 21, 8, 19, 30, 3]])
mask = (ids != 0).long()
tensors["input/images"], tensors["input/ids"], tensors["input/mask"] = images, ids.float(), mask.float()

for m in list(parts.values()) + [lm]:
    m.double()
for m in parts.values():
    m.train()
lm.eval()


def orthogonal_loss(x1, x2, batch):
    c = torch.mm(x1.T, x2) / batch
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = (c.pow(2).sum() - torch.diagonal(c).pow(2).sum())
    return (on + 0.0051 * off) / 2


def align_loss(x, y):
    x, y = F.normalize(x, dim=1), F.normalize(y, dim=1)
    return ((2 - 2 * (x * y).sum(-1)) + (2 - 2 * (y * x).sum(-1))).mean()


img_emb = encoder(images.double())
img_emb = img_emb.view(img_emb.shape[0], img_emb.shape[1])
with torch.no_grad():
    text_emb = lm(ids, mask)
proj_img_emb = proj_v(img_emb)
proj_text_emb = proj_t(text_emb[:, 0].contiguous())
loss_orth = orthogonal_loss(img_emb, img_emb, img_emb.shape[0])
loss_align = align_loss(proj_img_emb, proj_text_emb)
loss = loss_orth + loss_align
names = list(params.keys())
grads = torch.autograd.grad(loss, [params[n] for n in names])
for n, g in zip(names, grads):
    tensors[f"grad/{n}"] = g.detach().clone()
for prefix, m in parts.items():
    tensors.update({f"after/{prefix}{n}": b.detach().clone() for n, b in m.named_buffers() if not n.endswith("num_batches_tracked")})
tensors.update({"img_emb": img_emb, "proj_img_emb": proj_img_emb, "proj_text_emb": proj_text_emb,
                "loss": loss.reshape(1), "loss_orthogonal": loss_orth.reshape(1), "loss_align": loss_align.reshape(1)})

save_f32_safetensors(os.path.join(here, "mflag_golden.safetensors"), tensors)
print("wrote mflag_golden.safetensors: %d tensors, loss %.6f (orthogonal %.6f, align %.6f)" % (len(tensors), loss.item(), loss_orth.item(), loss_align.item()))
