#!/usr/bin/python3
"""Disk full during a checkpoint and during a gallery save (docs/reliability.md).

Mounts a small tmpfs (needs root), then
- trains the tiny recipe with its checkpoints on the tmpfs, sized so that the
  third checkpoint cannot be written: `qface train` must fail with a clear
  error and a non-zero exit, leave no temporary file, and a copy of the run
  must resume from the newest checkpoint left;
- builds a gallery on the tmpfs, fills the rest of it, and enrols more
  identities: `qface search add` must fail the same way, and the gallery must
  still open with the identities it had.
Prints a JSON summary; exit 1 on any violation.

  sudo /usr/bin/python3 scripts/reliability/disk_full.py --qface build/qface
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import MODEL, QUIET, finish, run, split_identities, synth_crops


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qface", default="build/qface")
    ap.add_argument("--config", default="configs/synth_tiny.toml")
    ap.add_argument("--out", default="-")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("disk_full: needs root to mount a tmpfs")
    q = str(Path(a.qface).resolve())
    work = Path(tempfile.mkdtemp(prefix="qface-full-"))
    mnt = work / "mnt"
    data, crops = synth_crops(q, work)
    summary, violations = {}, []

    def mount(size):
        mnt.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], check=True)

    def umount():
        subprocess.run(["umount", str(mnt)], check=True)

    try:
        # --- checkpoint ----------------------------------------------------------
        train = lambda out: [q, *QUIET, "train", "--config", a.config, "--set", f"out_dir={out}",
                             "--set", f"data.train={data / 'train.rec'}", "--set", "epochs=2",
                             "--set", "checkpoint_every=1", "--set", "keep_checkpoints=100"]
        probe = work / "probe"
        r = run(train(probe) + ["--set", "epochs=1"])
        assert r.returncode == 0, r.stderr
        ck_size = max(p.stat().st_size for p in (probe / "checkpoints").glob("ckpt-*.pt"))
        mount(int(2.5 * ck_size) + 64 * 1024)
        out = mnt / "run"
        r = run(train(out))
        ckpts = sorted((out / "checkpoints").glob("ckpt-*.pt"))
        stray = [p.name for p in (out / "checkpoints").iterdir() if not p.name.startswith("ckpt-")]
        # The checkpoints left must load: a copy of the run on the normal disk resumes from the newest.
        check = work / "check"
        shutil.copytree(out, check)
        res = run([q, "--log-level", "info", "train", *train(check)[4:], "--resume"])
        m = re.search(r"resumed from \S+ at step (\d+)", res.stderr + res.stdout)
        resumed = int(m.group(1)) if m else None
        newest = int(ckpts[-1].stem.split("-")[1]) if ckpts else None
        summary["checkpoint"] = {"checkpoint_bytes": ck_size, "exit": r.returncode, "error": r.stderr.strip()[-400:],
                                 "checkpoints_left": [p.name for p in ckpts], "copy_resumed_at_step": resumed,
                                 "copy_resume_exit": res.returncode, "stray_files": stray}
        if r.returncode == 0 or not ckpts or resumed != newest or res.returncode != 0 or stray:
            violations.append("checkpoint")
        umount()

        # --- gallery save ----------------------------------------------------------
        first, more, ids = split_identities(crops, work)
        half = len(ids) // 2
        mount("8m")
        gal = mnt / "gallery"
        r = run([q, *QUIET, "search", "build", "--gallery", str(gal), "--images", str(first), *MODEL])
        assert r.returncode == 0, r.stderr
        used = sum(p.stat().st_size for p in gal.iterdir())
        # Leave less room than one more generation of the gallery needs.
        free = shutil.disk_usage(mnt).free
        with open(mnt / "filler", "wb") as f:
            f.write(b"\0" * max(0, free - used // 2))
        r = run([q, *QUIET, "search", "add", "--gallery", str(gal), "--images", str(more), *MODEL])
        os.remove(mnt / "filler")
        qr = run([q, *QUIET, "search", "query", "--gallery", str(gal), "--images", str(ids[0]), "--k", "1",
                  "--out", str(work / "hits.json"), *MODEL])
        n = len(json.loads((gal / "gallery.json").read_text())["identities"]) if qr.returncode == 0 else None
        summary["gallery"] = {"gallery_bytes": used, "exit": r.returncode, "error": r.stderr.strip()[-400:],
                              "opens_after": qr.returncode == 0, "identities_after": n, "identities_before": half,
                              "files": sorted(p.name for p in gal.iterdir())}
        if r.returncode == 0 or n != half:
            violations.append("gallery")
        umount()
    finally:
        subprocess.run(["umount", str(mnt)], stderr=subprocess.DEVNULL)
    finish(summary, violations, a.out, work)


if __name__ == "__main__":
    main()
