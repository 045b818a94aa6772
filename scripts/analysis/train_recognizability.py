#!/usr/bin/env python3
"""How recognizable are the training images to a trained model? (docs/study.md)

AdaFace's argument needs unrecognizable training images: a fixed margin keeps
pushing on them and the model overfits. This measures, for one trained model,
each training image's nearest-centroid outcome among the training identities
(its own identity's centroid leaving the image out, against every other
identity's centroid), next to the generator's ground truth (designed quality,
the `unrecognizable` flag).

usage: train_recognizability.py FEATURES_DIR MANIFEST_JSON
FEATURES_DIR: `qface embed` output of `qface data unpack` of train.rec
(files.txt lines are <label>/<key>.<ext>). Prints one JSON object.
"""
import json
import sys

import numpy as np


def spearman(a, b):
    ra = np.argsort(np.argsort(a)).astype(np.float64)
    rb = np.argsort(np.argsort(b)).astype(np.float64)
    ra -= ra.mean()
    rb -= rb.mean()
    return float((ra * rb).sum() / np.sqrt((ra * ra).sum() * (rb * rb).sum()))


def main():
    feat_dir, manifest = sys.argv[1], sys.argv[2]
    e = np.load(feat_dir + "/embeddings.npy").astype(np.float64)
    norms = np.load(feat_dir + "/norms.npy").astype(np.float64)
    files = open(feat_dir + "/files.txt").read().split("\n")[: len(e)]
    rec = {r["key"]: r for r in json.load(open(manifest))["train"]["records"]}
    labels = np.array([int(f.split("/")[-2]) for f in files])
    keys = [int(f.split("/")[-1].split(".")[0]) for f in files]
    quality = np.array([rec[k]["quality"] for k in keys])
    unrec = np.array([rec[k]["nuisance"]["unrecognizable"] for k in keys])
    noisy = np.array([rec[k].get("noisy_label", False) for k in keys])
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    n_ids = labels.max() + 1
    sums = np.zeros((n_ids, e.shape[1]))
    np.add.at(sums, labels, e)
    counts = np.bincount(labels, minlength=n_ids)
    cent = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    s = e @ cent.T
    own_loo = sums[labels] - e
    ok = counts[labels] > 1
    own = np.full(len(e), np.nan)
    own[ok] = np.sum(e[ok] * own_loo[ok], axis=1) / np.linalg.norm(own_loo[ok], axis=1)
    s[np.arange(len(e)), labels] = -np.inf
    other = s.max(axis=1)
    recognized = own > other
    out = {
        "images": int(len(e)),
        "identities": int(n_ids),
        "share_not_recognized": float(np.mean(~recognized[ok])),
        "designed_unrecognizable": int(unrec.sum()),
        "not_recognized_among_designed_unrecognizable": float(np.mean(~recognized[ok & unrec])) if (ok & unrec).any() else None,
        "not_recognized_among_the_rest": float(np.mean(~recognized[ok & ~unrec])),
        "share_of_not_recognized_that_are_designed_unrecognizable": float(np.mean(unrec[ok & ~recognized])) if (ok & ~recognized).any() else None,
        "label_noise": int(noisy.sum()),
        "mean_norm_designed_unrecognizable": float(norms[unrec].mean()) if unrec.any() else None,
        "mean_norm_rest": float(norms[~unrec].mean()),
        "spearman_norm_vs_own_similarity": spearman(norms[ok], own[ok]),
        "spearman_norm_vs_quality": spearman(norms, quality),
        "by_quality": [],
    }
    for lo, hi in [(0.0, 0.2), (0.2, 0.45), (0.45, 0.7), (0.7, 1.01)]:
        m = ok & (quality >= lo) & (quality < hi)
        out["by_quality"].append({"quality": [lo, min(hi, 1.0)], "images": int(m.sum()),
                                  "share_not_recognized": float(np.mean(~recognized[m])) if m.any() else None})
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
