import numpy as np
import pytest

import qface


def test_gallery_fuses_searches_persists_and_removes(tmp_path):
    g = qface.Gallery.create(str(tmp_path / "g"), dim=4)
    g.add("alice", np.array([[1, 0, 0, 0], [0, 1, 0, 0]], np.float32), np.array([3, 1], np.float32))
    g.add("bob", np.array([0, 0, 1, 0], np.float32), np.array([2], np.float32))
    assert len(g) == 2 and "alice" in g and g.images("alice") == 2
    # Searching right after add() works (the index is refreshed in memory; it
    # raised "save() before querying" once, issue #39 item 6), and writes nothing.
    assert g.search(np.array([0, 0, 1, 0], np.float32), k=1)[0][0] == ("bob", pytest.approx(1.0, abs=1e-6))
    with pytest.raises(qface.Error):
        qface.Gallery.open(str(tmp_path / "g"))  # not saved yet
    g.save()
    hits = g.search(np.array([[1, 0, 0, 0], [0, 0, 1, 0]], np.float32), k=2)
    # alice's template: normalize(3 e1 + 1 e2): cosine to e1 = 3 / sqrt(10).
    assert hits[0][0][0] == "alice" and hits[0][0][1] == pytest.approx(3 / np.sqrt(10), abs=1e-6)
    assert hits[1][0] == ("bob", pytest.approx(1.0, abs=1e-6))
    h = qface.Gallery.open(str(tmp_path / "g"))
    assert sorted(h.names) == ["alice", "bob"]
    assert h.remove("bob") and not h.remove("carol")
    h.save()
    assert qface.Gallery.open(str(tmp_path / "g")).names == ["alice"]
    with pytest.raises(qface.Error):
        qface.Gallery.create(str(tmp_path / "g"), dim=4)  # exists
    with pytest.raises(qface.Error):
        qface.Gallery.open(str(tmp_path / "none"))


def test_synth_generate_tiny(tmp_path):
    s = qface.synth.generate(str(tmp_path / "d"), preset="tiny", threads=1)
    assert s["train_images"] > 0 and s["val_pairs"] > 0
    rec = qface.RecordIO(str(tmp_path / "d" / "train.rec"))
    assert len(rec) == s["train_images"] and rec.num_classes == s["train_ids"]
