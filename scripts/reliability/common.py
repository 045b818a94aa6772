"""What the reliability scripts share (docs/reliability.md): running qface,
tiny synthetic crops to work on, a gallery split, and the JSON summary."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

QUIET = ["--log-level", "error"]
# Random weights: the work per call is the real one, the scores mean nothing.
MODEL = ["--arch", "mobilefacenet", "--random-weights", "--threads", "1"]


def run(cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def synth_crops(qface, work):
    """`qface synth --preset tiny` in work/data, its training set unpacked to
    work/crops/<identity>/ (aligned 112x112 crops). Returns (data, crops)."""
    data, crops = work / "data", work / "crops"
    subprocess.run([qface, *QUIET, "synth", "--preset", "tiny", "--out", str(data)], check=True)
    subprocess.run([qface, *QUIET, "data", "unpack", "--rec", str(data / "train.rec"), "--out", str(crops)], check=True)
    return data, crops


def split_identities(crops, work):
    """Two folders of symlinks, the first and the second half of the identities
    (a gallery built from one, enrolled with the other). Returns (first, second, ids)."""
    ids = sorted(p for p in crops.iterdir() if p.is_dir())
    half = len(ids) // 2
    first, second = work / "first", work / "second"
    for folder, part in ((first, ids[:half]), (second, ids[half:])):
        folder.mkdir()
        for d in part:
            (folder / d.name).symlink_to(d)
    return first, second, ids


def finish(summary, violations, out, work):
    """Prints (and writes) the summary, removes the work folder, exits 1 on any violation."""
    summary["violations"] = violations
    text = json.dumps(summary, indent=1)
    print(text)
    if out != "-":
        Path(out).write_text(text + "\n")
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if violations else 0)
