#!/usr/bin/env bash
# Device run for the folded backward: digest, GPU tests, same-run A/B against a snapshot
# (.snapA, carried), the backward bench.   OUT=... bash benchmarks/bwd_check.sh
# TESTS / K: pytest files and -k ("" skips); CASES: bwd_ab cases; BENCH_SIZES ("" skips).
set -uo pipefail
export PYTHONPATH=$PWD
python3 -c "from cufftconv.sources import digest_of; print('digest', digest_of('.'))" | tee $OUT/digest.txt
nvidia-smi --query-gpu=name --format=csv,noheader | tee -a $OUT/digest.txt
TESTS=${TESTS-tests/test_fused_bwd_gpu.py}
if [ -n "$TESTS" ]; then
  timeout ${TEST_T:-300} python3 -m pytest -q --maxfail=5 $TESTS -k "${K-folded}" > $OUT/tests.log 2>&1
  tail -15 $OUT/tests.log
fi
CASES=${CASES-512/plain 512/gated 1024/plain 1024/gated 2048/plain 2048/gated 4096/plain 4096/gated}
if [ -d .snapA ] && [ -n "$CASES" ]; then
  (cd benchmarks && for i in $(seq ${AB_ROUNDS:-1}); do
     timeout ${AB_T:-200} python3 bwd_ab.py $PWD/../.snapA $CASES
     timeout ${AB_T:-200} python3 bwd_ab.py $PWD/.. $CASES
   done) > $OUT/ab.log 2>&1
  cat $OUT/ab.log
fi
BENCH_SIZES=${BENCH_SIZES-512 1024 2048 4096}
if [ -n "$BENCH_SIZES" ]; then
  (cd benchmarks && timeout ${BENCH_T:-200} python3 bwd_bench.py --sizes $BENCH_SIZES --gated) > $OUT/bwd_bench.log 2>&1
  tail -25 $OUT/bwd_bench.log
fi
