"""Reads the first N images of an InsightFace .rec into numpy, without MXNet,
and saves them to OUT (an .npz with `images` N x 112 x 112 x 3 RGB uint8 and
`labels`) when OUT is given.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/rec_to_numpy.py faces_emore/train.rec 1000 sample.npz
"""
import sys

import numpy as np

import qface

rec = qface.RecordIO(sys.argv[1], decode=True)  # decode=False gives the JPEG bytes
n = min(len(rec), int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
images = np.stack([rec[i][0] for i in range(n)])  # N x 112 x 112 x 3, RGB
labels = np.array([rec[i][1] for i in range(n)])
print(f"{rec.path}: {len(rec)} images of {rec.num_classes} identities; read {images.shape}, "
      f"labels {labels.min()}..{labels.max()}")
if len(sys.argv) > 3:
    np.savez_compressed(sys.argv[3], images=images, labels=labels)
    print(f"wrote {sys.argv[3]}")
