"""Where a backward call's time goes: device time per kernel (CUPTI, through torch.profiler)
against the call's wall time (development aid for the backward issue).

    python benchmarks/bwd_parts.py [--sizes 256 1024] [--gated] [--cprofile]

The bwd_bench workload (causal, L = N/2, fp16, B*H scaled as in the anchors). Prints, per
case, the median wall time of one ``fftconv_bwd`` call (synchronised), the summed device
time of its kernels, and the kernels sorted by device time; ms are per call, not scaled.
``--cprofile`` adds the host functions that take the most time per call (cProfile, tottime).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from cufftconv import bench as cb
from cufftconv import grad


def run(n: int, gated: bool, reps: int = 20, host: bool = False) -> None:
    B, H = cb.scaled_batch(64, 768, n)
    L = n // 2
    rng = np.random.default_rng(n)
    dev = "cuda"
    u = torch.from_numpy(rng.standard_normal((B, H, L)).astype(np.float16)).to(dev)
    dy = torch.from_numpy(rng.standard_normal((B, H, L)).astype(np.float16)).to(dev)
    k = torch.from_numpy((rng.standard_normal((H, L)) / np.sqrt(L)).astype(np.float32)).to(dev)
    pre = torch.randn(B, H, L, device=dev).half() if gated else None
    post = torch.randn(B, H, L, device=dev).half() if gated else None

    def call():
        return grad._fftconv_bwd(dy, u, k, mode="causal", pregate=pre, postgate=post)

    for _ in range(3):
        call()
    torch.cuda.synchronize()
    walls = []
    for _ in range(reps):
        t0 = time.perf_counter()
        call()
        torch.cuda.synchronize()
        walls.append(time.perf_counter() - t0)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            call()
        torch.cuda.synchronize()
    rows = [(e.key, e.device_time_total / reps / 1e3, e.count // reps)
            for e in prof.key_averages() if e.device_time_total > 0]
    rows.sort(key=lambda r: -r[1])
    dev_ms = sum(r[1] for r in rows)
    print(f"\n== N={n} {'gated' if gated else 'plain'} B={B} H={H}: wall {np.median(walls) * 1e3:.3f} ms,"
          f" device {dev_ms:.3f} ms", flush=True)
    for key, ms, cnt in rows[:12]:
        print(f"  {ms:8.4f} ms x{cnt:<3d} {key[:110]}")
    if host:
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(reps):
            call()
        torch.cuda.synchronize()
        pr.disable()
        st = pstats.Stats(pr)
        top = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:25]  # by tottime
        print("  host, per call: tottime ms / cumtime ms / calls  function")
        for (f, line, fn), (_, nc, tt, ct, _) in top:
            print(f"  {tt / reps * 1e3:7.3f} {ct / reps * 1e3:7.3f} {nc // reps:4d}  "
                  f"{f.split('/')[-1]}:{line} {fn}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[256, 1024, 4096])
    ap.add_argument("--gated", action="store_true")
    ap.add_argument("--cprofile", action="store_true")
    args = ap.parse_args()
    for n in args.sizes:
        run(n, False, host=args.cprofile)
        if args.gated:
            run(n, True, host=args.cprofile)


if __name__ == "__main__":
    main()
