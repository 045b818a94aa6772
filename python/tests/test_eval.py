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
