"""Two launches of the 4096 circular fp16 folded kernel at B=64, H=768 (for Nsight Compute):
dense, then ``freq_keep`` 1/F for each F given (default 4).

    python benchmarks/fold_proto/sparse_once.py [F ...]
"""

from __future__ import annotations

import sys

import cupy as cp
import numpy as np

from cufftconv import fused


def main() -> None:
    n, B, H = 4096, 64, 768
    rs = np.random.default_rng(0)
    u = cp.asarray(rs.standard_normal((B, H, n), dtype=np.float32).astype(np.float16))
    y = cp.empty_like(u)
    k = cp.asarray((rs.standard_normal((H, n)) / np.sqrt(n)).astype(np.float32))
    for f in [1] + [int(a) for a in sys.argv[1:] or ["4"]]:
        mask = None if f == 1 else tuple(r % f == 0 for r in range(16))
        conv = fused.FusedConv(n, "float16", pregate=False, postgate=False, freq_mask=mask)
        kf = conv.filter_spectrum(k)
        conv(u, kf, y, L=n, out_offset=0, Lout=n)
    cp.cuda.runtime.deviceSynchronize()


if __name__ == "__main__":
    main()
