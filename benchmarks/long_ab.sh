#!/usr/bin/env bash
# A/B of the long-sequence kernels: benchmarks/long_dev.py on snapshot trees and on this one,
# interleaved per size (same machine, same hour).
#
#   bash benchmarks/long_ab.sh OUTFILE SNAPDIR [SNAPDIR ...] -- [long_dev.py arguments...]
#
# Each SNAPDIR holds cufftconv/ and kernels/ of a baseline (git archive REV cufftconv kernels);
# this tree runs last. Sizes: AB_SIZES (default 65536 1048576 4194304).
set -uo pipefail
OUTF=$1
shift
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
roots=()
while [[ $# -gt 0 && $1 != "--" ]]; do
  roots+=("$(cd "$1" && pwd)")
  shift
done
[[ $# -gt 0 ]] && shift
roots+=("$REPO")
for n in ${AB_SIZES:-65536 1048576 4194304}; do
  for root in "${roots[@]}"; do
    echo "== $root N=$n" >> "$OUTF"
    PYTHONPATH="$root:$REPO/benchmarks" python3 "$REPO/benchmarks/long_dev.py" --sizes "$n" "$@" >> "$OUTF" 2>&1
  done
done
