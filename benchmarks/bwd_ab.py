"""Timing of ``fftconv_bwd`` (causal, fp16 u, fp32 k: the backward bench's workload) for A/B
runs across snapshots, like ``fused_ab.py`` for the forward kernel.

    python benchmarks/bwd_ab.py PATH_TO_SNAPSHOT [CASE ...]

A CASE is N/plain (u and k gradients) or N/gated (both gates, all four gradients); default
4096 and 16384, both. Each call goes through the per-call fast path (one warm-up call builds
it); 10 calls between two CUDA events, median of 15, ms scaled to B=64, H=768.
"""

from __future__ import annotations

import sys

from devtiming import bench  # (this folder: sys.path[0] when run as a script)

sys.path.insert(0, sys.argv[1])
import cupy as cp
import numpy as np

from cufftconv import fftconv_bwd
from cufftconv.dtypes import from_compute

REP = 10
CASES = ["4096/plain", "4096/gated", "16384/plain", "16384/gated"]


def main() -> None:
    out = []
    for case in sys.argv[2:] or CASES:
        n_s, mode = case.split("/")
        n = int(n_s)
        B, H = (64, 768) if n <= 8192 else (32, 768)
        L = n // 2
        rs = np.random.default_rng(n)
        u, dy, g1, g2 = (
            from_compute(cp.asarray(rs.standard_normal((B, H, L), dtype=np.float32)), "float16", cp)
            for _ in range(4)
        )
        k = cp.asarray((rs.standard_normal((H, L)) / np.sqrt(L)).astype(np.float32))
        pre, post = (g1, g2) if mode == "gated" else (None, None)

        def fn(dy=dy, u=u, k=k, pre=pre, post=post):
            for _ in range(REP):
                fftconv_bwd(dy, u, k, mode="causal", pregate=pre, postgate=post)

        ms = bench(fn, reps=15, warmup=3) / REP
        out.append(f"{case} {ms * 64 * 768 / (B * H):.4f}")
    print(sys.argv[1].rstrip("/").split("/")[-1], " | ".join(out), flush=True)


if __name__ == "__main__":
    main()
