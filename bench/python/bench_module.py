#!/usr/bin/env python3
"""Benchmark of the Python module `qface` (not a test): qface.RecordIO read
throughput against a pure-Python RecordIO reader, and qface.eval.ijb against
the NumPy reference of bench/python/eval_reference.py, measured in one run.

usage: PYTHONPATH=build/python /usr/bin/python3 bench/python/bench_module.py \
           [--qface build/qface] [--images 20000] [--ijb-images 200000] [--templates 20000] [--pairs 2000000]
Prints one JSON object (img/s, seconds, ratios, the machine).
"""
import argparse
import json
import mmap
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

import qface

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eval_reference  # noqa: E402


def python_read_all(rec_path):
    """A pure-Python RecordIO reader (what people write without MXNet): the
    .idx for offsets, then magic, length, IRHeader and the image bytes."""
    out = []
    with open(rec_path, "rb") as f, open(rec_path[:-4] + ".idx") as idx:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        offsets = {int(k): int(v) for k, v in (line.split() for line in idx)}
        first_flag, first_label, _, _ = struct.unpack_from("<IfQQ", data, offsets[0] + 8)
        end = int(struct.unpack_from("<f", data, offsets[0] + 8 + 24)[0])
        for key in range(1, end):
            pos = offsets[key]
            magic, lrec = struct.unpack_from("<II", data, pos)
            assert magic == 0xCED7230A
            length = lrec & ((1 << 29) - 1)
            flag, label, _, _ = struct.unpack_from("<IfQQ", data, pos + 8)
            start = pos + 8 + 24 + 4 * flag
            out.append((bytes(data[start:pos + 8 + length]), int(label)))
        data.close()
    return out


def best(f, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = f()
        times.append(time.perf_counter() - t0)
    return min(times), r


def write_ijb(d, n_images, n_templates, n_pairs, dim, rng):
    tid = np.sort(rng.integers(0, n_templates, n_images))
    mid = tid * 10 + rng.integers(0, 3, n_images)
    with open(os.path.join(d, "bench_face_tid_mid.txt"), "w") as f:
        f.writelines(f"{i}.jpg {t} {m}\n" for i, (t, m) in enumerate(zip(tid, mid)))
    present = np.unique(tid)
    p1, p2 = rng.choice(present, n_pairs), rng.choice(present, n_pairs)
    label = (rng.random(n_pairs) < 0.05).astype(np.uint8)
    with open(os.path.join(d, "bench_template_pair_label.txt"), "w") as f:
        f.writelines(f"{a} {b} {c}\n" for a, b, c in zip(p1, p2, label))
    feats = rng.standard_normal((n_images, dim)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    return feats, tid, mid, p1, p2, label


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qface", default="build/qface")
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--ijb-images", type=int, default=200000)
    ap.add_argument("--templates", type=int, default=20000)
    ap.add_argument("--pairs", type=int, default=2000000)
    a = ap.parse_args()
    qface.set_log_level("warn")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.machine())
    out = {"cpu": cpu, "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as d:
        rec = os.path.join(d, "faces.rec")
        subprocess.run([a.qface, "data", "make-test", "--out", rec[:-4], "--images", str(a.images),
                        "--identities", str(max(1, a.images // 20))], check=True, capture_output=True)
        t_q, items = best(lambda: [(b, l) for b, l in qface.RecordIO(rec)])
        t_p, ref = best(lambda: python_read_all(rec))
        assert items == ref, "qface.RecordIO and the pure-Python reader disagree"
        decoding = qface.RecordIO(rec, decode=True)
        t_qd, _ = best(lambda: [decoding[i] for i in range(min(a.images, 5000))], 1)
        out["recordio"] = {"images": a.images, "qface_img_s": a.images / t_q, "python_img_s": a.images / t_p,
                           "ratio": t_p / t_q, "qface_decode_img_s": min(a.images, 5000) / t_qd}
        try:  # decoding too: the pure-Python reader + OpenCV (python3-opencv), RGB as qface gives it
            import cv2
            def python_decode():
                return [cv2.cvtColor(cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                        for b, _ in ref[:min(a.images, 5000)]]
            t_pd, _ = best(python_decode, 1)
            out["recordio"]["python_cv2_decode_img_s"] = min(a.images, 5000) / t_pd
            out["recordio"]["decode_ratio"] = t_pd / t_qd
        except ImportError:
            pass

        rng = np.random.default_rng(0)
        feats, tid, mid, p1, p2, label = write_ijb(d, a.ijb_images, a.templates, a.pairs, 512, rng)
        names = [f"{i}.jpg" for i in range(a.ijb_images)]
        norms = np.ones(a.ijb_images, np.float32)

        def with_qface():
            return qface.eval.ijb(d, feats, norms, names)

        def with_numpy():
            ids, tf = eval_reference.templates(feats, tid, mid)
            s = eval_reference.pair_scores(ids, tf, p1, p2)
            return eval_reference.roc(label, s)

        t_qi, r = best(with_qface, 2)
        t_ni, _ = best(with_numpy, 2)
        out["ijb"] = {"images": a.ijb_images, "templates": a.templates, "pairs": a.pairs, "qface_s": t_qi,
                      "numpy_s": t_ni, "ratio": t_ni / t_qi}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
