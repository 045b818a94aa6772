"""Shared fixtures: the qface CLI (for cross-checks), seeded random weights and
a small .rec of drawn face-like images that qface makes itself."""
import json
import os
import subprocess

import numpy as np
import pytest

import qface


def run_qface(*args):
    """Runs the qface CLI (QFACE_BIN, set by ctest) and returns its stdout."""
    exe = os.environ.get("QFACE_BIN", "qface")
    r = subprocess.run([exe, *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def read_json(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("qface")
    run_qface("data", "make-test", "--out", d / "faces", "--images", 24, "--identities", 4)
    qface._qface._random_weights(str(d / "mfn.pt"), "mobilefacenet", 7)
    return d


@pytest.fixture(scope="session")
def model(data_dir):
    return qface.load_model(str(data_dir / "mfn.pt"), arch="mobilefacenet", threads=1)


@pytest.fixture(scope="session")
def crops(data_dir):
    """The .rec's images as RGB 112 x 112 arrays, and their labels."""
    rec = qface.RecordIO(str(data_dir / "faces.rec"), decode=True)
    images, labels = zip(*rec)
    return np.stack(images), np.array(labels)
