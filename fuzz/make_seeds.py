#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (committed; rerun to
regenerate). Small inputs shaped like the ones the tests use: each parser's
good files plus a few of the broken ones from the GoogleTest corpora.
Needs /usr/bin/python3 with numpy, torch and PIL (the Debian packages)."""
import base64
import io
import json
import os
import pickle
import shutil
import struct
import sys

import numpy as np
import torch
from PIL import Image

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def target(name):
    d = os.path.join(root, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def put(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- npy
d = target("npy")
for name, a in {
    "f4_2x3": np.arange(6, dtype=np.float32).reshape(2, 3),
    "f8_3": np.array([0.5, -1, 2], dtype=np.float64),
    "i8": np.arange(-2, 2, dtype=np.int64),
    "i4_2x2": np.arange(4, dtype=np.int32).reshape(2, 2),
    "u1": np.arange(5, dtype=np.uint8),
    "b1": np.array([True, False]),
    "empty_0x4": np.zeros((0, 4), dtype=np.float32),
    "scalar": np.array(3.5, dtype=np.float32),
}.items():
    b = io.BytesIO()
    np.save(b, a)
    put(d, name + ".npy", b.getvalue())
b = io.BytesIO()
np.lib.format.write_array(b, np.ones((2, 2), np.float32), version=(2, 0))
put(d, "v2.npy", b.getvalue())
put(d, "fortran_1d.npy", b"\x93NUMPY\x01\x00\x46\x00" + b"{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }".ljust(69) + b"\n" + b"\0" * 8)

# ---- pickle
d = target("pickle")
obj = {"bins": [b"\x00\xffabc"], "flags": [True, False], "n": -5, "big": 2**62, "f": 0.1, "s": "é", "t": (1, None)}
for proto in (0, 1, 2, 4, 5):
    put(d, f"mixed_p{proto}.pkl", pickle.dumps(obj, protocol=proto))
put(d, "p0_text.pkl", b"(I1\nS'ab'\np0\n(lp1\nF2.5\naI01\na(dp2\nS'k'\np3\nNsp4\ntp5\n.")
put(d, "namespace.pkl", b"\x80\x02}q\x00(X\x02\x00\x00\x00hpcargparse\nNamespace\nq\x01)\x81q\x02}q\x03X\x02\x00\x00\x00lrq\x04G?\xb9\x99\x99\x99\x99\x99\x9asbX\x02\x00\x00\x00sdccollections\nOrderedDict\nq\x05)Rq\x06X\x01\x00\x00\x00wK\x07su.")
put(d, "shared_memo.pkl", b"\x80\x02]q\x00h\x00h\x00\x86.")
put(d, "frozenset.pkl", pickle.dumps(frozenset([3]), protocol=4))
put(d, "codecs_bytes.pkl", pickle.dumps(b"\xff\x00x", protocol=2))

# ---- checkpoint (torch.save: legacy stream and zip container)
d = target("checkpoint")
torch.manual_seed(0)
sd = {"w": torch.arange(4, dtype=torch.float32).reshape(2, 2), "b": torch.tensor([1, 2], dtype=torch.int64),
      "h": torch.ones(2, dtype=torch.float16), "t": torch.arange(6.0).reshape(2, 3).t()}
for name, o in {"state_dict": sd, "magface": {"epoch": 1, "arch": "iresnet18", "state_dict": {"features.module." + k: v for k, v in sd.items()}},
                "nested": {"state_dict": {"model": {"w": sd["w"]}, "head": {"k": sd["b"]}}, "hyper_parameters": {"arch": "ir_18"}}}.items():
    b = io.BytesIO()
    torch.save(o, b, _use_new_zipfile_serialization=False)
    put(d, name + "_legacy.pth", b.getvalue())
b = io.BytesIO()
torch.save({"w": sd["w"]}, b)
put(d, "state_dict_zip.pth", b.getvalue())


def qface_archive(int8):
    """A file as qface's save_checkpoint writes it: LibTorch's OutputArchive is
    a TorchScript module "Module" whose attributes are the values written."""
    m = torch._C.ScriptModule("__torch__.Module", torch._C.CompilationUnit(), True)
    t, s, i = torch._C.TensorType.get(), torch._C.StringType.get(), torch._C.IntType.get()
    m._register_attribute("qface_format", i, 1)
    m._register_attribute("arch", s, "ir_18")
    m._register_attribute("state_dict", torch._C.DictType(s, t), {"conv.weight": sd["t"].contiguous(), "bn.bias": sd["w"][0]})
    if int8:
        m._register_attribute("int8_scale", t, torch.tensor([0.5, 0.25, 0.125], dtype=torch.float64))
        m._register_attribute("int8_zero_point", t, torch.tensor([0, 128, 255]))
        m._register_attribute("int8_fp32_from", i, 2)
        m._register_attribute("int8_info", s, "seed")
    return m.save_to_buffer()


put(d, "qface_archive.pt", qface_archive(False))
put(d, "qface_archive_int8.pt", qface_archive(True))

# ---- recordio: flags byte, .idx text, separator, .rec bytes
d = target("recordio")
MAGIC = 0xCED7230A


def record(payload, cflag=0):
    out = struct.pack("<II", MAGIC, (cflag << 29) | len(payload)) + payload
    return out + b"\0" * ((4 - len(out) % 4) % 4)


def irheader(flag=0, label=0.0, id_=0, id2=0, labels=()):
    return struct.pack("<IfQQ", len(labels) or flag, 0.0 if labels else label, id_, id2) + b"".join(struct.pack("<f", x) for x in labels)


def face_set(images):  # images: list of (label, bytes)
    classes = max(l for l, _ in images) + 1
    recs, idx, off = [], [], 0
    a, b = 1 + len(images), 1 + len(images) + classes
    payloads = [irheader(labels=(a, b))]
    for k, (l, im) in enumerate(images):
        payloads.append(irheader(label=float(l), id_=k + 1) + im)
    for c in range(classes):
        ks = [k + 1 for k, (l, _) in enumerate(images) if l == c]
        payloads.append(irheader(id_=a + c, labels=(min(ks), max(ks) + 1) if ks else (a, a)))
    for key, p in enumerate(payloads):
        r = record(p)
        idx.append(f"{key}\t{off}\n")
        off += len(r)
        recs.append(r)
    return "".join(idx).encode(), b"".join(recs)


SEP = b"\n@@rec@@\n"
idx, rec = face_set([(0, b"img-0"), (0, b"img-1"), (1, b"img-2"), (2, b"img-3")])
put(d, "face_set_indexed", b"\x00" + idx + SEP + rec)
put(d, "face_set_scan", b"\x01" + rec)
put(d, "face_set_skip_bad", b"\x01" + idx + SEP + rec)
# A payload holding the magic word: split into parts on disk (cflag 1 and 3).
magic = struct.pack("<I", MAGIC)
payload = irheader(label=0.0, id_=0) + b"abcd" + magic + b"efgh"
cut = len(irheader()) + 4
split = record(payload[:cut], 1) + record(payload[cut + 4:], 3)
put(d, "split_record", b"\x00" + b"0\t0\n" + SEP + split)
put(d, "plain_list", b"\x00" + b"0\t0\n1\t32\n" + SEP + record(irheader(label=3.0) + b"x") + record(irheader(label=1.0) + b"yz"))
put(d, "bad_idx_lines", b"\x01" + b"0\t0\nx\ty\n3\t99999999\n2\t0\n" + SEP + rec)

# ---- bin sets: (list of encoded images, list of bools), protocol 2, bytes as Python 2 str
d = target("bin_set")
img = io.BytesIO()
Image.new("RGB", (4, 4), (200, 10, 10)).save(img, "JPEG")
jpg = img.getvalue()
put(d, "py3_protocol2.bin", pickle.dumps(([jpg, jpg[:20], b"\x89PNG", b"x"], [True, False]), protocol=2))
put(d, "py3_protocol4.bin", pickle.dumps(([b"ab", b"cd"], [True]), protocol=4))
# Python 2's encoding: BINSTRING / SHORT_BINSTRING (what qface writes).
put(d, "py2_binstring.bin", b"\x80\x02]q\x00(U\x02abU\x02cde]q\x01\x88a\x86q\x02.")
put(d, "numpy_issame.bin", pickle.dumps(([b"ab", b"cd"], np.array([True])), protocol=2))

# ---- IJB meta: six files joined by NUL bytes
d = target("ijb_meta")
tid = "1.jpg 1 10\n2.jpg 1 10\n3.jpg 2 20\n4.jpg 3 30\n"
pts = "".join(f"{i}.jpg " + " ".join(["1.5"] * 10) + f" {0.5 + i / 10}\n" for i in range(1, 5))
pairs = "1 2 1\n1 3 0\n2 3 0\n"
g1 = "TEMPLATE_ID,SUBJECT_ID,FILENAME\n1,100,1.jpg\n2,200,3.jpg\n"
g2 = "TEMPLATE_ID,SUBJECT_ID,FILENAME,EXTRA\n3,300,4.jpg,x\n"
probe = "FILENAME,SUBJECT_ID,TEMPLATE_ID\n2.jpg,100,7\n"
put(d, "all_files", "\0".join([tid, pts, pairs, g1, g2, probe]))
put(d, "tid_mid_only", tid)
put(d, "crlf_and_blanks", "\0".join([tid.replace("\n", "\r\n") + "\n\n", "", pairs]))
put(d, "bad_fields", "\0".join(["1.jpg x 10\n", "", "1 2 3\n"]))

# ---- TOML configs: the shipped ones, and a few with --set overrides after "\n#--set\n"
d = target("config")
cfg_dir = os.path.join(os.path.dirname(root), "..", "configs")
for f in sorted(os.listdir(cfg_dir)):
    if f.endswith(".toml"):
        shutil.copy(os.path.join(cfg_dir, f), os.path.join(d, f))
with open(os.path.join(cfg_dir, "synth_tiny.toml")) as f:
    tiny = f.read()
put(d, "tiny_with_overrides", tiny + "\n#--set\nhead.name=arcface\ntrain.epochs=2\noptimizer.lr=0.01\nschedule.milestones=[1, 2]")
put(d, "unknown_key", "[model]\nbackbone = 'ir_18'\nbogus = 1\n")

# ---- qface serve request bodies: mode byte (even: JSON, odd: raw image), then the body
d = target("serve_request")
images = {}
for fmt_name, fmt in (("jpg", "JPEG"), ("png", "PNG"), ("bmp", "BMP"), ("webp", "WEBP")):
    b = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 120, 200)).save(b, fmt)
    images[fmt_name] = b.getvalue()
b = io.BytesIO()
Image.new("RGB", (8, 6), (1, 2, 3)).save(b, "WEBP", lossless=True)
images["webp_lossless"] = b.getvalue()
for k, v in images.items():
    put(d, "raw_" + k, b"\x01" + v)
    put(d, "json_" + k, b"\x00" + json.dumps({"image": base64.b64encode(v).decode()}).encode())
put(d, "json_wrapped_b64", b"\x00" + json.dumps({"image": base64.encodebytes(images["png"]).decode()}).encode())
put(d, "json_verify", b"\x00" + json.dumps({"a": base64.b64encode(images["jpg"]).decode(), "far": 1e-3}).encode())
put(d, "json_not_b64", b"\x00" + b'{"image": "a!b"}')
put(d, "json_array", b"\x00[1, 2]")
print("seeds written under", root)
