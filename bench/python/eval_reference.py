#!/usr/bin/env python3
"""NumPy reference of the IJB 1:1 protocol (docs/method.md), the side-by-side
reference of `qface bench eval`. Same protocol as qface::eval::evaluate_ijb:
normalized image features -> mean per media -> sum per template -> normalize;
cosine per template pair (batches of 100k pairs, as the insightface IJB
script); ROC by a full sort (sklearn's _binary_clf_curve, no score binning);
TAR read at the ROC point whose FPR is nearest each target FAR (first such
point, as np.argmin).

usage: eval_reference.py DATA_DIR [--fars 1e-6,...]
DATA_DIR holds feats.npy (N x D float32, normalized), tid.npy, mid.npy (N int64),
p1.npy, p2.npy (P int64 template ids), label.npy (P uint8). Prints JSON.
"""
import json
import sys
import time

import numpy as np


def templates(feats, tid, mid):
    order = np.lexsort((mid, tid))
    f, t, m = feats[order], tid[order], mid[order]
    # media groups: consecutive equal (tid, mid)
    new_media = np.r_[True, (t[1:] != t[:-1]) | (m[1:] != m[:-1])]
    starts = np.flatnonzero(new_media)
    counts = np.diff(np.r_[starts, len(t)])
    media = np.add.reduceat(f, starts, axis=0) / counts[:, None].astype(np.float32)
    media_t = t[starts]
    new_t = np.r_[True, media_t[1:] != media_t[:-1]]
    tstarts = np.flatnonzero(new_t)
    tf = np.add.reduceat(media, tstarts, axis=0)
    tf /= np.sqrt(np.sum(tf * tf, axis=1, keepdims=True))
    return media_t[tstarts], tf.astype(np.float32)


def pair_scores(ids, tf, p1, p2, batch=100000):
    # ids are sorted (lexsort by tid): map template id -> row
    r1 = np.searchsorted(ids, p1)
    r2 = np.searchsorted(ids, p2)
    assert np.all(ids[r1] == p1) and np.all(ids[r2] == p2), "pair names a missing template"
    s = np.empty(len(p1), dtype=np.float32)
    for b in range(0, len(p1), batch):
        e = min(len(p1), b + batch)
        s[b:e] = np.sum(tf[r1[b:e]] * tf[r2[b:e]], axis=1)
    return s


def roc(label, score):
    desc = np.argsort(score, kind="mergesort")[::-1]
    s = score[desc]
    y = label[desc].astype(np.int64)
    distinct = np.where(np.diff(s))[0]
    thr_idx = np.r_[distinct, y.size - 1]
    tps = np.cumsum(y)[thr_idx]
    fps = 1 + thr_idx - tps
    fpr = np.r_[0, fps] / fps[-1]
    tpr = np.r_[0, tps] / tps[-1]
    return fpr, tpr


def main():
    d = sys.argv[1]
    fars = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    if len(sys.argv) > 3 and sys.argv[2] == "--fars":
        fars = [float(x) for x in sys.argv[3].split(",")]
    feats = np.load(d + "/feats.npy")
    tid, mid = np.load(d + "/tid.npy"), np.load(d + "/mid.npy")
    p1, p2, label = np.load(d + "/p1.npy"), np.load(d + "/p2.npy"), np.load(d + "/label.npy")
    sec = {}
    t0 = time.perf_counter()
    ids, tf = templates(feats, tid, mid)
    sec["templates"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    s = pair_scores(ids, tf, p1, p2)
    sec["pair_scores"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    fpr, tpr = roc(label, s)
    tars = []
    for far in fars:
        i = int(np.argmin(np.abs(fpr - far)))
        tars.append({"far": far, "tar": float(tpr[i]), "fpr": float(fpr[i])})
    sec["roc"] = time.perf_counter() - t2
    sec["total"] = time.perf_counter() - t0
    print(json.dumps({"seconds": sec, "templates": int(len(ids)), "pairs": int(len(p1)), "tar_at_far": tars}))


if __name__ == "__main__":
    main()
