"""Python eager reference for `qface bench train`: one training step (forward,
AdaFace/ArcFace head, cross-entropy, backward, SGD with momentum and weight
decay) of the same architecture in PyTorch eager mode (NCHW fp32), the way
the official AdaFace training script runs it. Prints one JSON line."""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qface_ref_models as R  # noqa: E402

EPS = 1e-3


class MarginHead(nn.Module):
    """AdaFace (official head.py math) or ArcFace on the normalized kernel."""

    def __init__(self, name, emb, classes, m, h=0.333, s=64.0, t_alpha=0.01):
        super().__init__()
        self.name, self.m, self.h, self.s, self.t_alpha = name, m, h, s, t_alpha
        self.kernel = nn.Parameter(torch.empty(emb, classes).uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5))
        self.register_buffer("batch_mean", torch.ones(1) * 20)
        self.register_buffer("batch_std", torch.ones(1) * 100)

    def forward(self, emb, norms, label):
        cosine = torch.mm(emb, F.normalize(self.kernel, dim=0)).clamp(-1 + EPS, 1 - EPS)
        onehot = torch.zeros_like(cosine).scatter_(1, label.view(-1, 1), 1.0)
        if self.name == "arcface":
            theta = cosine.acos()
            return (theta + onehot * self.m).clamp(EPS, math.pi - EPS).cos() * self.s
        safe = norms.clamp(0.001, 100).clone().detach()
        with torch.no_grad():
            self.batch_mean = safe.mean() * self.t_alpha + (1 - self.t_alpha) * self.batch_mean
            self.batch_std = safe.std() * self.t_alpha + (1 - self.t_alpha) * self.batch_std
        scaler = ((safe - self.batch_mean) / (self.batch_std + EPS) * self.h).clamp(-1, 1)
        theta = (cosine.acos() + onehot * (-self.m * scaler)).clamp(EPS, math.pi - EPS)
        return (theta.cos() - onehot * (self.m + self.m * scaler)) * self.s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="ir_50")
    ap.add_argument("--head", default="adaface")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="profile one more step (self CPU time per operator)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = R.make(a.arch).train().to(dev)
    head = MarginHead(a.head, 512, a.classes, 0.5 if a.head == "arcface" else 0.4).to(dev)
    # AdaFace's split_parameters: every parameter but BatchNorm's is decayed.
    bn = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    no_decay = [p for m in bn for p in m.parameters()]
    bn_ids = {id(p) for p in no_decay}
    decay = [p for p in model.parameters() if id(p) not in bn_ids] + [head.kernel]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=0.1, momentum=0.9)
    x = torch.randn(a.batch, 3, 112, 112).to(dev)
    y = torch.randint(0, a.classes, (a.batch,)).to(dev)

    def step():
        emb, norm = model(x)
        loss = F.cross_entropy(head(emb, norm, y), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()  # waits for the device, as qface's step does

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.iters):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    best = min(times)
    out = {"arch": a.arch, "head": a.head, "batch": a.batch, "threads": a.threads,
           "torch": torch.__version__, "device": a.device, "seconds_per_step": best, "img_per_s": a.batch / best}
    if a.profile:
        t = time.perf_counter()
        with torch.autograd.profiler.profile() as prof:
            step()
        wall = time.perf_counter() - t
        out["profile"] = {"wall_ms": wall * 1e3,
                          "ops": {e.key: {"self_ms": e.self_cpu_time_total / 1e3, "calls": e.count}
                                  for e in prof.key_averages()}}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
