"""Every script in examples/python runs, on data qface makes itself, and prints
what it says it prints (issue #39 item 6: one of them raised on its first search)."""
import os
import pathlib
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

import qface

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python"


def run_example(name, *args, cwd):
    # The module this test imported, whatever the caller's PYTHONPATH was relative to.
    module_dir = str(pathlib.Path(qface.__file__).resolve().parents[1])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=module_dir)
    r = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], capture_output=True, text=True,
                       cwd=cwd, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_every_example_is_tested():
    tested = {"adaface_loop.py", "gallery_search.py", "rec_to_numpy.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_adaface_loop_learns(tmp_path):
    out = run_example("adaface_loop.py", cwd=tmp_path)
    last = re.findall(r"step 199 .* train accuracy ([0-9.]+)", out)
    assert last and float(last[0]) >= 0.8, out  # 8 separable toy identities
    r = float(re.findall(r"input quality: (-?[0-9.]+)", out)[0])
    assert r > 0, out  # the norm follows quality (the margin's premise)
    assert list(tmp_path.iterdir()) == []  # writes nothing


def test_rec_to_numpy_matches_the_reader(data_dir, tmp_path):
    rec = data_dir / "faces.rec"
    out = run_example("rec_to_numpy.py", rec, 5, cwd=tmp_path)
    assert list(tmp_path.iterdir()) == []  # no file unless asked for
    assert "read (5, 112, 112, 3)" in out
    run_example("rec_to_numpy.py", rec, 5, tmp_path / "s.npz", cwd=tmp_path)
    saved = np.load(tmp_path / "s.npz")
    reader = qface.RecordIO(str(rec), decode=True)
    for i in range(5):
        image, label = reader[i]
        assert np.array_equal(saved["images"][i], image) and saved["labels"][i] == label


def test_gallery_search_finds_each_enrolled_face(data_dir, tmp_path):
    # One aligned crop per identity enrolled; the same crops as probes must
    # come back as their own identity at cosine 1 (random weights suffice).
    reader = qface.RecordIO(str(data_dir / "faces.rec"), decode=True)
    first = {}
    for image, label in reader:
        first.setdefault(int(label), image)
    (tmp_path / "probes").mkdir()
    for label, image in first.items():
        person = tmp_path / "gallery" / f"p{label}"
        person.mkdir(parents=True)
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(person / "a.png"), bgr)
        cv2.imwrite(str(tmp_path / "probes" / f"p{label}.png"), bgr)
    out = run_example("gallery_search.py", data_dir / "mfn.pt", "mobilefacenet", tmp_path / "gallery",
                      tmp_path / "probes", cwd=tmp_path)
    assert f"gallery: {len(first)} identities" in out, out
    for label in first:
        m = re.search(rf"^p{label}\.png: norm [0-9.]+; (\S+) ([0-9.]+)", out, re.M)
        assert m and m.group(1) == f"p{label}" and float(m.group(2)) == pytest.approx(1.0, abs=2e-3), out
