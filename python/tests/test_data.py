import struct

import numpy as np
import pytest

import qface
from conftest import read_json, run_qface


def python_records(rec_path):
    """An independent pure-Python reader of the RecordIO layout (magic, length
    with continuation flag, padding to 4 bytes; IRHeader 'IfQQ' + flag floats)."""
    data = open(rec_path, "rb").read()
    pos, out = 0, []
    while pos < len(data):
        magic, lrec = struct.unpack_from("<II", data, pos)
        assert magic == 0xCED7230A
        length = lrec & ((1 << 29) - 1)
        payload = data[pos + 8:pos + 8 + length]
        pos += 8 + length + (-length % 4)
        flag, label, key, _ = struct.unpack_from("<IfQQ", payload, 0)
        labels = struct.unpack_from(f"<{flag}f", payload, 24) if flag else (label,)
        out.append((key, labels, payload[24 + 4 * flag:]))
    return out


def test_recordio_reads_what_the_format_says(data_dir):
    rec = qface.RecordIO(str(data_dir / "faces.rec"))
    ref = python_records(data_dir / "faces.rec")
    images = [r for r in ref if 1 <= r[0] <= 24]
    assert len(rec) == 24 and rec.num_classes == 4
    info = read_json_from_cli(data_dir)
    assert info["images"] == len(rec) and info["identities"] == rec.num_classes
    for i, (key, labels, image) in enumerate(images):
        got, label = rec[i]
        assert got == image and label == int(labels[0])
    assert list(rec.labels()) == [int(r[1][0]) for r in images]
    assert rec[-1] == rec[23]
    with pytest.raises(IndexError):
        rec[24]
    decoded, _ = qface.RecordIO(str(data_dir / "faces.rec"), decode=True)[0]
    assert decoded.shape == (112, 112, 3) and decoded.dtype == np.uint8


def read_json_from_cli(data_dir):
    import json
    return json.loads(run_qface("data", "info", data_dir / "faces.rec", "--json"))


def test_recordio_writer_round_trip(tmp_path, crops):
    images, labels = crops
    order = np.argsort(labels, kind="stable")
    with qface.RecordIOWriter(str(tmp_path / "out.rec")) as w:
        for i in order[:10]:
            w.add(images[i], int(labels[i]))
        w.add(b"\xff\xd8 not really a jpeg", int(labels[order[9]]))  # bytes are stored as given
    rec = qface.RecordIO(str(tmp_path / "out.rec"))
    assert len(rec) == 11
    assert [rec[i][1] for i in range(11)] == [int(labels[i]) for i in order[:10]] + [int(labels[order[9]])]
    assert rec[10][0] == b"\xff\xd8 not really a jpeg"
    # An unfinished writer (an exception in the block) leaves no files.
    with pytest.raises(RuntimeError):
        with qface.RecordIOWriter(str(tmp_path / "half.rec")) as w:
            w.add(images[0], 0)
            raise RuntimeError("stop")
    assert not (tmp_path / "half.rec").exists() and not (tmp_path / "half.idx").exists()
    with pytest.raises(qface.Error, match="must be contiguous"):
        with qface.RecordIOWriter(str(tmp_path / "bad.rec")) as w:
            w.add(images[0], 2)
            w.add(images[1], 1)


def test_bin_round_trip_and_numpy_issame(tmp_path):
    images = [bytes([k]) * (10 + k) for k in range(6)]
    qface.write_bin(str(tmp_path / "a.bin"), images, np.array([True, False, True]))
    got, same = qface.read_bin(str(tmp_path / "a.bin"))
    assert got == images and same.dtype == bool and list(same) == [True, False, True]
    # The .bin as Python writes it, issame a NumPy array.
    import pickle
    with open(tmp_path / "np.bin", "wb") as f:
        pickle.dump((images, np.array([False, True, False])), f, protocol=4)
    assert list(qface.read_bin(str(tmp_path / "np.bin"))[1]) == [False, True, False]
    with pytest.raises(qface.Error, match="images for"):
        qface.write_bin(str(tmp_path / "b.bin"), images[:5], [True, False, True])


def test_missing_and_broken_files_raise(tmp_path):
    with pytest.raises(qface.Error, match="nope.rec"):
        qface.RecordIO(str(tmp_path / "nope.rec"))
    (tmp_path / "junk.rec").write_bytes(b"\x00" * 64)
    with pytest.raises(qface.Error, match="junk.rec"):
        qface.RecordIO(str(tmp_path / "junk.rec"))
    (tmp_path / "junk.bin").write_bytes(b"\x80\x02not a pickle")
    with pytest.raises(qface.Error, match="junk.bin"):
        qface.read_bin(str(tmp_path / "junk.bin"))
