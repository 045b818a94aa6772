#!/usr/bin/env bash
# Runs the libFuzzer targets one after the other (make fuzz).
#   scripts/fuzz.sh BUILD_DIR SECONDS TARGET...
# Each target starts from the seeds in fuzz/corpus/<target>/ (never written
# to) plus what earlier runs found (BUILD_DIR/fuzz-corpus/<target>/); crashes
# land in BUILD_DIR/fuzz-artifacts/<target>/ and make the script exit 1.
# A summary line per target (executions, seconds, crashes) ends the output.
set -uo pipefail
build=$1 seconds=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
summary=()
status=0
for t in "$@"; do
  bin=$build/fuzz/fuzz_$t
  [[ -x $bin ]] || { echo "fuzz: $bin not built" >&2; exit 1; }
  work=$build/fuzz-corpus/$t arts=$build/fuzz-artifacts/$t log=$build/fuzz-logs/$t.log
  mkdir -p "$work" "$arts" "$(dirname "$log")"
  dict=()
  [[ -f $root/fuzz/$t.dict ]] && dict=(-dict="$root/fuzz/$t.dict")
  echo "fuzz: $t for ${seconds}s (log $log)"
  start=$(date +%s)
  # -fork=1 keeps going after a crash (each crash is saved); rss/malloc limits catch memory bombs.
  LSAN_OPTIONS=suppressions=$root/fuzz/lsan.supp:print_suppressions=0 \
  "$bin" "$work" "$root/fuzz/corpus/$t" "${dict[@]}" -max_total_time="$seconds" -fork=1 -ignore_crashes=1 \
    -ignore_ooms=1 -ignore_timeouts=1 -timeout=25 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 \
    -artifact_prefix="$arts/" >"$log" 2>&1
  end=$(date +%s)
  execs=$(grep -aEo 'stat::number_of_executed_units: *[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
  [[ $execs -gt 0 ]] || execs=$(grep -aEo '#[0-9]+' "$log" | tail -1 | tr -d '#')
  crashes=$(find "$arts" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
  [[ $crashes -eq 0 ]] || status=1
  summary+=("$(printf '%-14s %12s execs %6ss %3s crash/oom/timeout/leak inputs in %s' "$t" "${execs:-?}" "$((end - start))" "$crashes" "$arts")")
done
printf '%s\n' "${summary[@]}"
exit $status
