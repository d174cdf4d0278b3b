# Bench rows (L2 flushed before each call, as `python -m cufftconv bench`) of the tree and of
# the snapshots .snapA / .snapC / .snapD that exist, alternating, two rounds.
#   OUT=dir BENCH_AB_ARGS="--sizes 256" bash benchmarks/fold_proto/bench_ab.sh
set -uo pipefail
export MPLBACKEND=Agg
R=$PWD
for r in 1 2; do
  for s in .snapA . .snapC .snapD; do
    [[ -d $R/$s ]] || continue
    echo "== round $r ${s}"
    (cd "$R/$s" && timeout 150 python3 -m cufftconv bench ${BENCH_AB_ARGS:---sizes 256} --reps 30 --warmup 5 \
      --out "$OUT/bench_${r}_${s#.}" 2>&1 | grep -E '^ *[0-9]+ ')
  done
done
