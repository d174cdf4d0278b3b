#!/usr/bin/env bash
# The one script to run on a lent GPU machine: the GPU tests, `cufftconv info` and `check`,
# then the benchmark. About 8 minutes on an H100.
#
#   bash benchmarks/gpu_check.sh OUTDIR [extra bench arguments...]
#
# Optional environment:
#   PYTEST_ARGS       extra pytest arguments, e.g. "-k causal" or "tests/test_gpu_cufft.py"
#   BENCH_ARGS        extra bench arguments, e.g. "--quick" or "--sizes 1024 4096"
#   GPU_CHECK_BUDGET  seconds for the whole script (default 450); the bench gets what is left
#   PYTEST_TIMEOUT    seconds for the GPU tests (default 240)
#   PYTHON            interpreter (default python3)
#   SANITIZE=1        also run benchmarks/sanitize.sh after check (its summary lands in
#                     OUTDIR/sanitize_summary.txt, the 8th file; the reports are dropped)
#
# OUTDIR receives 7 files (the device machine sends back at most 8):
#   gpu_check.log  pytest_gpu.log  pytest_gpu.xml  bench.log
#   bench/bench.json  bench/bench.png  bench/RESULTS_section.md
# Exit status: pytest's (nonzero when a GPU test failed, none was collected, or time ran out).
set -uo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: bash $0 OUTDIR [extra bench arguments...]" >&2
  exit 2
fi
mkdir -p "$1/bench" || exit 2
OUTDIR=$(cd "$1" && pwd)
shift
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET:-450}
PYTEST_TIMEOUT=${PYTEST_TIMEOUT:-240}
read -r -a PYTEST_EXTRA <<< "${PYTEST_ARGS:-}"
read -r -a BENCH_EXTRA <<< "${BENCH_ARGS:-}"

export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export MPLBACKEND=Agg
# JAX would otherwise take 75 % of GPU memory in any test process that touches it.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

START=$SECONDS
STAGE_T0=$SECONDS

stage() {
  STAGE_T0=$SECONDS
  echo
  echo "=== [$((SECONDS - START)) s] $*"
}

stage_done() {
  echo "--- $1: exit $2 after $((SECONDS - STAGE_T0)) s"
}

versions() {
  "$PY" - <<'EOF'
import importlib
import platform

print("python", platform.python_version())
for name in ("numpy", "scipy", "cupy", "torch", "jax", "pytest", "hypothesis", "matplotlib"):
    try:
        print(name, getattr(importlib.import_module(name), "__version__", "?"))
    except Exception as exc:  # noqa: BLE001
        print(f"{name}: not importable ({type(exc).__name__}: {exc})")
try:
    import cupy

    rt = cupy.cuda.runtime.runtimeGetVersion()
    drv = cupy.cuda.runtime.driverGetVersion()
    print(f"CUDA runtime {rt // 1000}.{rt % 1000 // 10}, driver {drv // 1000}.{drv % 1000 // 10}")
except Exception as exc:  # noqa: BLE001
    print(f"CUDA via CuPy: unavailable ({exc})")
try:
    import torch

    print("torch CUDA", torch.version.cuda, "available:", torch.cuda.is_available())
except Exception:  # noqa: BLE001
    pass
EOF
}

main() {
  stage "machine and versions"
  nvidia-smi -L || echo "nvidia-smi failed"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit \
    --format=csv,noheader || true
  versions
  git -C "$REPO" log -1 --oneline 2>/dev/null || echo "(no git history here)"

  stage "GPU tests: pytest -m gpu (full log in pytest_gpu.log)"
  timeout -k 10 "$PYTEST_TIMEOUT" "$PY" -m pytest -m gpu -q -rs -p no:cacheprovider \
    --junitxml="$OUTDIR/pytest_gpu.xml" ${PYTEST_EXTRA[@]+"${PYTEST_EXTRA[@]}"} \
    > "$OUTDIR/pytest_gpu.log" 2>&1
  local pytest_rc=$?
  tail -n 40 "$OUTDIR/pytest_gpu.log"
  [[ $pytest_rc == 124 || $pytest_rc == 137 ]] && echo "pytest ran out of its ${PYTEST_TIMEOUT} s"
  [[ $pytest_rc == 5 ]] && echo "no GPU test was collected"
  stage_done pytest "$pytest_rc"

  stage "python -m cufftconv info"
  timeout -k 10 120 "$PY" -m cufftconv info
  local info_rc=$?
  stage_done info "$info_rc"

  stage "python -m cufftconv check"
  timeout -k 10 180 "$PY" -m cufftconv check
  local check_rc=$?
  stage_done check "$check_rc"

  local san_rc=-
  if [[ "${SANITIZE:-0}" == 1 ]]; then
    stage "compute-sanitizer over every kernel family (benchmarks/sanitize.sh)"
    local san_dir
    san_dir=$(mktemp -d)
    bash "$REPO/benchmarks/sanitize.sh" "$san_dir" > "$san_dir/sanitize.log" 2>&1
    san_rc=$?
    cp "$san_dir/summary.txt" "$OUTDIR/sanitize_summary.txt" 2>/dev/null
    tail -n 3 "$san_dir/sanitize.log"
    rm -rf "$san_dir"
    stage_done sanitize "$san_rc"
  fi

  local left=$((BUDGET - (SECONDS - START)))
  local bench_s=$((left > 120 ? left - 30 : 90))
  stage "benchmark, new rows for ${bench_s} s (full log in bench.log)"
  timeout -k 10 $((bench_s + 120)) "$PY" -m cufftconv bench --out "$OUTDIR/bench" \
    --results-md "$OUTDIR/bench/RESULTS_section.md" --max-seconds "$bench_s" \
    ${BENCH_EXTRA[@]+"${BENCH_EXTRA[@]}"} "$@" > "$OUTDIR/bench.log" 2>&1
  local bench_rc=$?
  # The table, notes and file list (progress lines start with "[").
  grep -v '^\[' "$OUTDIR/bench.log" | tail -n 90
  stage_done bench "$bench_rc"

  echo
  echo "=== SUMMARY: pytest=$pytest_rc info=$info_rc check=$check_rc sanitize=$san_rc" \
    "bench=$bench_rc," \
    "total $((SECONDS - START)) s"
  (cd "$OUTDIR" && find . -type f | sort)
  return "$pytest_rc"
}

main "$@" 2>&1 | tee "$OUTDIR/gpu_check.log"
exit "${PIPESTATUS[0]}"
