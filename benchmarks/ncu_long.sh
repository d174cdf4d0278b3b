#!/usr/bin/env bash
# Nsight Compute profile of the long-sequence passes (kernels/long_conv.cu), per SASS instruction.
#
#   bash benchmarks/ncu_long.sh OUTDIR VARIANT N       (VARIANT: circular, gated, causal)
#
# One call of LongConv at FFT size N, fp16, B = 8 with H cut as the anchors file (the bench's
# batch); ncu profiles the second launch group's three passes (cols_fwd, rows, cols_inv) with
# benchmarks/ncu_common.sh's sections. OUTDIR receives ncu_long_N.txt (the
# sections) and sass_long_N.csv (executed instructions and stall samples per SASS instruction).
set -uo pipefail
if [[ $# -ne 3 ]]; then
  echo "usage: bash $0 OUTDIR VARIANT N" >&2
  exit 2
fi
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
VARIANT=$2
N=$3
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=ncu_common.sh
source "$REPO/benchmarks/ncu_common.sh"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
DRIVER=$(mktemp --suffix=.py)
cat > "$DRIVER" <<'PY'
import sys

import cupy as cp

from cufftconv import long as lc

n, variant = int(sys.argv[1]), sys.argv[2]
B = 8
H = max(1, 64 * 768 * 8192 // (B * n))
L = n // 2 if variant == "causal" else n
gated = variant == "gated"
conv = lc.LongConv(n, "float16", pregate=gated, postgate=gated, freq_mask=None)
u = cp.random.standard_normal((B, H, L), dtype=cp.float32).astype(cp.float16)
g = [cp.random.standard_normal((B, H, L), dtype=cp.float32).astype(cp.float16) if gated else None for _ in range(2)]
kf = conv.filter_spectrum(cp.random.standard_normal((H, L), dtype=cp.float32) / L**0.5)
y = cp.full((B, H, L), cp.nan, dtype=cp.float16)
conv(u, kf, y, L=L, out_offset=0, Lout=L, pregate=g[0], postgate=g[1], streams=1)
cp.cuda.Device().synchronize()
print(f"N={n} {variant} B={B} H={H} finite={bool(cp.isfinite(y).all())}")
PY
# launch-skip 3: the first launch group's three passes (JIT and cold caches)
ncu_profile "$OUT/prof_long_$N" long_ 3 3 python3 "$DRIVER" "$N" "$VARIANT"
rc=$?
mv "$OUT/prof_long_$N.txt" "$OUT/ncu_long_$N.txt"
mv "$OUT/prof_long_$N.csv" "$OUT/sass_long_$N.csv"
rm -f "$DRIVER"
exit $rc
