import numpy as np
import pytest

import qface
from conftest import read_json, run_qface


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


def test_device_names_are_checked_and_cuda_says_what_is_missing(data_dir):
    # Issue #38: load_model(device=) takes cpu, cuda or cuda:N; where this
    # LibTorch has no CUDA or the machine no GPU, it raises naming which.
    weights = str(data_dir / "mfn.pt")
    with pytest.raises(qface.Error, match="'gpu' is not a device; give cpu, cuda or cuda:N"):
        qface.load_model(weights, device="gpu")
    assert qface.load_model(weights, device="cpu", threads=1).embed(np.zeros((112, 112, 3), np.uint8)) is not None
    try:
        gpu = qface.load_model(weights, device="cuda", threads=1)
    except qface.Error as e:
        assert "built against a LibTorch without CUDA" in str(e) or "no CUDA device is visible" in str(e), str(e)
    else:  # a CUDA build on a GPU machine: the same features as on the CPU
        x = np.full((112, 112, 3), 128, np.uint8)
        cpu = qface.load_model(weights, device="cpu", threads=1)
        np.testing.assert_allclose(gpu.embed(x)[0], cpu.embed(x)[0], atol=1e-4)


def test_arch_comes_from_the_checkpoint(model, crops, data_dir, tmp_path):
    # Issue #39 item 7: load_model once defaulted to ir_50 and failed on the
    # demo's MobileFaceNets; the file records its architecture.
    plain = qface.load_model(str(data_dir / "mfn.pt"), threads=1)
    assert plain.arch == "mobilefacenet"
    images, _ = crops
    assert np.array_equal(plain.embed(images[:3])[0], model.embed(images[:3])[0])
    # A bare state dict records none: the error asks for arch and names the file.
    import torch
    torch.save({"w": torch.zeros(2)}, tmp_path / "bare.pt")
    with pytest.raises(qface.Error, match=r"bare\.pt: the file does not record its architecture: give --arch"):
        qface.load_model(str(tmp_path / "bare.pt"))


def test_docstrings():
    # Every public function, class and method of the module and its submodules says what it does.
    objects = [getattr(qface, n) for n in qface.__all__ if n not in ("eval", "synth")]
    objects += [getattr(m, n) for m in (qface.eval, qface.synth) for n in dir(m) if not n.startswith("_")]
    for cls in (qface.Model, qface.Gallery, qface.RecordIO, qface.RecordIOWriter):
        objects += [getattr(cls, n) for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))]
    short = [getattr(o, "__name__", o) for o in objects if len((o.__doc__ or "").strip()) < 40]
    assert not short


def test_torch_tensors_in_and_out(model, crops):
    torch = pytest.importorskip("torch")
    images, _ = crops
    ref_e, ref_n = model.embed(images[:2])
    t = torch.from_numpy(images[:2])  # N x H x W x 3
    emb, norms = model.embed(t)
    assert isinstance(emb, torch.Tensor) and isinstance(norms, torch.Tensor)
    np.testing.assert_array_equal(emb.numpy(), ref_e)
    np.testing.assert_array_equal(norms.numpy(), ref_n)
    # torchvision's channels-first uint8 layout (torchvision.io.read_image) reads the same.
    emb_chw, _ = model.embed(t.permute(0, 3, 1, 2))
    np.testing.assert_array_equal(emb_chw.numpy(), ref_e)
    one, _ = model.embed(t[0].permute(2, 0, 1))
    np.testing.assert_allclose(one.numpy()[0], ref_e[0], atol=1e-6)  # batch of one: another conv algorithm
    # Float features in, torch out, without a copy on either side.
    e = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    n = torch.rand(4) + 1
    f, fn = qface.eval.fuse_flip(e, n, e, n)
    assert isinstance(f, torch.Tensor)
    torch.testing.assert_close(f, e)
    torch.testing.assert_close(fn, 2 * n)
    assert qface.eval.verify(e.requires_grad_(), torch.tensor([True, False]), folds=2)["pairs"] == 2


def test_precision_int8_needs_a_quantized_file_and_bf16_stays_close(data_dir, crops):
    images, _ = crops
    with pytest.raises(qface.Error, match="qface quantize"):
        qface.load_model(str(data_dir / "mfn.pt"), arch="mobilefacenet", precision="int8")
    with pytest.raises(qface.Error, match="precision"):
        qface.load_model(str(data_dir / "mfn.pt"), arch="mobilefacenet", precision="int4")
    fp32 = qface.load_model(str(data_dir / "mfn.pt"), arch="mobilefacenet", threads=1)
    bf16 = qface.load_model(str(data_dir / "mfn.pt"), arch="mobilefacenet", threads=1, precision="bf16")
    assert fp32.precision == "fp32" and bf16.precision == "bf16"
    a, _ = fp32.embed(images[:4])
    b, _ = bf16.embed(images[:4])
    assert np.min(np.sum(a * b, axis=1)) > 0.98 and np.abs(a - b).max() > 0


def test_verify_decides_with_the_calibration_beside_the_weights(crops, data_dir, tmp_path):
    # Issue #39: qface.Model.verify gives a decision out of the box, as
    # `qface verify` does, from <weights stem>.verify.json beside the weights.
    cv2 = pytest.importorskip("cv2")
    images, labels = crops
    weights = tmp_path / "m.pt"
    weights.write_bytes((data_dir / "mfn.pt").read_bytes())
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(images), size=(40, 2))
    pngs = [cv2.imencode(".png", images[i][:, :, ::-1])[1].tobytes() for pair in idx for i in pair]
    qface.write_bin(str(tmp_path / "v.bin"), pngs, [bool(labels[a] == labels[b]) for a, b in idx])
    run_qface("eval", "verify", "--weights", weights, "--bin", tmp_path / "v.bin", "--threads", 1,
              "--out", tmp_path / "v.json", "--calibration-out", tmp_path / "m.verify.json")
    cal = read_json(tmp_path / "m.verify.json")
    model = qface.load_model(str(weights), threads=1)  # no arch, no flip_fuse: both from the files
    assert model.arch == "mobilefacenet" and model.flip_fuse == (cal["mode"] == "flip_fused")
    a, b = images[idx[0, 0]], images[idx[0, 1]]
    r = model.verify(a, b)
    strictest = min(t["far"] for t in cal["thresholds"])  # < 1000 impostors: 1e-3 is not resolved
    assert r["far"] == pytest.approx(strictest)
    t = next(t["threshold"] for t in cal["thresholds"] if t["far"] == r["far"])
    assert r["threshold"] == pytest.approx(t) and r["match"] == (r["cosine"] > t)
    assert r["a"]["faces"] == 1 and r["a"]["box"] is None  # an aligned crop: used as it is
    # The command line decides the same.
    for name, img in (("a.png", a), ("b.png", b)):
        cv2.imwrite(str(tmp_path / name), img[:, :, ::-1])
    run_qface("verify", "--weights", weights, tmp_path / "a.png", tmp_path / "b.png", "--threads", 1,
              "--out", tmp_path / "cli.json")
    cli = read_json(tmp_path / "cli.json")
    assert cli["cosine"] == pytest.approx(r["cosine"], abs=1e-5) and cli["match"] == r["match"]
    assert cli["far"] == pytest.approx(r["far"])
    # A model loaded in the other fusion mode cannot use these thresholds.
    other = qface.load_model(str(weights), threads=1, flip_fuse=not model.flip_fuse)
    with pytest.raises(qface.Error, match="load it with flip_fuse"):
        other.verify(a, b)
    with pytest.raises(qface.Error, match="far 0.5"):
        model.verify(a, b, far=0.5)
