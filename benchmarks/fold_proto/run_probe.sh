# One device call while developing the pair-folded FFT-256 kernel: its GPU tests, kernel-only
# A/B against .snapA (the Monarch kernel) and .snapC (another warp / buffer choice), and an
# Nsight Compute profile of the tree's circular launch.  OUT=dir bash benchmarks/fold_proto/run_probe.sh
set -uo pipefail
export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name --format=csv,noheader > "$OUT/device.txt"
timeout 300 python3 -m pytest -q -x -p no:cacheprovider tests/test_twiddle_fold_gpu.py -k "${PROBE_K:-256}" > "$OUT/pytest.log" 2>&1
echo "exit $?" >> "$OUT/pytest.log"
tail -3 "$OUT/pytest.log"
( cd benchmarks
  C=${PROBE_CASES:-"256/conv 256/causal 256/gated 256/cgated 256/conv/bfloat16"}
  for r in 1 2; do for s in .snapA .. .snapC .snapD; do
    [[ -d ../$s ]] && { echo "== $r $s"; timeout 100 python3 fused_ab.py "../$s" $C; }
  done; done ) > "$OUT/ab.txt" 2>&1
cat "$OUT/ab.txt"
if [[ -n "${PROBE_NCU:-}" ]]; then
  source benchmarks/ncu_common.sh
  ncu_profile "$OUT/ncu_256" pair_fold 1 1 python3 benchmarks/fused_dev.py --once conv --sizes 256
  grep -E "Duration|Issued Ipc|Throughput|L1/TEX Hit|Registers|Achieved Occupancy|Stall|Warp Cycles" "$OUT/ncu_256.txt" | head -40
fi
