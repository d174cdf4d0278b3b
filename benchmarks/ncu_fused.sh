#!/usr/bin/env bash
# Nsight Compute profile of the dense fused forward kernel, per SASS instruction.
#
#   bash benchmarks/ncu_fused.sh OUTDIR VARIANT SIZE [SIZE ...]     (VARIANT: conv, gated, causal)
#
# For each size: one profiled launch (the second of benchmarks/fused_dev.py --once, fp16,
# B=64 H=768 or the bench's scaled-down batch) with benchmarks/ncu_common.sh's sections. OUTDIR
# receives per size ncu_N.txt (the sections) and sass_N.csv (executed instructions and stall
# samples per SASS instruction, for attributing them to the kernel's phases).
set -uo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: bash $0 OUTDIR VARIANT SIZE [SIZE ...]" >&2
  exit 2
fi
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
VARIANT=$2
shift 2
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=ncu_common.sh
source "$REPO/benchmarks/ncu_common.sh"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
rc=0
for n in "$@"; do
  ncu_profile "$OUT/prof_$n" monarch_conv 1 1 \
    python3 "$REPO/benchmarks/fused_dev.py" --once "$VARIANT" --sizes "$n" || rc=1
  mv "$OUT/prof_$n.txt" "$OUT/ncu_$n.txt"
  mv "$OUT/prof_$n.csv" "$OUT/sass_$n.csv"
done
exit $rc
