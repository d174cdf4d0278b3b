#!/usr/bin/env bash
# Device run of the folded-twiddle prototype: correctness + timing, then an Nsight Compute
# profile of one launch of each kernel (dispatched fused kernel and the prototype).
#   bash benchmarks/fold_proto/run.sh OUTDIR [PAIRS...]
set -uo pipefail
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
shift
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
PAIRS=("${@:-2}")
python3 "$REPO/benchmarks/fold_proto/fold_proto.py" --pairs "${PAIRS[@]}" 2>&1 | tee "$OUT/fold.txt"
if [[ -z "${NO_NCU:-}" ]]; then
  # shellcheck source=../ncu_common.sh
  source "$REPO/benchmarks/ncu_common.sh"
  ncu_profile "$OUT/ncu" "fold4k|monarch_conv" 0 $((1 + ${#PAIRS[@]})) \
    python3 "$REPO/benchmarks/fold_proto/fold_proto.py" --profile --pairs "${PAIRS[@]}"
  grep -E "^  [a-z_]+.*\(|Duration|Executed Ipc A|Issue Slots Busy|Registers Per|Achieved Occupancy|Theoretical Occ|Executed Instructions  |No Eligible|Bank|Warp Cycles Per Issued|L1/TEX Hit|Shared Memory" "$OUT/ncu.txt" | head -80
fi
