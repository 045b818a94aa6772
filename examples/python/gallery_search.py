"""Enrols a folder of aligned faces (GALLERY_DIR/<person>/*.jpg) and searches
each probe image (PROBE_DIR/*.jpg) against it, printing the top-3 with the
probe's quality (its feature norm).

    /usr/bin/python3 examples/python/gallery_search.py adaface_ir50.ckpt ir_50 people/ probes/
"""
import pathlib
import sys
import tempfile

import cv2  # Debian's python3-opencv, only to read the files (BGR arrays)

import qface

weights, arch, gallery_dir, probe_dir = sys.argv[1:5]
model = qface.load_model(weights, arch=arch)
gallery = qface.Gallery.create(tempfile.mkdtemp() + "/g", dim=model.dim)
for person in sorted(p for p in pathlib.Path(gallery_dir).iterdir() if p.is_dir()):
    for f in sorted(person.glob("*.*")):
        face = model.probe(cv2.imread(str(f)), bgr=True)  # aligns photos; a 112 x 112 crop is used as it is
        if face is not None:
            gallery.add(person.name, face["embedding"], [face["norm"]])  # quality-weighted template fusion
print(f"gallery: {len(gallery)} identities")
for f in sorted(pathlib.Path(probe_dir).glob("*.*")):
    face = model.probe(cv2.imread(str(f)), bgr=True)
    if face is None:
        print(f"{f.name}: no face")
        continue
    top = gallery.search(face["embedding"], k=3)[0]
    print(f"{f.name}: norm {face['norm']:.2f}; " + ", ".join(f"{n} {s:.3f}" for n, s in top))
