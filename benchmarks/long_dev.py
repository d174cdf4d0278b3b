"""Development timing of the long-sequence path against PyTorch's rfft conv, side by side.

    python benchmarks/long_dev.py [--sizes 65536 1048576] [--configs 0x1 16x3] [--breakdown]

Workloads as the anchors file: B = 8, H cut so that B*H*N = 64*768*8192, times scaled to
B=64, H=768. A chunk of 0 MB means "all pairs in one launch group". Prints one line per
(size, variant, chunk) with ms, efficiency against the HBM floor and speedup over PyTorch.
"""

from __future__ import annotations

import argparse
import time

import cupy as cp
import numpy as np
import torch
from devtiming import bench

from cufftconv import freqmask
from cufftconv import long as lc


def copy_bandwidth() -> float:
    x = cp.empty(1 << 29, dtype=cp.uint8)
    y = cp.empty_like(x)
    ms = bench(lambda: y.__setitem__(Ellipsis, x))
    return 2 * x.nbytes / (ms * 1e-3)


def host_ms(fn, reps: int = 5) -> float:
    """Median host time of issuing ``fn`` (no synchronisation inside the timed region)."""
    times = []
    for _ in range(reps):
        cp.cuda.get_current_stream().synchronize()
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    cp.cuda.get_current_stream().synchronize()
    return sorted(times)[len(times) // 2]


def run_case(
    n: int,
    variant: str,
    bw: float,
    configs: list[tuple[int, int]],
    breakdown: bool,
    keep: float = 1.0,
) -> None:
    B = 8
    H = max(1, 64 * 768 * 8192 // (B * n))
    scale = 64 * 768 / (B * H)
    L = n // 2 if variant == "causal" else n
    gated = variant == "gated"
    mask = freqmask.resolve(keep, None)
    conv = lc.LongConv(n, "float16", pregate=gated, postgate=gated, freq_mask=mask)
    u = cp.random.standard_normal((B, H, L), dtype=cp.float32).astype(cp.float16)
    k = cp.random.standard_normal((H, L), dtype=cp.float32) / np.sqrt(L)
    pre = (
        cp.random.standard_normal((B, H, L), dtype=cp.float32).astype(cp.float16) if gated else None
    )
    post = (
        cp.random.standard_normal((B, H, L), dtype=cp.float32).astype(cp.float16) if gated else None
    )
    kf = conv.filter_spectrum(k)
    y = cp.full((B, H, L), cp.nan, dtype=cp.float16)
    floor_ms = (4 if gated else 2) * B * H * L * 2 / bw * 1e3 * scale
    tu, tk = torch.from_dlpack(u), torch.from_dlpack(k)
    tpre = torch.from_dlpack(pre) if gated else None
    tpost = torch.from_dlpack(post) if gated else None

    def torch_run():
        x = tu.float() if tpre is None else (tu * tpre).float()
        r = torch.fft.irfft(torch.fft.rfft(x, n=n) * torch.fft.rfft(tk, n=n), n=n)[..., :L]
        return (r if tpost is None else r * tpost).half()

    torch.cuda.synchronize()
    t_torch = bench(torch_run, reps=3, warmup=1) * scale
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    torch_run()
    torch_peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    torch.cuda.empty_cache()
    # accuracy on one pair against float64
    conv(u, kf, y, L=L, out_offset=0, Lout=L, pregate=pre, postgate=post)
    x64 = u[0, 0].get().astype(np.float64)
    if gated:
        x64 = x64 * pre[0, 0].get().astype(np.float64)
    m = 1.0 if mask is None else freqmask.spectrum_mask(mask, n)[: n // 2 + 1]
    ref = np.fft.irfft(
        np.fft.rfft(x64, n=n) * np.fft.rfft(k[0].get().astype(np.float64), n=n) * m, n=n
    )[:L]
    if gated:
        ref = ref * post[0, 0].get().astype(np.float64)
    err = np.linalg.norm(y[0, 0].get().astype(np.float64) - ref) / np.linalg.norm(ref)
    kw = {"L": L, "out_offset": 0, "Lout": L, "pregate": pre, "postgate": post}
    for mb, lanes in configs:
        cb = (mb << 20) if mb else 1 << 60
        call = lambda cb=cb, lanes=lanes: conv(u, kf, y, chunk_bytes=cb, streams=lanes, **kw)
        t = bench(call)
        th = host_ms(call)
        t *= scale
        ws = conv.chunk_pairs((B + 1) // 2 * H, cb) * n * 8 * lanes / 2**20
        print(
            f"N={n:>8} {variant:9s} keep={keep:<6} B={B} H={H:4d} chunk={mb:4d}MB x{lanes}  "
            f"ours {t:9.2f} ms (host {th:6.2f} ms unscaled)  "
            f"torch {t_torch:9.2f} ms  x{t_torch / t:5.2f}  floor {floor_ms:7.2f}  "
            f"eff {floor_ms / t:5.3f}  err {err:.1e}  torch peak {torch_peak:.0f} MB  ws {ws:.0f} MB",
            flush=True,
        )
    if breakdown:
        parts = [
            bench(lambda p=p: conv(u, kf, y, chunk_bytes=1 << 60, only_pass=p, **kw)) * scale
            for p in range(3)
        ]
        print("   passes (all pairs at once): " + "  ".join(f"{t:8.2f} ms" for t in parts))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[1 << e for e in range(16, 23)])
    ap.add_argument(
        "--configs",
        nargs="*",
        default=["0x1", "16x3", "8x4"],
        help="workspace chunk MB x streams; 0 MB = all pairs in one group",
    )
    ap.add_argument("--breakdown", action="store_true", help="time each pass alone")
    ap.add_argument("--variants", nargs="*", default=["circular", "causal", "gated"])
    ap.add_argument("--keeps", type=float, nargs="*", default=[1.0], help="freq_keep values")
    args = ap.parse_args()
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs]
    bw = copy_bandwidth()
    print(f"{torch.cuda.get_device_name()}  copy bandwidth {bw / 1e12:.2f} TB/s")
    for n in args.sizes:
        for variant in args.variants:
            for keep in args.keeps:
                run_case(n, variant, bw, configs, args.breakdown, keep)
            cp.get_default_memory_pool().free_all_blocks()


if __name__ == "__main__":
    main()
