"""Host time per planned call (issue: <= 20 us), on a tiny input so the GPU is never the limit.

    PYTHONPATH=. python3 benchmarks/host_overhead.py [--calls 1000] [--bwd [--profile]]

Times N back-to-back ``plan(u)`` calls with a wall clock and one synchronisation at the end,
for torch and CuPy operands, fp16 (fused row) and fp32 (cuFFT row). Also times the bare kernel
launch path underneath, so the Python layer's own share is visible. ``--bwd`` times
``fftconv_bwd`` calls the same way (its per-call fast path after the first call), plain and
gated; ``--autograd`` times training steps through ``cufftconv.torch.fftconv``; ``--profile``
adds the host functions that take most of one call (step).
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


def bwd_rows(calls: int, profile: bool) -> None:
    """Host time per ``fftconv_bwd`` call (tiny operands: B = 2, H = 4, L = 128, FFT 256)."""
    import cProfile
    import pstats

    import cupy as cp
    import torch

    from cufftconv import grad

    print(f"{'arrays':<8} {'gates':<6} {'us/call':>8}")
    for kind in ("torch", "cupy"):
        for gated in (False, True):
            if kind == "torch":
                x = [torch.randn(2, 4, 128, device="cuda").half() for _ in range(4)]
                k = torch.randn(4, 128, device="cuda")
                sync = torch.cuda.synchronize
            else:
                x = [cp.random.standard_normal((2, 4, 128)).astype("float16") for _ in range(4)]
                k = cp.random.standard_normal((4, 128)).astype("float32")
                sync = cp.cuda.get_current_stream().synchronize
            u, dy, pre, post = x
            pre, post = (pre, post) if gated else (None, None)

            def call(u=u, dy=dy, k=k, pre=pre, post=post):
                return grad._fftconv_bwd(dy, u, k, mode="causal", pregate=pre, postgate=post)

            us = _per_call_us(lambda _u, call=call: call(), None, sync, calls)
            print(f"{kind:<8} {'gated' if gated else 'plain':<6} {us:8.1f}", flush=True)
            if profile and kind == "torch":
                prof = cProfile.Profile()
                prof.enable()
                for _ in range(200):
                    call()
                prof.disable()
                sync()
                st = pstats.Stats(prof)
                rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:22]
                for (fn, line, name), (_cc, nc, tt, ct, _) in rows:
                    print(f"    {tt / 200 * 1e6:7.1f} us self {ct / 200 * 1e6:7.1f} us cum "
                          f"{nc // 200:3d}x  {fn.split('/')[-1]}:{line} {name}")


def autograd_rows(calls: int, profile: bool) -> None:
    """Host time per training step through ``cufftconv.torch.fftconv`` (forward and
    ``backward()``, tiny operands as ``bwd_rows``), against the bare ``fftconv`` +
    ``fftconv_bwd`` calls underneath."""
    print(f"{'path':<22} {'gates':<6} {'us/step':>8}")
    for gated in (False, True):
        _autograd_case(gated, calls, profile)


def _autograd_case(gated: bool, calls: int, profile: bool) -> None:
    import cProfile
    import pstats

    import torch

    import cufftconv.torch as ct
    from cufftconv import grad

    x = [torch.randn(2, 4, 128, device="cuda").half().requires_grad_() for _ in range(3)]
    k = torch.randn(4, 128, device="cuda").requires_grad_()
    dy = torch.randn(2, 4, 128, device="cuda").half()
    u, pre, post = x[0], (x[1] if gated else None), (x[2] if gated else None)
    d = [None if a is None else a.detach() for a in (u, k, pre, post)]

    def step():
        ct.fftconv(u, k, pregate=pre, postgate=post).backward(dy)

    def fwd_only():
        ct.fftconv(u, k, pregate=pre, postgate=post)

    def bare():
        cufftconv.fftconv(d[0], d[1], pregate=d[2], postgate=d[3])
        grad._fftconv_bwd(dy, d[0], d[1], mode="causal", pregate=d[2], postgate=d[3])

    def bare_fwd():
        cufftconv.fftconv(d[0], d[1], pregate=d[2], postgate=d[3])

    def step_one_thread():  # backward in this thread (cProfile sees it)
        with torch.autograd.set_multithreading_enabled(False):
            step()

    class Twice(torch.autograd.Function):  # torch ops only: the engine's own cost
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    class BareBwd(torch.autograd.Function):  # fftconv_bwd itself in the engine's thread
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            grad._fftconv_bwd(dy, d[0], d[1], mode="causal", pregate=d[2], postgate=d[3])
            return g

    def torch_only():
        Twice.apply(u).backward(dy)

    def bare_in_engine():
        BareBwd.apply(u).backward(dy)

    def bare_in_engine_one_thread():
        with torch.autograd.set_multithreading_enabled(False):
            bare_in_engine()

    def torch_only_one_thread():
        with torch.autograd.set_multithreading_enabled(False):
            torch_only()

    for name, fn in (("autograd.Function x*2", torch_only), ("  same, 1 thread", torch_only_one_thread),
                     ("fftconv_bwd in engine", bare_in_engine),
                     ("  same, 1 thread", bare_in_engine_one_thread),
                     ("cufftconv.torch step", step), ("  same, 1 thread", step_one_thread),
                     ("  its forward alone", fwd_only), ("fftconv + fftconv_bwd", bare),
                     ("  fftconv alone", bare_fwd)):
        us = _per_call_us(lambda _u, fn=fn: fn(), None, torch.cuda.synchronize, calls)
        print(f"{name:<22} {'gated' if gated else 'plain':<6} {us:8.1f}", flush=True)
    if profile:
        # self time per call of the 25 costliest functions: the whole step, the bare
        # backward inside the engine (one thread, so cProfile sees it) and outside it
        for title, fn in (("step, 1 thread", step_one_thread),
                          ("fftconv_bwd in engine, 1 thread", bare_in_engine_one_thread),
                          ("fftconv + fftconv_bwd", bare)):
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(200):
                fn()
            prof.disable()
            torch.cuda.synchronize()
            st = pstats.Stats(prof)
            print(f"  profile: {title} ({'gated' if gated else 'plain'}): "
                  f"{st.total_tt / 200 * 1e6:.1f} us per call under cProfile")
            rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:25]
            for (fn_, line, name), (_cc, nc, tt, ct_, _) in rows:
                print(f"    {tt / 200 * 1e6:7.1f} us self {ct_ / 200 * 1e6:7.1f} us cum "
                      f"{nc // 200:3d}x  {fn_.split('/')[-1]}:{line} {name}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--bwd", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--autograd", action="store_true")
    args = ap.parse_args()
    import cupy as cp

    if args.autograd:
        autograd_rows(args.calls, args.profile)
        return

    if args.bwd:
        bwd_rows(args.calls, args.profile)
        return

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
