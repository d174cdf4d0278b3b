"""Host time per planned call (issue: <= 20 us), on a tiny input so the GPU is never the limit.

    PYTHONPATH=. python3 benchmarks/host_overhead.py [--calls 1000]

Times N back-to-back ``plan(u)`` calls with a wall clock and one synchronisation at the end,
for torch and CuPy operands, fp16 (fused row) and fp32 (cuFFT row). Also times the bare kernel
launch path underneath, so the Python layer's own share is visible.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cufftconv


def _per_call_us(plan, u, sync, calls: int, repeats: int = 5, **kw) -> float:
    def fn():
        return plan(u, **kw)

    for _ in range(50):
        fn()
    sync()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        runs.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1000)
    args = ap.parse_args()
    import cupy as cp

    rows = []
    try:
        import torch
    except ImportError:
        torch = None
    for dtype in ("float16", "float32"):
        if torch is not None:
            u = torch.randn(1, 1, 256, device="cuda", dtype=getattr(torch, dtype))
            k = torch.randn(1, 256, device="cuda")
            plan = cufftconv.FFTConv(u.shape, k=k, dtype=dtype)
            rows.append(("torch", dtype, plan.route,
                         _per_call_us(plan, u, torch.cuda.synchronize, args.calls)))
        u = cp.random.standard_normal((1, 1, 256)).astype(dtype)
        k = cp.random.standard_normal((1, 256)).astype("float32")
        plan = cufftconv.FFTConv(u.shape, k=k, dtype=dtype)
        sync = cp.cuda.get_current_stream().synchronize
        rows.append(("cupy", dtype, plan.route, _per_call_us(plan, u, sync, args.calls)))
        out = cp.empty_like(u)
        rows.append(("cupy out=", dtype, plan.route,
                     _per_call_us(plan, u, sync, args.calls, out=out)))
    print(f"{'arrays':<10} {'dtype':<8} {'route':<14} {'us/call':>8}")
    for arrays, dtype, route, us in rows:
        print(f"{arrays:<10} {dtype:<8} {route:<14} {us:8.1f}")


if __name__ == "__main__":
    main()
