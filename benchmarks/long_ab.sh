#!/usr/bin/env bash
# A/B of the long-sequence kernels: benchmarks/long_dev.py on a snapshot tree and on this one,
# interleaved per size in one process lifetime each (same machine, same hour).
#
#   bash benchmarks/long_ab.sh SNAPDIR OUTFILE [long_dev.py arguments...]
#
# SNAPDIR holds cufftconv/ and kernels/ of the baseline (git archive REV cufftconv kernels).
set -uo pipefail
SNAP=$1
OUTF=$2
shift 2
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for n in ${AB_SIZES:-65536 1048576 4194304}; do
  for side in A B; do
    root=$REPO
    [[ $side == A ]] && root=$(cd "$SNAP" && pwd)
    echo "== $side ($root) N=$n" >> "$OUTF"
    PYTHONPATH="$root:$REPO/benchmarks" python3 "$REPO/benchmarks/long_dev.py" --sizes "$n" "$@" >> "$OUTF" 2>&1
  done
done
