#!/usr/bin/python3
"""kill -9 at random moments of `qface train`, `qface search add` and
`qface data pack` (docs/reliability.md). After every kill the last committed
state must load and nothing half-written may stand under a final name:

- train (a fresh run each trial, 24 steps, a checkpoint every step, the
  oldest removed past 3): a copy of the run resumes (`train --resume`) from
  the newest ckpt-*.pt in its checkpoint folder and runs to the end; the
  last killed run itself resumes to the end too.
- search add: the gallery opens (`qface search query`) and holds either the
  identities it had before the add or all of them afterwards, never a part.
- data pack: two sources of 3,000 and 2,000 images packed in turn to one
  prefix; after each kill the pair must be one complete pack of either
  (`qface data info` counts its images, `qface data unpack` reads every
  record), never a .rec without its .idx or with the other pack's .idx.

Kill moments are uniform over each command's measured uninterrupted duration
(seeded). Prints a JSON summary; exit 1 on any violation.

  /usr/bin/python3 scripts/reliability/kill_trials.py --qface build/qface --trials 20
"""
import argparse
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import MODEL, QUIET, finish, run, split_identities, synth_crops


def timed(cmd):
    t0 = time.perf_counter()
    r = run(cmd)
    if r.returncode != 0:
        sys.exit(f"uninterrupted run failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return time.perf_counter() - t0


def kill_at(cmd, seconds):
    """Starts cmd, SIGKILLs it after `seconds` (unless it ended); True when it was killed."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        p.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait()
        return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qface", default="build/qface")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", default="configs/synth_tiny.toml")
    ap.add_argument("--out", default="-")
    a = ap.parse_args()
    q = a.qface
    rng = random.Random(a.seed)
    work = Path(tempfile.mkdtemp(prefix="qface-kill-"))
    data, crops = synth_crops(q, work)
    summary, violations = {}, []

    # --- train -------------------------------------------------------------
    out = work / "train"
    recipe = lambda d: ["--config", a.config, "--set", f"out_dir={d}", "--set", f"data.train={data / 'train.rec'}",
                        "--set", "epochs=6", "--set", "checkpoint_every=1", "--set", "keep_checkpoints=3"]
    train = [q, *QUIET, "train", *recipe(out)]
    full = timed(train)
    shutil.rmtree(out)
    one_crop = next(p for p in crops.rglob("*") if p.is_file())
    killed, resumed_steps = 0, []
    for t in range(a.trials):
        has_ckpt = lambda d: (d / "checkpoints").exists() and any((d / "checkpoints").glob("ckpt-*.pt"))
        shutil.rmtree(out, ignore_errors=True)  # each trial a fresh run, killed somewhere in its duration
        killed += kill_at(train, rng.uniform(0.05, 0.95) * full)
        # The newest checkpoint (the one --resume takes) must load: resume a copy of the run to its end.
        newest = sorted((out / "checkpoints").glob("ckpt-*.pt")) if has_ckpt(out) else []
        if not newest:
            resumed_steps.append(None)  # killed before the first checkpoint: nothing to load
            continue
        check = work / "train-check"
        shutil.rmtree(check, ignore_errors=True)
        shutil.copytree(out, check)
        r = run([q, "--log-level", "info", "train", *recipe(check), "--resume"])
        m = re.search(r"resumed from \S+ at step (\d+)", r.stderr + r.stdout)
        step = int(m.group(1)) if m else 0
        want = int(newest[-1].stem.split("-")[1])
        resumed_steps.append(step)
        if r.returncode != 0 or step != want:
            violations.append({"train": t, "newest": want, "resumed_at": step, "rc": r.returncode,
                               "error": r.stderr.strip()[-300:]})
    r = run(train + ["--resume"])
    if r.returncode != 0:
        violations.append({"train": "final resume", "error": r.stderr.strip()[-300:]})
    summary["train"] = {"trials": a.trials, "killed": killed, "uninterrupted_s": round(full, 1),
                        "resumed_at_steps": resumed_steps, "final_resume_rc": r.returncode}

    # --- search add ----------------------------------------------------------
    gal = work / "gallery"
    base_list, add_dir, ids = split_identities(crops, work)
    half = len(ids) // 2
    build = [q, *QUIET, "search", "build", "--gallery", str(gal), "--images", str(base_list), *MODEL]
    add = [q, *QUIET, "search", "add", "--gallery", str(gal), "--images", str(add_dir), *MODEL]
    timed(build)
    snapshot = work / "gallery.before"
    shutil.copytree(gal, snapshot)
    full = timed(add)
    killed = 0
    sizes = {}
    for t in range(a.trials):
        shutil.rmtree(gal)
        shutil.copytree(snapshot, gal)
        killed += kill_at(add, rng.uniform(0.05, 0.95) * full)
        r = run([q, *QUIET, "search", "query", "--gallery", str(gal), "--images", str(one_crop.parent), "--k", "1",
                 "--out", str(work / "hits.json"), *MODEL])
        n = len(json.loads((gal / "gallery.json").read_text())["identities"]) if r.returncode == 0 else None
        sizes[str(n)] = sizes.get(str(n), 0) + 1
        if r.returncode != 0 or n not in (half, len(ids)):
            violations.append({"search_add": t, "identities": n, "error": r.stderr.strip()[-300:]})
    summary["search_add"] = {"trials": a.trials, "killed": killed, "uninterrupted_s": round(full, 1),
                             "identities_after": sizes, "before": half, "complete": len(ids)}

    # --- data pack -------------------------------------------------------------
    # Two sources of different sizes, packed in turn to the same prefix: after a
    # kill, the pair must be one complete pack of either (never a .rec of one
    # with the .idx of the other).
    sources = {}
    for name, n in (("A", 3000), ("B", 2000)):
        subprocess.run([q, *QUIET, "data", "make-test", "--out", str(work / f"src{name}"), "--images", str(n),
                        "--identities", "40"], check=True)
        subprocess.run([q, *QUIET, "data", "unpack", "--rec", str(work / f"src{name}.rec"), "--out",
                        str(work / f"pack{name}")], check=True)
        sources[name] = (work / f"pack{name}", n)
    prefix = work / "pack" / "faces"
    prefix.parent.mkdir()
    pack = lambda src: [q, *QUIET, "data", "pack", "--from", str(sources[src][0]), "--out", str(prefix)]
    full = timed(pack("A"))  # the first committed state
    killed = 0
    states = {}
    for t in range(a.trials):
        killed += kill_at(pack("B" if t % 2 == 0 else "A"), rng.uniform(0.05, 0.95) * full)
        rec, idx = prefix.with_suffix(".rec"), prefix.with_suffix(".idx")
        r = run([q, *QUIET, "data", "info", str(rec), "--json", "--sample", "0"])
        try:
            images = json.loads(r.stdout).get("images") if r.returncode == 0 else None
        except ValueError:
            images = None
        state = {3000: "A", 2000: "B"}.get(images, "broken") if idx.exists() else "broken"
        if state != "broken":
            # Every record readable through the index: unpack all of it.
            u = run([q, *QUIET, "data", "unpack", "--rec", str(rec), "--out", str(work / "unpacked")])
            shutil.rmtree(work / "unpacked", ignore_errors=True)
            if u.returncode != 0:
                state = "broken"
        if state == "broken":
            violations.append({"data_pack": t, "rec": rec.exists(), "idx": idx.exists(), "info": (r.stdout + r.stderr)[-300:]})
        states[state] = states.get(state, 0) + 1
    summary["data_pack"] = {"trials": a.trials, "killed": killed, "uninterrupted_s": round(full, 1), "states": states}

    finish(summary, violations, a.out, work)


if __name__ == "__main__":
    main()
