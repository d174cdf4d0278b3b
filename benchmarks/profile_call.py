"""Where a planned call spends its host time: cProfile over many tiny calls.

    PYTHONPATH=. python3 benchmarks/profile_call.py [torch|cupy] [float16|float32]
"""

from __future__ import annotations

import cProfile
import pstats
import sys

import cufftconv


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "cupy"
    dtype = sys.argv[2] if len(sys.argv) > 2 else "float16"
    if kind == "torch":
        import torch

        u = torch.randn(1, 1, 256, device="cuda", dtype=getattr(torch, dtype))
        k = torch.randn(1, 256, device="cuda")
        sync = torch.cuda.synchronize
    else:
        import cupy as cp

        u = cp.random.standard_normal((1, 1, 256)).astype(dtype)
        k = cp.random.standard_normal((1, 256)).astype("float32")
        sync = cp.cuda.Device().synchronize
    plan = cufftconv.FFTConv(u.shape, k=k, dtype=dtype)
    for _ in range(100):
        plan(u)
    sync()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(2000):
        plan(u)
    sync()
    prof.disable()
    print(f"--- {kind} {dtype} route={plan.route}")
    pstats.Stats(prof).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
