"""Development benchmark of the fused forward kernels (cufftconv.fused) on one GPU.

For each FFT size and variant (conv: circular, L = n; gated: circular with both gates;
causal: L = n/2, zero padded) it times the fused kernel with CUDA events (median after
warm-up) beside a CuPy rfft baseline with a precomputed filter spectrum and, if PyTorch is
installed, torch's rfft convolution; all scaled to B=64, H=768. The HBM floor is the bytes
that must move (16-bit u [+ gates] in, y out) over the measured device copy bandwidth.
``--breakdown`` times builds of the kernel with phases switched off (MONARCH_SKIP).

    python benchmarks/fused_dev.py [--sizes 256,1024,...] [--dtype float16] [--quick] [--breakdown]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cupy as cp

from cufftconv import fused

B_FULL, H_FULL = 64, 768
VARIANTS = ("conv", "gated", "causal")


def timeit(fn, reps=20, warmup=3):
    for _ in range(warmup):
        fn()
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    ts = []
    for _ in range(reps):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        ts.append(cp.cuda.get_elapsed_time(start, stop))
    return float(np.median(ts))


def copy_bandwidth():
    src = cp.empty(1 << 30, dtype=cp.uint8)  # 1 GiB
    dst = cp.empty_like(src)
    ms = timeit(lambda: cp.copyto(dst, src), reps=10)
    return 2 * (1 << 30) / (ms * 1e-3)  # bytes / s


def to_f32(a, dtype):
    if a is None:
        return None
    if dtype == "float16":
        return a.astype(cp.float32)
    return (a.astype(cp.uint32) << 16).view(cp.float32)


def to_storage(x32, dtype):
    if dtype == "float16":
        return x32.astype(cp.float16)
    b = x32.view(cp.uint32)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(cp.uint16)


def problem_size(n, quick):
    if quick:
        return 16, 96
    return (64, 768) if n <= 8192 else (32, 384) if n <= 16384 else (16, 384)


class Problem:
    """Inputs of one (n, variant) benchmark row."""

    def __init__(self, n, variant, dtype, B, H):
        self.n, self.variant, self.dtype, self.B, self.H = n, variant, dtype, B, H
        self.L = n if variant != "causal" else n // 2
        self.gated = variant == "gated"
        rng = cp.random.default_rng(0)
        self.u = to_storage(rng.standard_normal((B, H, self.L), dtype=cp.float32), dtype)
        self.pre = self.u.copy() if self.gated else None
        self.post = self.u.copy() if self.gated else None
        self.k = rng.standard_normal((H, self.L), dtype=cp.float32) / np.float32(np.sqrt(self.L))
        self.conv = fused.FusedConv(n, dtype, pregate=self.gated, postgate=self.gated)
        self.kf = self.conv.filter_spectrum(self.k)
        self.y = cp.empty(self.u.shape, dtype=self.u.dtype)

    def fused(self):
        self.conv(
            self.u,
            self.kf,
            self.y,
            L=self.L,
            out_offset=0,
            Lout=self.L,
            pregate=self.pre,
            postgate=self.post,
        )

    def reference(self, x_u, rows=slice(0, 2)):
        x = to_f32(x_u[rows], self.dtype)
        if self.gated:
            x = x * to_f32(self.pre[rows], self.dtype)
        r = cp.fft.irfft(cp.fft.rfft(x, n=self.n) * cp.fft.rfft(self.k, n=self.n), n=self.n)[
            ..., : self.L
        ]
        if self.gated:
            r = r * to_f32(self.post[rows], self.dtype)
        return r

    def relerr(self):
        self.fused()
        ref = self.reference(self.u)
        return float(cp.linalg.norm(to_f32(self.y[:2], self.dtype) - ref) / cp.linalg.norm(ref))

    def cupy_baseline(self):
        kr = cp.fft.rfft(self.k, n=self.n)  # precomputed filter spectrum
        uf = to_f32(self.u, self.dtype)
        pf = to_f32(self.pre, self.dtype)
        qf = to_f32(self.post, self.dtype)

        def run():
            x = uf * pf if self.gated else uf
            r = cp.fft.irfft(cp.fft.rfft(x, n=self.n) * kr, n=self.n)[..., : self.L]
            if self.gated:
                r = r * qf
            return r.astype(cp.float16)

        return run

    def torch_baseline(self):
        import torch

        ut = torch.as_tensor(self.u, device="cuda")
        kt = torch.as_tensor(self.k, device="cuda")
        pt = torch.as_tensor(self.pre, device="cuda") if self.gated else None
        qt = torch.as_tensor(self.post, device="cuda") if self.gated else None
        n, L, gated = self.n, self.L, self.gated

        def run():
            x = ut.float() * pt.float() if gated else ut.float()
            r = torch.fft.irfft(torch.fft.rfft(x, n=n) * torch.fft.rfft(kt, n=n), n=n)[..., :L]
            if gated:
                r = r * qt.float()
            return r.half()

        return run


def have_torch():
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def run(sizes, dtype, quick, out_json=None, baselines=True):
    dev = cp.cuda.Device()
    props = cp.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    bw = copy_bandwidth()
    print(
        f"device: {name}  SMs={props['multiProcessorCount']}  copy bandwidth {bw / 1e12:.3f} TB/s  dtype={dtype}"
    )
    use_torch = have_torch() and dtype == "float16"
    print(
        f"{'N':>6} {'variant':>7} {'B':>3} {'H':>4} {'fused ms':>9} {'floor ms':>9} {'eff':>5} "
        f"{'cupy ms':>8} {'torch ms':>8} {'x cupy':>6} {'x torch':>7} {'relerr':>8}"
    )
    rows = []
    for n in sizes:
        B, H = problem_size(n, quick)
        scale = (B_FULL * H_FULL) / (B * H)  # time scales linearly with B*H
        for variant in VARIANTS:
            pb = Problem(n, variant, dtype, B, H)
            t_fused = timeit(pb.fused) * scale
            floor = fused.hbm_bytes(n, B_FULL, H_FULL, pb.L, pb.L, pb.gated, pb.gated) / bw * 1e3
            err = pb.relerr()
            t_cupy = (
                timeit(pb.cupy_baseline(), reps=5, warmup=1) * scale if baselines else float("nan")
            )
            t_torch = (
                timeit(pb.torch_baseline(), reps=5, warmup=1) * scale
                if use_torch and baselines
                else float("nan")
            )
            row = {
                "n": n,
                "variant": variant,
                "B": B,
                "H": H,
                "fused_ms": t_fused,
                "floor_ms": floor,
                "eff": floor / t_fused,
                "cupy_ms": t_cupy,
                "torch_ms": t_torch,
                "relerr": err,
                "dtype": dtype,
            }
            rows.append(row)
            print(
                f"{n:>6} {variant:>7} {B:>3} {H:>4} {t_fused:9.4f} {floor:9.4f} {floor / t_fused:5.2f} "
                f"{t_cupy:8.3f} {t_torch:8.3f} {t_cupy / t_fused:6.1f} {t_torch / t_fused:7.1f} {err:8.2e}",
                flush=True,
            )
            del pb
            cp.get_default_memory_pool().free_all_blocks()
    if out_json:
        doc = {"device": name, "copy_bw": bw, "date": time.strftime("%Y-%m-%d"), "rows": rows}
        Path(out_json).write_text(json.dumps(doc, indent=1))
    return rows


def breakdown(sizes, dtype):
    """Time of the conv variant with phases switched off (1: fwd radix-R, 2: tensor, 4: inv radix-R)."""
    masks = (0, 1, 2, 4, 7)
    print(
        "breakdown (ms at B=64,H=768; conv variant): skip mask "
        + " ".join(f"{m:>8}" for m in masks)
    )
    for n in sizes:
        B, H = problem_size(n, False)
        scale = (B_FULL * H_FULL) / (B * H)
        pb = Problem(n, "conv", dtype, B, H)
        _, grid, args, _ = pb.conv.prepare(pb.u, pb.kf, pb.y, L=pb.L, out_offset=0, Lout=pb.L)
        name = fused.name_expression(n, dtype, False, False, 0)
        times = []
        for m in masks:
            mod = cp.RawModule(
                code=fused.kernel_source(),
                options=(*fused.compile_options(None), f"-DMONARCH_SKIP={m}"),
                name_expressions=[name],
            )
            kern = mod.get_function(name)
            if pb.conv.smem > 48 * 1024:
                kern.max_dynamic_shared_size_bytes = pb.conv.smem
            launch = (grid,), (pb.conv.threads,), args

            def call(k=kern, launch=launch, smem=pb.conv.smem):
                k(*launch, shared_mem=smem)

            times.append(timeit(call) * scale)
        print(f"{n:>6} " + " ".join(f"{t:8.4f}" for t in times), flush=True)
        del pb
        cp.get_default_memory_pool().free_all_blocks()


def once(sizes, dtype, variant):
    """Run the fused kernel twice per size (warm-up, then the launch to profile, e.g. under ncu)."""
    for n in sizes:
        pb = Problem(n, variant, dtype, *problem_size(n, False))
        pb.fused()
        pb.fused()
        cp.cuda.runtime.deviceSynchronize()
        del pb
        cp.get_default_memory_pool().free_all_blocks()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default=",".join(str(n) for n in fused.SUPPORTED_N))
    ap.add_argument("--dtype", default="float16", choices=fused.DTYPES)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--breakdown", action="store_true")
    ap.add_argument("--json", default=None)
    ap.add_argument("--once", default=None, choices=VARIANTS, help="run each size twice (profiling)")
    ap.add_argument("--no-baselines", action="store_true", help="skip the CuPy/PyTorch timings")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    fused.precompile([(n, a.dtype, g, g) for n in sizes for g in (False, True)], max_workers=16)
    if a.once:
        once(sizes, a.dtype, a.once)
    elif a.breakdown:
        breakdown(sizes, a.dtype)
    else:
        run(sizes, a.dtype, a.quick, a.json, baselines=not a.no_baselines)


if __name__ == "__main__":
    main()
