#!/usr/bin/env bash
# Device run for the interleaved FFT 512 / 1024 / 2048 kernels: digest, bench rows, GPU tests.
#   OUT=... bash benchmarks/il_check.sh
set -uo pipefail
export PYTHONPATH=$PWD
python3 -c "from cufftconv.sources import digest_of; print('digest', digest_of('.'))" | tee $OUT/digest.txt
timeout ${BENCH_T:-150} python3 -m cufftconv bench --sizes ${SIZES:-512 1024 2048 4096} --reps 30 --warmup 5 --out $OUT/bench > $OUT/bench.log 2>&1
tail -40 $OUT/bench.log
timeout ${TEST_T:-360} python3 -m pytest -q --maxfail=5 ${TESTS:-tests/test_twiddle_fold_gpu.py} -k "${K:-512 or 1024 or 2048}" > $OUT/tests.log 2>&1
tail -30 $OUT/tests.log
