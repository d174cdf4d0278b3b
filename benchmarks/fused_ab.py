"""Kernel-only timing of the dense fused forward, for A/B runs across snapshots.

    python benchmarks/fused_ab.py PATH_TO_SNAPSHOT [CASE ...]

PATH_TO_SNAPSHOT holds ``cufftconv/`` and ``kernels/`` of one commit (``git archive REV
cufftconv kernels | tar -x -C DIR``); run once per snapshot, alternating them, two rounds.
Each size runs the plan's pre-resolved launch (``FusedConv.launcher``) 10 times between two CUDA
events (no host gaps), median of 15, ms scaled to B=64, H=768. A CASE is N/MODE[/DTYPE] with MODE
conv, causal, gated (both gates, circular) or cgated (both gates, causal) and DTYPE float16 (default) or bfloat16; the
default cases are fp16 conv and causal at 1K, 4K and 16K.
"""

from __future__ import annotations

import sys

from devtiming import bench  # (this folder: sys.path[0] when run as a script)

sys.path.insert(0, sys.argv[1])
import cupy as cp
import numpy as np

from cufftconv import fused
from cufftconv.dtypes import from_compute

REP = 10
CASES = ["1024/conv", "4096/conv", "4096/causal", "16384/conv", "16384/causal"]


def _time(launch, args: tuple) -> float:
    """Median ms of one launch, REP launches back to back between two events."""

    def fn():
        for _ in range(REP):
            launch(*args)

    return bench(fn, reps=15, warmup=3) / REP


def main() -> None:
    out = []
    for case in sys.argv[2:] or CASES:
        n_s, mode, *dt = case.split("/")
        n, dtype = int(n_s), (dt[0] if dt else "float16")
        gated = mode in ("gated", "cgated")
        B, H = (64, 768) if n <= 8192 else (32, 768)
        L = n // 2 if mode in ("causal", "cgated") else n
        rs = np.random.default_rng(n)
        u, g1, g2 = (
            from_compute(cp.asarray(rs.standard_normal((B, H, L), dtype=np.float32)), dtype, cp)
            for _ in range(3)
        )
        y = cp.empty_like(u)
        k = cp.asarray((rs.standard_normal((H, L)) / np.sqrt(L)).astype(np.float32))
        conv = fused.FusedConv(n, dtype, pregate=gated, postgate=gated)
        kf = conv.filter_spectrum(k)
        launch = conv.launcher(B, H, L, 0, L)
        up, yp = u.data.ptr, y.data.ptr
        pre, post = (g1.data.ptr, g2.data.ptr) if gated else (up, yp)
        ms = _time(launch, (up, pre, kf, yp, post, cp.cuda.get_current_stream()))
        out.append(f"{case} {ms * 64 * 768 / (B * H):.4f}")
    print(sys.argv[1].rstrip("/").split("/")[-1], " | ".join(out), flush=True)


if __name__ == "__main__":
    main()
