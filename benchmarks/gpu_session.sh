#!/usr/bin/env bash
# One device call of a session: GPU tests (PYTEST_FILES), kernel-only A/B of a snapshot
# (.snapA) against the tree (AB_CASES, alternating, two rounds), then the bench (BENCH_ARGS).
#   bash benchmarks/gpu_session.sh OUTDIR
set -uo pipefail
OUT=$1
mkdir -p "$OUT"
export PYTHONPATH=$PWD MPLBACKEND=Agg XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv > "$OUT/device.txt" 2>&1
python3 - >> "$OUT/device.txt" <<'PY'
from cufftconv.sources import digest_of
print("digest", digest_of("."))
PY
if [[ -n "${PYTEST_FILES:-}" ]]; then
  read -r -a files <<< "$PYTEST_FILES"
  timeout "${PYTEST_TIMEOUT:-300}" python3 -m pytest -q -p no:cacheprovider "${files[@]}" ${PYTEST_K:+-k "$PYTEST_K"} > "$OUT/pytest.log" 2>&1
  echo "pytest exit $?" >> "$OUT/pytest.log"
fi
if [[ -n "${AB_CASES:-}" && -d .snapA ]]; then
  read -r -a cases <<< "$AB_CASES"
  ( cd benchmarks
    for r in 1 2; do
      echo "== round $r A (.snapA)"; timeout 150 python3 fused_ab.py ../.snapA "${cases[@]}"
      echo "== round $r B (tree)"; timeout 150 python3 fused_ab.py .. "${cases[@]}"
    done ) > "$OUT/ab.txt" 2>&1
fi
if [[ -n "${BENCH_ARGS:-}" ]]; then
  read -r -a bargs <<< "$BENCH_ARGS"
  timeout "${BENCH_TIMEOUT:-240}" python3 -m cufftconv bench "${bargs[@]}" --out "$OUT/bench" > "$OUT/bench.log" 2>&1
  echo "bench exit $?" >> "$OUT/bench.log"
fi
