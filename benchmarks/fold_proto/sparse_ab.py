"""Kernel-only A/B of the frequency-sparse fused kernel across snapshots (the SPARSE
twiddle-folded variant at 4096 / 8192 where the call fits it).

    python benchmarks/fold_proto/sparse_ab.py PATH_TO_SNAPSHOT [N ...]

PATH_TO_SNAPSHOT holds ``cufftconv/`` and ``kernels/`` of one commit. For each N, circular and
causal fp16 at B=64, H=768: the dense launch and ``freq_keep`` 1/2, 1/4, 1/8, 1/16 (f % 2**j ==
0) through ``FusedConv.launcher``, 10 launches between two CUDA events, median of 15; run
alternating snapshots in one process each, two rounds.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from devtiming import bench

sys.path.insert(0, sys.argv[1])
import cupy as cp
import numpy as np

from cufftconv import fused

REP = 10


def main() -> None:
    sizes = [int(a) for a in sys.argv[2:]] or [4096, 8192]
    for n in sizes:
        for mode in ("conv", "causal"):
            B, H = 64, 768
            L = n // 2 if mode == "causal" else n
            rs = np.random.default_rng(n)
            u = cp.asarray(rs.standard_normal((B, H, L), dtype=np.float32).astype(np.float16))
            y = cp.empty_like(u)
            k = cp.asarray((rs.standard_normal((H, L)) / np.sqrt(L)).astype(np.float32))
            row = []
            for f in (1, 2, 4, 8, 16):
                mask = None if f == 1 else tuple(r % f == 0 for r in range(16))
                conv = fused.FusedConv(n, "float16", pregate=False, postgate=False, freq_mask=mask)
                kf = conv.filter_spectrum(k)
                launch = conv.launcher(B, H, L, 0, L)
                args = (
                    u.data.ptr,
                    u.data.ptr,
                    kf,
                    y.data.ptr,
                    y.data.ptr,
                    cp.cuda.get_current_stream(),
                )

                def fn(launch=launch, args=args):
                    for _ in range(REP):
                        launch(*args)

                row.append(bench(fn, reps=15, warmup=3) / REP)
            cells = " ".join(f"1/{f}:{ms:.4f}" for f, ms in zip((1, 2, 4, 8, 16), row))
            print(f"{n} {mode}: {cells}  (75%: {row[0] / row[2]:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
