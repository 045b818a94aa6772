"""qface: quality-aware face recognition (AdaFace, MagFace) from Python.

The C++ library behind the `qface` command, on numpy arrays:

    import qface
    model = qface.load_model("adaface_ir50_ms1mv2.ckpt", arch="ir_50")
    faces = qface.align(rgb_photo)                 # every face: crop, five points, box
    emb, norms = model.embed(faces[0]["crop"])     # norms: the quality score
    qface.quality(model, [photo1, photo2])         # norm, calibrated [0, 1] quality
    rec = qface.RecordIO("faces_emore/train.rec")  # InsightFace .rec without MXNet
    images, issame = qface.read_bin("lfw.bin")
    qface.eval.verify(embeddings, issame)          # the dict `qface eval verify` writes

Images are uint8 H x W x 3 (or N x H x W x 3) arrays in RGB order, as PIL and
torchvision give them; pass bgr=True for arrays from OpenCV. Errors raise
qface.Error (a ValueError) with the library's one-line message. Torch tensors
work wherever arrays do (when the caller has imported torch): CPU tensors are
read without a copy and results come back as torch tensors over the same
memory.
"""
from ._qface import (  # noqa: F401
    Error,
    Gallery,
    Model,
    RecordIO,
    RecordIOWriter,
    __version__,
    align,
    backbones,
    eval,
    load_model,
    quality,
    read_bin,
    set_log_level,
    synth,
    write_bin,
)

__all__ = ["Error", "Gallery", "Model", "RecordIO", "RecordIOWriter", "align", "backbones", "eval", "load_model", "quality",
           "read_bin", "set_log_level", "synth", "write_bin"]
