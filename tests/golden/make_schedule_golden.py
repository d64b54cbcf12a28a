"""Learning-rate schedules of MedVlp.Training against PyTorch's own schedulers (torch 1.13).

For each case an SGD optimizer over one parameter with base lr 1e-3 is stepped through `steps` scheduler steps and
`optimizer.param_groups[0]["lr"]` is recorded before every step (the rate the step uses):

- warmup_cosine: `LambdaLR` with MedVlp's (and the old ContrastiveTrainer's) rule: linear warm-up over
  ceil(fraction * total) steps, (s + 1) / warmup, then final + (1 - final) * 0.5 * (1 + cos(pi * p)) with
  p = (s - warmup) / (total - warmup - 1).
- constant: `LambdaLR` with a linear warm-up of `warmup` steps, then 1.
- step: PyTorch's `StepLR(step_size, gamma)`.
- cosine_restarts: PyTorch's `CosineAnnealingWarmRestarts(T_0, T_mult, eta_min)` stepped without an epoch argument.

Writes data/schedules.json: [{"name", "type", "params", "steps", "lr": [...]}].
Run: /usr/bin/python3 tests/golden/make_schedule_golden.py
"""
import json
import math
import os

import torch

BASE = 1e-3
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "schedules.json")


def record(make_scheduler, steps):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=BASE)
    sched = make_scheduler(opt)
    rates = []
    for _ in range(steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return rates


def warmup_cosine(total, fraction, final):
    warmup = math.ceil(fraction * total)

    def f(s):
        if s < warmup:
            return (s + 1) / warmup
        progress = 1.0 if total - warmup <= 1 else min(1.0, (s - warmup) / (total - warmup - 1))
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def constant(warmup):
    return lambda s: (s + 1) / warmup if s < warmup else 1.0


cases = []
for total, fraction, final in [(180, 0.1, 0.0), (37, 0.25, 0.1), (10, 0.0, 0.0), (5, 0.5, 0.2)]:
    cases.append({"name": f"warmup_cosine_{total}_{fraction}_{final}", "type": "warmup_cosine",
                  "params": {"warmup_fraction": fraction, "final_fraction": final}, "steps": total,
                  "lr": record(lambda o: torch.optim.lr_scheduler.LambdaLR(o, warmup_cosine(total, fraction, final)), total)})
for warmup in [0, 7]:
    cases.append({"name": f"constant_{warmup}", "type": "constant", "params": {"warmup_steps": warmup}, "steps": 30,
                  "lr": record(lambda o: torch.optim.lr_scheduler.LambdaLR(o, constant(warmup)), 30)})
for size, gamma in [(10, 0.1), (7, 0.5)]:
    cases.append({"name": f"step_{size}_{gamma}", "type": "step", "params": {"step_size": size, "gamma": gamma}, "steps": 40,
                  "lr": record(lambda o: torch.optim.lr_scheduler.StepLR(o, size, gamma), 40)})
for t0, mult, eta in [(10, 1, 0.0), (7, 2, 1e-5), (5, 3, 1e-4)]:
    cases.append({"name": f"restarts_{t0}_{mult}_{eta}", "type": "cosine_restarts",
                  "params": {"first_cycle": t0, "cycle_multiplier": mult, "minimum_rate": eta}, "steps": 120,
                  "lr": record(lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, t0, mult, eta), 120)})

with open(OUT, "w") as f:
    json.dump({"torch": torch.__version__, "base_lr": BASE, "cases": cases}, f)
print(f"wrote {len(cases)} cases to {OUT}")
