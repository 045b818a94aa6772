"""qface.align (no model) and qface.quality, checked against dlib's annotated
example faces and against the `qface quality` command."""
import os
import re

import numpy as np
import pytest

import qface
from conftest import read_json, run_qface

DLIB_FACES = "/usr/share/doc/libdlib19.1/examples/faces"


def five_from_68(p):
    """The five points (docs/method.md, Alignment) from iBUG 68, as deploy/align.cpp
    computes them: pupils lifted a quarter lid opening."""
    def eye(a):
        upper, lower = (p[a + 1] + p[a + 2]) / 2, (p[a + 4] + p[a + 5]) / 2
        return p[a:a + 6].mean(axis=0) + (upper - lower) / 4
    return np.stack([eye(36), eye(42), p[30], p[48], p[54]])


def annotated(name):
    """The hand-marked 68 points of every face in one of dlib's example photos."""
    text = open(os.path.join(DLIB_FACES, "testing_with_face_landmarks.xml")).read()
    block = text[text.index(f"<image file='{name}'"):]
    block = block[:block.index("</image>")]
    faces = []
    for box in block.split("<box")[1:]:
        pts = re.findall(r"<part name='(\d+)' x='(-?\d+)' y='(-?\d+)'/>", box)
        faces.append(five_from_68(np.array([(float(x), float(y)) for _, x, y in pts])))
    return faces


def test_align_max_pixels_reaches_the_detector():
    # Issue #39 item 4: qface.align had no way to stop HOG's scale-down.
    cv2 = pytest.importorskip("cv2")
    path = os.path.join(DLIB_FACES, "2008_002506.jpg")
    if not os.path.exists(path):
        pytest.skip("dlib's example faces are not installed (libdlib19.1 docs)")
    bgr = cv2.imread(path)
    assert len(qface.align(bgr, bgr=True, detector="hog")) >= 2  # two people (HOG boxes a third patch)
    # Scaled down to 2,500 pixels (by 0.12) the faces are far below HOG's 40 px (80 / 2).
    assert qface.align(bgr, bgr=True, detector="hog", max_pixels=2500) == []
    with pytest.raises(qface.Error, match="max_pixels"):
        qface.align(bgr, bgr=True, detector="hog", max_pixels=-5)


def test_model_detector_options_and_face_count(data_dir):
    # The same options reach the model's own detector (probe, verify, quality),
    # and a probe says how many faces the photo had (issue #39 items 4 and 5).
    cv2 = pytest.importorskip("cv2")
    path = os.path.join(DLIB_FACES, "2008_002506.jpg")
    if not os.path.exists(path):
        pytest.skip("dlib's example faces are not installed (libdlib19.1 docs)")
    bgr = cv2.imread(path)
    weights = str(data_dir / "mfn.pt")
    p = qface.load_model(weights, threads=1, detector="hog").probe(bgr, bgr=True)
    assert p is not None and p["faces"] == len(qface.align(bgr, bgr=True, detector="hog")) >= 2
    assert qface.load_model(weights, threads=1, detector="hog", max_pixels=2500).probe(bgr, bgr=True) is None
    with pytest.raises(qface.Error, match="upsample"):
        qface.load_model(weights, upsample=7)


@pytest.mark.parametrize("detector", ["hog", "ssd"])
def test_align_finds_the_hand_marked_faces(detector):
    cv2 = pytest.importorskip("cv2")
    name = "2008_002470.jpg"
    if not os.path.exists(os.path.join(DLIB_FACES, name)):
        pytest.skip("dlib's example faces are not installed (libdlib19.1 docs)")
    bgr = cv2.imread(os.path.join(DLIB_FACES, name))
    faces = qface.align(bgr, bgr=True, detector=detector)
    assert len(faces) >= 1
    areas = [f["box"][2] * f["box"][3] for f in faces]
    assert areas == sorted(areas, reverse=True)  # largest first
    truth = annotated(name)
    matched = 0
    for f in faces:
        assert f["crop"].shape == (112, 112, 3) and f["points"].shape == (5, 2)
        err = min(np.abs(f["points"] - t).max() for t in truth)
        if err < 20:  # a face the annotation has (HOG may find others)
            assert err < 3.0
            matched += 1
    assert matched >= 1
    if detector == "ssd":  # the SSD's score is a probability
        assert all(0.5 < f["score"] < 1 for f in faces)
    # RGB input (the default) gives the same faces with the crop in RGB.
    rgb = qface.align(np.ascontiguousarray(bgr[:, :, ::-1]), detector=detector)
    assert len(rgb) == len(faces)
    np.testing.assert_allclose(rgb[0]["points"], faces[0]["points"])
    np.testing.assert_array_equal(rgb[0]["crop"], faces[0]["crop"][:, :, ::-1])


def test_align_of_a_wall_is_empty_and_bad_input_raises():
    assert qface.align(np.full((200, 240, 3), 120, np.uint8)) == []
    with pytest.raises(qface.Error, match="one H x W x 3"):
        qface.align(np.zeros((2, 50, 50, 3), np.uint8))
    with pytest.raises(qface.Error, match="upsample"):
        qface.align(np.zeros((50, 50, 3), np.uint8), upsample=9)
    with pytest.raises(qface.Error, match="unknown face detector 'cnn'"):
        qface.align(np.zeros((50, 50, 3), np.uint8), detector="cnn")


def test_quality_is_the_plain_norm_and_marks_faceless_images(model, crops):
    images, _ = crops
    q = qface.quality(model, images[:4])
    _, norms = model.embed(images[:4])
    np.testing.assert_allclose(q["norm"], norms, rtol=1e-6)
    assert q["found"].all() and q["quality"] is None
    wall = np.full((200, 240, 3), 120, np.uint8)
    q = qface.quality(model, [wall, images[5]])  # a list of images of different sizes
    assert q["found"].tolist() == [False, True] and np.isnan(q["norm"][0])
    np.testing.assert_allclose(q["norm"][1], model.embed(images[5])[1][0], rtol=1e-6)
    with pytest.raises(qface.Error, match=r"images\[1\]"):
        qface.quality(model, [images[0], np.zeros((10, 10), np.uint8)])


def test_calibrated_quality_equals_the_cli(data_dir, tmp_path):
    # A calibration from plain features (as the deployment scores the plain norm), then both sides on the same files.
    run_qface("data", "unpack", "--rec", data_dir / "faces.rec", "--out", tmp_path / "imgs")
    files = []
    for f in sorted((tmp_path / "imgs").rglob("*.*")):  # label_key.jpg: --all-pairs takes labels from names
        files.append(str(f.rename(tmp_path / "imgs" / f"{f.parent.name}_{f.name}")))
    (tmp_path / "list.txt").write_text("".join(f"{f}\n" for f in files))
    weights = data_dir / "mfn.pt"
    run_qface("embed", "--arch", "mobilefacenet", "--weights", weights, "--images", tmp_path / "list.txt",
              "--out", tmp_path / "feat", "--threads", 1, "--no-flip-fuse")
    run_qface("eval", "quality", "--features", tmp_path / "feat", "--all-pairs", "--calibration-out",
              tmp_path / "cal.json", "--out", tmp_path / "q.json")
    run_qface("quality", "--arch", "mobilefacenet", "--weights", weights, "--images", *files[:6],
              "--quality-calibration", tmp_path / "cal.json", "--out", tmp_path / "cli.json", "--threads", 1)
    cli = read_json(tmp_path / "cli.json")["images"]
    model = qface.load_model(str(weights), arch="mobilefacenet", quality_calibration=str(tmp_path / "cal.json"),
                             threads=1)
    cv2 = pytest.importorskip("cv2")
    q = qface.quality(model, [cv2.imread(f) for f in files[:6]], bgr=True)
    assert [r["image"] for r in cli] == files[:6]
    np.testing.assert_allclose(q["norm"], [r["norm"] for r in cli], rtol=1e-5)
    np.testing.assert_allclose(q["quality"], [r["quality"] for r in cli], atol=1e-9)
    assert 0 <= q["quality"].min() and q["quality"].max() <= 1 and q["quality"].std() > 0
