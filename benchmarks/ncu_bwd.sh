#!/usr/bin/env bash
# Nsight Compute profile of the folded backward kernel (twiddle_fold_bwd), per SASS instruction.
#
#   bash benchmarks/ncu_bwd.sh OUTDIR CASE [CASE ...]     (CASE as benchmarks/bwd_ab.py: N/plain, N/gated)
#
# For each case: the third twiddle_fold_bwd launch of benchmarks/bwd_ab.py (fp16, causal, B=64
# H=768) with benchmarks/ncu_common.sh's sections. OUTDIR receives per case ncu_CASE.txt (the
# sections) and sass_CASE.csv (executed instructions and stall samples per SASS instruction).
set -uo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: bash $0 OUTDIR CASE [CASE ...]" >&2
  exit 2
fi
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
shift
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=ncu_common.sh
source "$REPO/benchmarks/ncu_common.sh"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
rc=0
for c in "$@"; do
  tag=${c//\//_}
  ncu_profile "$OUT/prof_$tag" twiddle_fold_bwd 2 1 \
    python3 "$REPO/benchmarks/bwd_ab.py" "$REPO" "$c" || rc=1
  mv "$OUT/prof_$tag.txt" "$OUT/ncu_$tag.txt"
  mv "$OUT/prof_$tag.csv" "$OUT/sass_$tag.csv"
done
exit $rc
