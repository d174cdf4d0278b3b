#!/usr/bin/env bash
# Nsight Compute profile of the dense fused forward kernel, per SASS instruction.
#
#   bash benchmarks/ncu_fused.sh OUTDIR VARIANT SIZE [SIZE ...]     (VARIANT: conv, gated, causal)
#
# For each size: one profiled launch (the second of benchmarks/fused_dev.py --once, fp16,
# B=64 H=768 or the bench's scaled-down batch), with the sections that explain an issue-bound
# kernel (speed of light, warp states, instruction mix, occupancy, per-instruction source
# counters), clocks left alone (--clock-control none, METHOD.md). OUTDIR receives per size
# ncu_N.txt (the sections) and sass_N.csv (executed instructions and stall samples per SASS
# instruction, for attributing them to the kernel's phases).
set -uo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: bash $0 OUTDIR VARIANT SIZE [SIZE ...]" >&2
  exit 2
fi
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
VARIANT=$2
shift 2
NCU=${NCU:-$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)}
if [[ -z "$NCU" ]]; then
  echo "ncu not found" >&2
  exit 3
fi
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
rc=0
for n in "$@"; do
  rep="$OUT/prof_$n"
  "$NCU" --clock-control none -k regex:monarch_conv --launch-skip 1 --launch-count 1 \
    --section SpeedOfLight --section WarpStateStats --section InstructionStats \
    --section Occupancy --section LaunchStats --section SchedulerStats \
    --section MemoryWorkloadAnalysis --section SourceCounters \
    -f -o "$rep" python3 "$REPO/benchmarks/fused_dev.py" --once "$VARIANT" --sizes "$n" \
    > "$OUT/ncu_run_$n.log" 2>&1 || rc=1
  "$NCU" -i "$rep.ncu-rep" --page details > "$OUT/ncu_$n.txt" 2>&1 || rc=1
  "$NCU" -i "$rep.ncu-rep" --page source --print-source sass --csv > "$OUT/sass_$n.csv" 2>&1 || rc=1
  tail -5 "$OUT/ncu_run_$n.log" >> "$OUT/ncu_$n.txt"
  rm -f "$rep.ncu-rep" "$OUT/ncu_run_$n.log"
done
exit $rc
