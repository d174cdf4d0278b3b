#!/usr/bin/env bash
# NVIDIA compute-sanitizer over every kernel family of cufftconv (issue #7, hardening).
#
#   bash benchmarks/sanitize.sh OUTDIR
#
# Runs benchmarks/sanitize_driver.py once without the sanitizer (it checks every case against
# the float64 reference and fills CuPy's kernel disk cache, so that NVRTC does not compile
# under the sanitizer), then under each tool:
#   compute-sanitizer --tool T --print-limit 20 --target-processes all --error-exitcode 1
# (memcheck also with --padding where this compute-sanitizer has it, so that an overrun into a
# neighbouring allocation is caught). Each tool runs the driver once per group of families;
# a group that runs out of time leaves the groups before it complete. About 9 minutes on an
# H200 with the default limits.
#
# Optional environment:
#   SANITIZER               compute-sanitizer binary (default: PATH, then /usr/local/cuda*/bin)
#   SANITIZE_TOOLS          default "memcheck racecheck initcheck synccheck"; "leakcheck" adds
#                           memcheck --leak-check full (CuPy and cuFFT keep caches until exit, so
#                           expect reports there; it is not in the default list)
#   SANITIZE_GROUPS         driver runs per tool, families comma-separated
#                           (default "fused,cufft,bwd,folded,partial long": the long family alone, last)
#   SANITIZE_TIMEOUT_PLAIN      seconds for the plain run (default 90)
#   SANITIZE_TIMEOUT_MEMCHECK   seconds for all groups of memcheck (default 100)
#   SANITIZE_TIMEOUT_RACECHECK  (default 160)   SANITIZE_TIMEOUT_INITCHECK (default 110)
#   SANITIZE_TIMEOUT_SYNCCHECK  (default 80)    SANITIZE_TIMEOUT_LEAKCHECK (default 100)
#   PYTHON                  interpreter (default python3)
#
# OUTDIR receives plain.txt, one report per tool (memcheck.txt, racecheck.txt, ...) and
# summary.txt (per tool and group: exit status, time, the sanitizer's ERROR SUMMARY, the
# driver's verdict, and the kernels named in errors, ours told apart from CuPy / cuFFT).
# The last line printed is the verdict. Exit status: 0 PASS, 1 FAIL (a sanitizer error or a
# wrong result), 3 INCOMPLETE (no sanitizer, or a run out of time with no error found).
set -uo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: bash $0 OUTDIR" >&2
  exit 2
fi
mkdir -p "$1" || exit 2
OUTDIR=$(cd "$1" && pwd)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
DRIVER="$REPO/benchmarks/sanitize_driver.py"
read -r -a TOOLS <<< "${SANITIZE_TOOLS:-memcheck racecheck initcheck synccheck}"
read -r -a GROUPS_ <<< "${SANITIZE_GROUPS:-fused,cufft,bwd,folded,partial long}"

export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# Exact allocations for memcheck: PyTorch's caching allocator off (the driver turns CuPy's
# pool off itself).
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false

find_sanitizer() {
  if [[ -n "${SANITIZER:-}" ]]; then echo "$SANITIZER"; return; fi
  command -v compute-sanitizer && return
  local c
  for c in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda-*/bin/compute-sanitizer \
           /opt/nvidia/*/compute-sanitizer/compute-sanitizer; do
    [[ -x $c ]] && { echo "$c"; return; }
  done
}

timeout_for() {  # SANITIZE_TIMEOUT_<TOOL> or the default
  local var="SANITIZE_TIMEOUT_${1^^}"
  echo "${!var:-$2}"
}

SAN=$(find_sanitizer)
START=$SECONDS
: > "$OUTDIR/runs.tsv"  # tool, group, exit, seconds, limit: read by the summary

echo "=== sanitize: tools ${TOOLS[*]}; groups ${GROUPS_[*]}; sanitizer ${SAN:-NOT FOUND}"
nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not available"

# 1. The plain run: correctness without the sanitizer, and the compile cache made warm.
LIMIT=$(timeout_for plain 90)
T0=$SECONDS
timeout -k 10 "$LIMIT" "$PY" "$DRIVER" --families ${GROUPS_[@]//,/ } > "$OUTDIR/plain.txt" 2>&1
RC=$?
printf 'plain\t%s\t%s\t%s\t%s\n' all "$RC" "$((SECONDS - T0))" "$LIMIT" \
  >> "$OUTDIR/runs.tsv"
echo "--- plain run: exit $RC after $((SECONDS - T0)) s: $(tail -n 1 "$OUTDIR/plain.txt")"

# 2. Each tool, each group of families, within the tool's time limit.
if [[ -n "$SAN" ]]; then
  "$SAN" --version > "$OUTDIR/sanitizer_version.txt" 2>&1
  HAS_PADDING=0
  "$SAN" --help 2>&1 | grep -q -- '--padding' && HAS_PADDING=1
  for TOOL in "${TOOLS[@]}"; do
    case $TOOL in
      memcheck)  ARGS=(--tool memcheck); DEF=100
                 [[ $HAS_PADDING == 1 ]] && ARGS+=(--padding 256) ;;
      leakcheck) ARGS=(--tool memcheck --leak-check full); DEF=100 ;;
      racecheck) ARGS=(--tool racecheck); DEF=160 ;;
      initcheck) ARGS=(--tool initcheck); DEF=110 ;;
      synccheck) ARGS=(--tool synccheck); DEF=80 ;;
      *) echo "unknown tool $TOOL (skipped)"; continue ;;
    esac
    BUDGET=$(timeout_for "$TOOL" "$DEF")
    TOOL_T0=$SECONDS
    REPORT="$OUTDIR/$TOOL.txt"
    : > "$REPORT"
    for GROUP in "${GROUPS_[@]}"; do
      LEFT=$((BUDGET - (SECONDS - TOOL_T0)))
      ((LEFT < 10)) && LEFT=10  # a late group still gets a chance to report a skip
      echo "##### group $GROUP (tool $TOOL, limit $LEFT s)" >> "$REPORT"
      T0=$SECONDS
      timeout -k 15 "$LEFT" "$SAN" "${ARGS[@]}" --print-limit 20 --target-processes all \
        --error-exitcode 1 "$PY" "$DRIVER" --families ${GROUP//,/ } >> "$REPORT" 2>&1
      RC=$?
      echo "##### exit $RC after $((SECONDS - T0)) s" >> "$REPORT"
      printf '%s\t%s\t%s\t%s\t%s\n' "$TOOL" "$GROUP" "$RC" "$((SECONDS - T0))" "$LEFT" \
        >> "$OUTDIR/runs.tsv"
      echo "--- $TOOL [$GROUP]: exit $RC after $((SECONDS - T0)) s:" \
        "$(grep -h 'ERROR SUMMARY' "$REPORT" | tail -n 1)"
    done
  done
fi

# 3. The summary (and the verdict, its last line) from the reports.
"$PY" "$DRIVER" --summarize "$OUTDIR" > "$OUTDIR/summary.txt" 2>&1
RC=$?
echo "=== [$((SECONDS - START)) s] summary ($OUTDIR/summary.txt):"
cat "$OUTDIR/summary.txt"
exit "$RC"
