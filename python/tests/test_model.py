import numpy as np
import pytest

import qface
from conftest import run_qface


def test_embed_gives_unit_embeddings_and_norms(model, crops):
    images, _ = crops
    emb, norms = model.embed(images[:5])
    assert emb.shape == (5, model.dim) and emb.dtype == np.float32
    assert norms.shape == (5,) and (norms > 0).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    # One crop alone gives the batch's row.
    e0, n0 = model.embed(images[0])
    np.testing.assert_allclose(e0[0], emb[0], atol=1e-5)
    np.testing.assert_allclose(n0[0], norms[0], rtol=1e-5)


def test_rgb_is_the_default_and_bgr_is_the_reverse(model, crops):
    images, _ = crops
    rgb, _ = model.embed(images[:3])
    bgr, _ = model.embed(np.ascontiguousarray(images[:3, :, :, ::-1]), bgr=True)
    np.testing.assert_allclose(rgb, bgr, atol=1e-6)
    swapped, _ = model.embed(np.ascontiguousarray(images[:3, :, :, ::-1]))
    assert np.abs(swapped - rgb).max() > 1e-3  # the channel order matters


def test_same_numbers_as_the_cli(model, crops, data_dir, tmp_path):
    # qface embed on the unpacked .rec (JPEG decoded by the same library): flip-fused by default, like the model.
    run_qface("data", "unpack", "--rec", data_dir / "faces.rec", "--out", tmp_path / "imgs")
    files = sorted((tmp_path / "imgs").rglob("*.*"))
    (tmp_path / "list.txt").write_text("".join(f"{f}\n" for f in files))
    run_qface("embed", "--arch", "mobilefacenet", "--weights", data_dir / "mfn.pt", "--images", tmp_path / "list.txt",
              "--out", tmp_path / "feat", "--threads", 1)
    cli_files = (tmp_path / "feat" / "files.txt").read_text().split()
    cli = np.load(tmp_path / "feat" / "embeddings.npy")
    assert len(files) == len(cli_files) == 24
    rec = qface.RecordIO(str(data_dir / "faces.rec"), decode=True)
    images = []
    for path in cli_files:
        key = int(path.rsplit("/", 1)[1].split(".")[0])
        images.append(rec.read(key - 1)[0])  # image keys start at 1 (record 0 is the header)
    emb, _ = model.embed(np.stack(images))
    assert np.min(np.sum(emb * cli, axis=1)) > 0.99999


def test_align_takes_a_112_input_as_a_crop_and_finds_no_face_in_a_wall(model, crops):
    images, _ = crops
    a = model.align(images[0])
    assert a["crop"].shape == (112, 112, 3) and a["points"] is None
    np.testing.assert_array_equal(a["crop"], images[0])
    wall = np.full((200, 240, 3), 120, np.uint8)
    assert model.align(wall) is None
    assert model.probe(wall) is None
    p = model.probe(images[1])
    assert p["embedding"].shape == (model.dim,) and p["norm"] > 0 and p["quality"] is None


def test_bad_inputs_raise_qface_errors(model, data_dir):
    with pytest.raises(qface.Error, match="uint8"):
        model.embed(np.zeros((112, 112, 3), np.float32))
    with pytest.raises(qface.Error, match="3 channels"):
        model.embed(np.zeros((2, 112, 112, 4), np.uint8))
    with pytest.raises(qface.Error, match="112 x 112"):
        model.embed(np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(qface.Error, match="no_such.pt"):
        qface.load_model(str(data_dir / "no_such.pt"), arch="mobilefacenet")
    with pytest.raises(qface.Error):
        qface.load_model(str(data_dir / "mfn.pt"), arch="ir_50")  # weights of another architecture
    assert issubclass(qface.Error, ValueError)


def test_docstrings():
    for f in (qface.load_model, qface.Model.embed, qface.Model.align, qface.RecordIO, qface.read_bin,
              qface.eval.verify, qface.Gallery, qface.synth.generate):
        assert len(f.__doc__ or "") > 80, f


def test_torch_tensors_in_and_out(model, crops):
    torch = pytest.importorskip("torch")
    images, _ = crops
    t = torch.from_numpy(images[:2])
    emb, norms = model.embed(t)  # a CPU tensor goes in through numpy's __array__, no copy
    ref, _ = model.embed(images[:2])
    np.testing.assert_array_equal(emb, ref)
    back = torch.from_numpy(emb)  # and out without a copy: the same memory
    assert back.data_ptr() == emb.__array_interface__["data"][0]
