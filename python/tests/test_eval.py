import numpy as np
import pytest

import qface
from conftest import read_json, run_qface


def pairs(n_pairs, dim=32, seed=3, noise=0.8):
    """Genuine pairs share a direction (plus noise), impostors are random."""
    rng = np.random.default_rng(seed)
    issame = np.arange(n_pairs) % 2 == 0
    e = rng.standard_normal((2 * n_pairs, dim)).astype(np.float32)
    for i in np.flatnonzero(issame):
        e[2 * i + 1] = e[2 * i] + noise * rng.standard_normal(dim)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    norms = rng.uniform(5, 25, 2 * n_pairs).astype(np.float32)
    return e, norms, issame


def test_verify_equals_the_cli(tmp_path):
    e, norms, issame = pairs(300)
    r = qface.eval.verify(e, issame)
    qface.write_bin(str(tmp_path / "v.bin"), [b"x"] * len(e), issame)
    (tmp_path / "f").mkdir()
    np.save(tmp_path / "f" / "embeddings.npy", e)
    np.save(tmp_path / "f" / "norms.npy", norms)
    (tmp_path / "f" / "files.txt").write_text("".join(f"{i}.jpg\n" for i in range(len(e))))
    run_qface("eval", "verify", "--bin", tmp_path / "v.bin", "--features", tmp_path / "f", "--out", tmp_path / "v.json")
    cli = read_json(tmp_path / "v.json")["sets"][0]["modes"]["plain"]
    assert r == cli
    # Every key the docstring names exists (it once named one that did not), and
    # the cosine threshold is the squared-L2 one on unit vectors: d = 2 - 2 cos.
    for key in ("accuracy_mean", "best_threshold_mean", "best_threshold_cosine_mean", "fold_accuracy",
                "tar_at_far_folds", "roc"):
        assert key in r and key in qface.eval.verify.__doc__
    assert r["best_threshold_cosine_mean"] == pytest.approx(1 - r["best_threshold_mean"] / 2)
    assert 0.6 < r["accuracy_mean"] < 1.0 and len(r["fold_accuracy"]) == 10


def test_verify_by_hand():
    # Two pairs: identical vectors (genuine) and opposite ones (impostor); any threshold in (0, 4) separates them.
    e = np.array([[1, 0], [1, 0], [0, 1], [0, -1]], np.float32)
    r = qface.eval.verify(e, [True, False], folds=2)
    assert r["pairs"] == 2 and r["genuine"] == 1
    with pytest.raises(qface.Error, match="rows for"):
        qface.eval.verify(e[:3], [True, False])
    with pytest.raises(qface.Error, match="boolean"):
        qface.eval.verify(e, [2, 0])


def test_fuse_flip_matches_the_formula():
    rng = np.random.default_rng(1)
    e, ef = rng.standard_normal((2, 4, 8)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    ef /= np.linalg.norm(ef, axis=1, keepdims=True)
    n, nf = rng.uniform(1, 3, (2, 4)).astype(np.float32)
    f, fn = qface.eval.fuse_flip(e, n, ef, nf)
    want = e * n[:, None] + ef * nf[:, None]
    np.testing.assert_allclose(fn, np.linalg.norm(want, axis=1), rtol=1e-5)
    np.testing.assert_allclose(f, want / np.linalg.norm(want, axis=1, keepdims=True), atol=1e-6)


def test_rank_by_hand():
    g = np.eye(3, dtype=np.float32)
    # Probe a is nearest a, probe c nearest c; probe b = (0, 0.9, 1) is nearer c than b: rank 2.
    probe = np.array([[1, 0.1, 0], [0.1, 0, 1], [0, 0.9, 1]], np.float32)
    r = qface.eval.rank(probe, ["a", "c", "b"], g, ["a", "b", "c"], ks=[1, 2])
    assert r["probes"] == 3 and r["gallery"] == 3 and r["distractors"] == 0
    assert r["rank"]["1"] == pytest.approx(2 / 3) and r["rank"]["2"] == pytest.approx(1.0)
    # A distractor along (1, 1, 1): cosine 0.63 to probes a and c (their mates: 0.995), 0.815 to probe b,
    # which now has the distractor and c before its mate: rank 3.
    r = qface.eval.rank(probe, ["a", "c", "b"], g, ["a", "b", "c"], distractors=np.ones((1, 3), np.float32) * 10,
                        ks=[1, 2, 3])
    assert r["distractors"] == 1
    assert r["rank"]["1"] == pytest.approx(2 / 3) and r["rank"]["2"] == pytest.approx(2 / 3)
    assert r["rank"]["3"] == pytest.approx(1.0)


def test_cluster_separates_three_blobs():
    rng = np.random.default_rng(2)
    centers = np.eye(3, 16, dtype=np.float32)
    e = np.concatenate([c + 0.05 * rng.standard_normal((10, 16)) for c in centers]).astype(np.float32)
    truth = np.repeat(np.arange(3), 10)
    r = qface.eval.cluster(e, truth, k=5, threshold=0.5)
    assert len(set(r["labels"])) == 3
    assert r["metrics"]["pairwise"]["f"] == pytest.approx(1.0) and r["metrics"]["nmi"] == pytest.approx(1.0)
    assert qface.eval.cluster(e)["metrics"] is None
    q = qface.eval.cluster(e, truth, k=5, quality=np.linalg.norm(e, axis=1))
    assert q["metrics"]["nmi"] == pytest.approx(1.0)


def test_edc_discarding_the_worst_removes_errors():
    e, _, issame = pairs(200, seed=5, noise=2.5)
    cos = np.sum(e[0::2] * e[1::2], axis=1)
    # A quality that knows which genuine pairs are hard: the low-cosine genuine pairs get low quality.
    q = np.ones(len(e))
    hard = np.flatnonzero(issame & (cos < np.median(cos[issame])))
    q[2 * hard] = 0.1
    r = qface.eval.edc(e, issame, q, fmr=0.05, limit=0.5)
    # Two quality levels: the first step discards the hard half of the genuine pairs at once,
    # so FNMR holds fnmr0 on [0, 0.5) (pAUC to 0.5 = 0.5 fnmr0) and then falls.
    assert r["fnmr"][0] > 0.1 and r["discard"][1] == pytest.approx(0.5)
    assert r["fnmr"][1] < 0.2 * r["fnmr"][0]
    assert r["pauc"] == pytest.approx(0.5 * r["fnmr"][0])


def write_features(d, e, norms, files):
    """A features folder as `qface embed` writes it (plain features)."""
    d.mkdir(parents=True)
    np.save(d / "embeddings.npy", e.astype(np.float32))
    np.save(d / "norms.npy", norms.astype(np.float32))
    (d / "files.txt").write_text("".join(f"{f}\n" for f in files))


def blobs(n_ids, per_id, dim=16, spread=0.3, seed=4):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, dim))
    e = np.repeat(centres, per_id, axis=0) + spread * rng.standard_normal((n_ids * per_id, dim))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    return e.astype(np.float32), np.repeat(np.arange(n_ids), per_id), rng.uniform(5, 30, n_ids * per_id)


def test_rank_equals_the_cli(tmp_path):
    e, ids, norms = blobs(12, 3, spread=1.5)
    d = np.random.default_rng(9).standard_normal((20, 16)).astype(np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    # Per identity: the first image in the gallery, the others probes; plus 20 distractors.
    split = np.where(np.arange(len(e)) % 3 == 0, "gallery", "probe")
    files = [f"{s}/{i}_{k}.jpg" for k, (s, i) in enumerate(zip(split, ids))] + [f"distractor/x_{k}.jpg" for k in range(20)]
    write_features(tmp_path / "f", np.concatenate([e, d]), np.ones(len(files)), files)
    run_qface("eval", "rank", "--features", tmp_path / "f", "--ranks", "1,2,5", "--out", tmp_path / "r.json")
    cli = read_json(tmp_path / "r.json")["result"]
    g, p = split == "gallery", split == "probe"
    r = qface.eval.rank(e[p], [str(i) for i in ids[p]], e[g], [str(i) for i in ids[g]], distractors=d, ks=[1, 2, 5])
    assert r == cli
    assert r["probes"] == 24 and r["distractors"] == 20 and 0 < r["rank"]["1"] < 1


def test_cluster_equals_the_cli(tmp_path):
    e, ids, norms = blobs(8, 6, spread=1.0)
    write_features(tmp_path / "f", e, norms, [f"{i}_{k}.jpg" for k, i in enumerate(ids)])
    np.save(tmp_path / "labels.npy", ids.astype(np.int64))
    run_qface("eval", "cluster", "--features", tmp_path / "f", "--labels", tmp_path / "labels.npy", "--k", 5,
              "--threshold", 0.55, "--quality-ordered", "--out", tmp_path / "c.json")
    cli = read_json(tmp_path / "c.json")["results"]
    plain = qface.eval.cluster(e, ids, k=5, threshold=0.55)
    ordered = qface.eval.cluster(e, ids, k=5, threshold=0.55, quality=norms.astype(np.float32))
    assert [c["method"] for c in cli] == ["connected_components", "quality_ordered"]
    assert plain["metrics"] == cli[0]["metrics"] and ordered["metrics"] == cli[1]["metrics"]
    assert 0 < plain["metrics"]["nmi"] < 1


def test_edc_equals_the_cli(tmp_path):
    e, norms, issame = pairs(300, seed=6, noise=1.5)
    write_features(tmp_path / "f", e, norms, [f"{i}.jpg" for i in range(len(e))])
    qface.write_bin(str(tmp_path / "v.bin"), [b"x"] * len(e), issame)
    run_qface("eval", "quality", "--features", tmp_path / "f", "--bin", tmp_path / "v.bin", "--score", "norm",
              "--fmr", 0.05, "--pauc-limit", 0.3, "--out", tmp_path / "q.json")
    cli = read_json(tmp_path / "q.json")
    r = qface.eval.edc(e, issame, norms, fmr=0.05, limit=0.3)
    assert r == cli["scores"]["norm"]["edc"]
    assert r["pauc"] > 0


def test_ijb_equals_the_cli(tmp_path):
    # 6 subjects x 2 templates x 2 images; 1:1 pairs of every template pair, 1:N galleries of 3 subjects each.
    e, ids, norms = blobs(6, 4, spread=0.7, seed=8)
    meta = tmp_path / "ijb" / "meta"
    meta.mkdir(parents=True)
    tid = [100 + 10 * s + (k // 2) for s, k in zip(ids, np.arange(len(ids)) % 4)]
    files = [f"{i}.jpg" for i in range(len(ids))]
    (meta / "t_face_tid_mid.txt").write_text("".join(f"{f} {t} {1000 + i}\n" for i, (f, t) in enumerate(zip(files, tid))))
    ts = sorted(set(tid))
    (meta / "t_template_pair_label.txt").write_text(
        "".join(f"{a} {b} {int(a // 10 == b // 10)}\n" for i, a in enumerate(ts) for b in ts[i + 1:]))
    head = "TEMPLATE_ID,SUBJECT_ID,FILENAME\n"
    (meta / "t_1N_gallery_G1.csv").write_text(head + "".join(f"{100 + 10 * s},{s},x.jpg\n" for s in range(3)))
    (meta / "t_1N_gallery_G2.csv").write_text(head + "".join(f"{100 + 10 * s},{s},x.jpg\n" for s in range(3, 6)))
    (meta / "t_1N_probe_mixed.csv").write_text(head + "".join(f"{101 + 10 * s},{s},x.jpg\n" for s in range(6)))
    write_features(tmp_path / "f", e, norms, files)
    run_qface("eval", "ijb", "--meta", tmp_path / "ijb", "--features", tmp_path / "f", "--norm-score",
              "--out", tmp_path / "ijb.json")
    cli = read_json(tmp_path / "ijb.json")
    r = qface.eval.ijb(str(tmp_path / "ijb"), e, norms.astype(np.float32), files, norm_score=True)
    assert r["templates"] == 12 and r["verification"]["genuine"] == 6
    timing = ("seconds",)  # each run's own wall time
    assert {k: cli[k] for k in r if k not in timing} == {k: v for k, v in r.items() if k not in timing}
