#!/usr/bin/env python3
"""NumPy reference of the IJB-S-style surveillance protocols, the side-by-side
reference of `qface bench ijbs`. Same protocol as qface::eval::evaluate_ijbs
(docs/ijbs.md), written as vectorized NumPy (no per-template Python loop):

  templates: frames grouped by template (stable sort by template id), then
    mean    normalize(mean of the normalized frame features)
    norm    normalize(sum of norm_i * feature_i)
    topk:K  mean fusion of the K highest-norm frames (ties: earlier frame first);
  per protocol: probe x gallery cosine (one GEMM), the best mate score, the
  rank (1 + non-mates scoring above the best mate), the top score; rank-k over
  mated probes; TPIR at FPIR: threshold = the floor(FPIR * n)-th highest top
  score of the n non-mated probes, a mated probe counts when its rank is 1 and
  its mate score is above it; null when n < 1/FPIR.

usage: ijbs_reference.py DATA_DIR FUSIONS PROTOCOLS
DATA_DIR holds feats.npy (N x D float32, normalized rows), norms.npy (N float32),
tid.npy (N int64: template of each frame), tmpl.npy, tsubj.npy (T int64:
template ids and their subjects), and per protocol NAME_probe.npy and
NAME_gallery.npy (int64 template ids). FUSIONS and PROTOCOLS are
comma-separated. Prints one JSON object.
"""
import json
import math
import sys
import time

import numpy as np

KS = (1, 5, 10)
FPIRS = (0.01, 0.1)


def fuse(feats, norms, tid, fusion):
    order = np.argsort(tid, kind="stable")
    t = tid[order]
    if fusion.startswith("topk:"):
        k = int(fusion.split(":")[1])
        # Within each template, highest norm first (stable: earlier frame first on ties).
        order = order[np.lexsort((-norms[order], t))]
        t = tid[order]
        starts = np.flatnonzero(np.r_[True, t[1:] != t[:-1]])
        pos = np.arange(len(t)) - np.repeat(starts, np.diff(np.r_[starts, len(t)]))
        order = order[pos < k]
        t = tid[order]
        fusion = "mean"
    f = feats[order]
    if fusion == "norm":
        f = f * norms[order][:, None]
    starts = np.flatnonzero(np.r_[True, t[1:] != t[:-1]])
    sums = np.add.reduceat(f, starts, axis=0)
    sums /= np.sqrt(np.sum(sums * sums, axis=1, keepdims=True))
    return t[starts], sums.astype(np.float32)


def protocol(ids, tf, subject_of, probes, gallery):
    row = {t: i for i, t in enumerate(ids.tolist())}
    pf = tf[[row[p] for p in probes.tolist()]]
    gf = tf[[row[g] for g in gallery.tolist()]]
    ps = np.array([subject_of[p] for p in probes.tolist()])
    gs = np.array([subject_of[g] for g in gallery.tolist()])
    s = pf @ gf.T
    mate = ps[:, None] == gs[None, :]
    mated = mate.any(axis=1)
    top = s.max(axis=1)
    mate_score = np.where(mate, s, -np.inf).max(axis=1)
    rank = 1 + np.sum((~mate) & (s > mate_score[:, None]), axis=1)
    out = {}
    for k in KS:
        out["top%d" % k] = float(np.mean(rank[mated] <= k)) if mated.any() else 0.0
    nonmated_top = np.sort(top[~mated])[::-1]
    n = len(nonmated_top)
    tpir = {}
    for fpir in FPIRS:
        if n * fpir < 1 - 1e-9 or not mated.any():
            tpir[repr(fpir)] = None
            continue
        k = int(math.floor(fpir * n))
        thr = nonmated_top[k] if k < n else -np.inf
        hit = mated & (rank == 1) & (mate_score > thr)
        tpir[repr(fpir)] = float(hit.sum() / mated.sum())
    out["tpir"] = tpir
    return out


def main():
    d, fusions, protocols = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
    feats = np.load(d + "/feats.npy")
    norms = np.load(d + "/norms.npy")
    tid = np.load(d + "/tid.npy")
    subject_of = dict(zip(np.load(d + "/tmpl.npy").tolist(), np.load(d + "/tsubj.npy").tolist()))
    prot = {p: (np.load(d + "/%s_probe.npy" % p), np.load(d + "/%s_gallery.npy" % p)) for p in protocols}
    seconds, results = {}, {}
    t0 = time.perf_counter()
    for fusion in fusions:
        t1 = time.perf_counter()
        ids, tf = fuse(feats, norms, tid, fusion)
        results[fusion] = {p: protocol(ids, tf, subject_of, *prot[p]) for p in protocols}
        seconds[fusion] = time.perf_counter() - t1
    seconds["total"] = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "results": results, "numpy": np.__version__}))


if __name__ == "__main__":
    main()
