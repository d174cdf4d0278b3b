"""Development timing of partial convolutions (Lk << L): blocked path vs our dense path.

    python benchmarks/partial_dev.py [--cases 1048576:4096 4194304:8192] [--factors 2 4 8]

Issue #6's figure: at L = 1M, Lk = 4096 (causal, fp16) the blocked path must be >= 5x faster
than our own dense path for the same L. B = 8 with H cut as the dense FFT size grows (the
anchors' scaling), times scaled to B=64, H=768. ``--factors`` tries block sizes
n = next_pow2(f * Lk); the row is switched on for the run.
"""

from __future__ import annotations

import argparse

import cupy as cp
import numpy as np
from devtiming import bench

import cufftconv
from cufftconv import partial
from cufftconv.backends import partial as partial_row


def run_case(L: int, Lk: int, factors: list[int]) -> None:
    dense_n = 1 << (2 * L - 2).bit_length()
    B = 8
    H = max(1, 64 * 768 * 8192 // (B * dense_n))
    scale = 64 * 768 / (B * H)
    rng = np.random.default_rng(0)
    u = cp.asarray(rng.standard_normal((B, H, L)).astype(np.float16))
    k = cp.asarray((rng.standard_normal((H, Lk)) / np.sqrt(Lk)).astype(np.float32))
    y = cp.empty_like(u)
    partial_row.ENABLED = False
    dense = cufftconv.FFTConv(u.shape, k=k, dtype="float16", mode="causal")
    t_dense = bench(lambda: dense(u, out=y)) * scale
    ref = y[0, 0].get().astype(np.float64)
    print(f"L={L} Lk={Lk} B={B} H={H}: dense ({dense.route}) {t_dense:9.2f} ms (scaled)")
    partial_row.ENABLED = True
    for f in factors:
        partial.BLOCK_FACTOR = f
        cufftconv.clear_plan_cache()
        plan = cufftconv.FFTConv(u.shape, k=k, dtype="float16", mode="causal")
        assert plan.route == "partial-blocked", plan.route
        t = bench(lambda plan=plan: plan(u, out=y)) * scale
        err = np.linalg.norm(y[0, 0].get() - ref) / np.linalg.norm(ref)
        n = partial.block_fft_size(Lk)
        print(
            f"   blocks n={n:6d} hop={partial.hop_size(n, Lk):6d}: {t:9.2f} ms  "
            f"x{t_dense / t:5.2f} vs dense  (diff to dense {err:.1e})",
            flush=True,
        )
    partial.BLOCK_FACTOR = 4


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", nargs="*", default=["1048576:4096", "4194304:8192"])
    ap.add_argument("--factors", type=int, nargs="*", default=[2, 4, 8])
    args = ap.parse_args()
    for case in args.cases:
        L, Lk = (int(v) for v in case.split(":"))
        run_case(L, Lk, args.factors)
        cp.get_default_memory_pool().free_all_blocks()


if __name__ == "__main__":
    main()
