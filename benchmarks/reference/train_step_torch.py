#!/usr/bin/python3
"""PyTorch reference for `dotnet run -c Release --project benchmarks/MedVlp.Benchmarks -- train-step THREADS REPEATS`
(benchmarks/MedVlp.Benchmarks/TrainStepSideBySide.cs): one optimisation step of the same clip3d dual encoder — 3D ViT
(Conv3d patches, CLS + learned positions, pre-norm GELU blocks, final LayerNorm, attention pooling with a learned query)
and BERT (word + position + type embeddings, LayerNorm, post-norm GELU layers, mean pooling), linear projections,
learned logit scale — with the CLIP loss, backward, clip_grad_norm_(1.0) and AdamW (lr 1e-4, betas (0.9, 0.98),
eps 1e-6, weight decay 0.05 on matrices only), on the same batch shapes: tiny (32^3, width 64 x 2, BERT 64 x 2,
batch 32) and mid (64^3, width 256 x 4, BERT 256 x 4, batch 8), 64 tokens, vocabulary 30522.
Built from torch.nn's own modules, as tests/golden/make_vlp_golden.py checks MedVlp's forward against.

Usage: /usr/bin/python3 benchmarks/reference/train_step_torch.py --threads 1 --repeats 10
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SIZES = {
    "tiny": dict(size=32, patch=8, width=64, depth=2, heads=4, mlp=2.0, hidden=64, layers=2, bert_heads=4, inter=128, max_pos=96, embed=64, batch=32),
    "mid": dict(size=64, patch=8, width=256, depth=4, heads=8, mlp=4.0, hidden=256, layers=4, bert_heads=8, inter=1024, max_pos=128, embed=256, batch=8),
}


class Clip3d(nn.Module):
    def __init__(self, c, vocab=30522):
        super().__init__()
        w, h = c["width"], c["hidden"]
        grid = c["size"] // c["patch"]
        self.patch = nn.Conv3d(1, w, c["patch"], stride=c["patch"])
        self.cls = nn.Parameter(torch.randn(1, 1, w) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, grid ** 3 + 1, w) * 0.02)
        self.blocks = nn.ModuleList([nn.TransformerEncoderLayer(w, c["heads"], int(w * c["mlp"]), dropout=0.0, activation="gelu",
                                                                layer_norm_eps=1e-6, batch_first=True, norm_first=True) for _ in range(c["depth"])])
        self.norm = nn.LayerNorm(w, eps=1e-6)
        self.latent = nn.Parameter(torch.randn(1, 1, w) * 0.02)
        self.pool = nn.MultiheadAttention(w, c["heads"], batch_first=True)
        self.visual_projection = nn.Linear(w, c["embed"], bias=False)
        self.word = nn.Embedding(vocab, h)
        self.position = nn.Embedding(c["max_pos"], h)
        self.token_type = nn.Embedding(2, h)
        self.emb_norm = nn.LayerNorm(h, eps=1e-12)
        self.layers = nn.ModuleList([nn.TransformerEncoderLayer(h, c["bert_heads"], c["inter"], dropout=0.0, activation="gelu",
                                                                layer_norm_eps=1e-12, batch_first=True, norm_first=False) for _ in range(c["layers"])])
        self.text_projection = nn.Linear(h, c["embed"], bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_images(self, v):
        x = self.patch(v).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for b in self.blocks:
            x = b(x)
        x = self.norm(x)
        pooled, _ = self.pool(self.latent.expand(x.shape[0], -1, -1), x, x, need_weights=False)
        return F.normalize(self.visual_projection(pooled[:, 0]), dim=-1)

    def encode_texts(self, ids, mask):
        positions = torch.arange(ids.shape[1]).unsqueeze(0)
        x = self.emb_norm(self.word(ids) + self.position(positions) + self.token_type(torch.zeros_like(ids)))
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=(mask == 0))
        m = mask.unsqueeze(-1).float()
        return F.normalize(self.text_projection((x * m).sum(1) / m.sum(1)), dim=-1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (MedVlp's side uses 5 too)")
    p.add_argument("--model", choices=list(SIZES), help="only this size")
    p.add_argument("--breakdown", action="store_true", help="also time the phases of a step one by one")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    try:
        import threadpoolctl
        blas = ", ".join(f"{i['internal_api']} {i.get('version') or ''} {i.get('architecture') or ''} ({i['num_threads']} threads)" for i in threadpoolctl.threadpool_info())
    except ImportError:
        blas = "threadpoolctl missing"
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} thread(s), oneDNN {torch.backends.mkldnn.is_available()}, loaded: {blas}")
    for name, c in SIZES.items():
        if a.model and a.model != name:
            continue
        torch.manual_seed(0)
        model = Clip3d(c)
        model.train()
        decay = [q for n, q in model.named_parameters() if q.dim() >= 2 and n not in ("cls", "pos", "latent") and not n.startswith(("word", "position", "token_type"))]
        ids_decay = {id(q) for q in decay}
        rest = [q for q in model.parameters() if id(q) not in ids_decay]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}], lr=1e-4, betas=(0.9, 0.98), eps=1e-6)
        b = c["batch"]
        volumes = torch.rand(b, 1, c["size"], c["size"], c["size"])
        ids = torch.randint(1000, 2000, (b, a.tokens))
        mask = torch.ones(b, a.tokens, dtype=torch.long)
        labels = torch.arange(b)
        params = list(model.parameters())

        def step():
            opt.zero_grad(set_to_none=False)
            img = model.encode_images(volumes)
            txt = model.encode_texts(ids, mask)
            scale = model.logit_scale.exp().clamp(max=100)
            logits = scale * img @ txt.t()
            loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()

        for _ in range(a.warmup):
            step()
        times, cpu = [], []
        for _ in range(a.repeats):
            c0 = time.process_time()
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        n = sum(q.numel() for q in params)
        print(f"{name}: {c['size']}^3 input, width {c['width']} x {c['depth']}, BERT {c['hidden']} x {c['layers']}, batch {b}, {a.tokens} tokens, "
              f"{n:,} parameters: median {statistics.median(times):.1f} ms/step (min {min(times):.1f}), CPU {statistics.median(cpu):.1f} ms/step")
        if a.breakdown:
            phases = ["zero_grad", "encode images+texts", "loss", "backward", "read scalars", "clip_grad_norm_", "optimizer step"]
            sums = [0.0] * len(phases)
            for r in range(a.repeats + 1):
                marks = [time.thread_time()]
                opt.zero_grad(set_to_none=False)
                marks.append(time.thread_time())
                img = model.encode_images(volumes)
                txt = model.encode_texts(ids, mask)
                marks.append(time.thread_time())
                scale = model.logit_scale.exp().clamp(max=100)
                logits = scale * img @ txt.t()
                loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
                marks.append(time.thread_time())
                loss.backward()
                marks.append(time.thread_time())
                loss.item()
                marks.append(time.thread_time())
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                marks.append(time.thread_time())
                opt.step()
                marks.append(time.thread_time())
                if r > 0:
                    for i in range(len(phases)):
                        sums[i] += (marks[i + 1] - marks[i]) * 1000
            print("  breakdown (mean CPU ms of the calling thread): " + ", ".join(f"{p} {t / a.repeats:.2f}" for p, t in zip(phases, sums)))


if __name__ == "__main__":
    main()
