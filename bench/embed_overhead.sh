#!/usr/bin/env bash
# Fixed overhead of `qface embed`: its wall time on a list of aligned crops
# against N / (the `qface bench infer` rate measured right before it), for a
# few rounds, plus `qface --version`. docs/performance.md, "Fixed overhead".
#   bench/embed_overhead.sh ARCH WEIGHTS LIST [ROUNDS]   (QFACE=path/to/qface)
set -euo pipefail
arch=$1 weights=$2 list=$3 rounds=${4:-5}
qface=${QFACE:-$(dirname "$0")/../build/qface}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=$(grep -c . "$list")
now() { date +%s.%N; }
for r in $(seq "$rounds"); do
  "$qface" bench infer --arch "$arch" --weights "$weights" --batch 32 --threads 2 --no-python --no-plain \
    --json "$work/bench.json" >/dev/null 2>&1
  t0=$(now)
  "$qface" embed --arch "$arch" --weights "$weights" --images "$list" --out "$work/out" --no-flip-fuse \
    --batch 32 --threads 2 >/dev/null 2>&1
  t1=$(now)
  /usr/bin/python3 - "$work/bench.json" "$n" "$t0" "$t1" "$r" <<'PY'
import json, sys
bench = json.load(open(sys.argv[1]))
rate = bench["qface fast fp32 (BN folded, NHWC)"]["img_per_s"]
n, wall = int(sys.argv[2]), float(sys.argv[4]) - float(sys.argv[3])
ideal = n / rate
print(f"round {sys.argv[5]}: bench {rate:.2f} img/s -> {ideal:.2f} s for {n}; embed {wall:.2f} s; over {100 * (wall / ideal - 1):.1f} %")
PY
done
for i in 1 2 3; do
  t0=$(now); "$qface" --version >/dev/null; t1=$(now)
  /usr/bin/python3 -c "print(f'qface --version: {$t1 - $t0:.4f} s')"
done
