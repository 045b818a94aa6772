"""Python eager reference for `qface bench infer`: the same architecture in
PyTorch eager mode (NCHW fp32, eval, no_grad), the way the official inference
scripts run it. Prints one JSON line."""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qface_ref_models as R  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="ir_50")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = R.make(a.arch).eval().to(dev)
    x = torch.randn(a.batch, 3, 112, 112)

    def run():
        # From host memory to features on the host, as qface's embed() runs.
        emb, norm = model(x.to(dev))
        emb.cpu(), norm.cpu()

    with torch.no_grad():
        for _ in range(a.warmup):
            run()
        times = []
        for _ in range(a.iters):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
    best = min(times)
    print(json.dumps({"arch": a.arch, "batch": a.batch, "threads": a.threads, "torch": torch.__version__, "device": a.device,
                      "seconds_per_batch": best, "img_per_s": a.batch / best}))


if __name__ == "__main__":
    main()
