"""Prototype check: FFT 4096 circular convolution with the twiddles folded into the tensor-core
DFT matrices (``fold4k.cu``), against float64 and side by side with the dispatched fused kernel
and PyTorch's rfft convolution. Development only: nothing in the library calls it.

    PYTHONPATH=. python3 benchmarks/fold_proto/fold_proto.py [--compile-only]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N = 4096
D = np.arange(16)


def w(m: int, x) -> np.ndarray:
    return np.exp(-2j * np.pi * np.asarray(x, dtype=np.float64) / m)


def matrices() -> np.ndarray:
    """(6, 16, 16, 16) complex: stage s, fixed digit j, (output row, contracted column)."""
    a, b = D[:, None], D[None, :]  # row = output digit, column = contracted digit
    f1 = np.stack([w(16, a * b) * w(N, j * a) for j in D]) / 4  # F1[n3](k1, n1)
    f2 = np.stack([w(16, a * b) * w(256, b * j) for j in D]) / 4  # F2[k1](k2, n2)
    f3 = np.stack([w(16, a * b) * w(256, b * j) for j in D]) / 4  # F3[k2](k3, n3)
    inv = [np.conj(np.swapaxes(m, 1, 2)) for m in (f3, f2, f1)]
    return np.stack([f1, f2, f3, *inv])


def table() -> np.ndarray:
    """The kernel's shared-memory table: (32 matrices, Re / Im, 35 chunks, 8) fp16 bits.

    Matrices 0..15 are F1[j], 16..31 F2[j] (= F3[j]); row r, half h at chunk
    2 r + h + (r >> 2), as ``load_mat`` reads them (``cofs(0, r, h)``)."""
    m = matrices()
    mats = np.concatenate([m[0], m[1]])  # (32, 16, 16)
    assert np.allclose(m[1], m[2])
    comps = np.stack([mats.real, mats.imag], axis=1).astype(np.float16).view(np.uint16)
    out = np.zeros((32, 2, 35, 8), dtype=np.uint16)
    for row in range(16):
        for ch in range(2):
            out[:, :, 2 * row + ch + (row >> 2)] = comps[:, :, row, 8 * ch : 8 * ch + 8]
    return out


def kfrag_index() -> np.ndarray:
    """Frequency f for (k2, column half, lane, value) of the middle stage's C fragments."""
    k2, ch, lane, c = np.meshgrid(D, np.arange(2), np.arange(32), np.arange(4), indexing="ij")
    g, t = lane >> 2, lane & 3
    k3 = g + 8 * (c >> 1)
    k1 = 8 * ch + 2 * t + (c & 1)
    return (k1 + 16 * k2 + 256 * k3).reshape(-1)


def mirror_check() -> float:
    """The folded stages in float64 NumPy against numpy.fft (the math the kernel runs)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(N) + 1j * rng.standard_normal(N)
    k = rng.standard_normal(N)
    m = matrices()
    xm = x.reshape(16, 16, 16)
    y1 = np.einsum("ckn,nbc->kbc", m[0], xm)
    y2 = np.einsum("akn,anc->akc", m[1], y1)
    xf = np.einsum("bkn,abn->abk", m[2], y2)
    f = D[:, None, None] + 16 * D[None, :, None] + 256 * D[None, None, :]
    z = xf * np.fft.fft(k)[f]
    v3 = np.einsum("bnk,abk->abn", m[3], z)
    v2 = np.einsum("ank,akc->anc", m[4], v3)
    v1 = np.einsum("cnk,kbc->nbc", m[5], v2)
    ref = np.fft.ifft(np.fft.fft(x) * np.fft.fft(k))
    return float(np.abs(v1.reshape(-1) - ref).max() / np.abs(ref).max())


def source() -> str:
    sys.path.insert(0, str(HERE.parents[1]))
    from cufftconv.sources import read_source

    text = (HERE / "fold4k.cu").read_text()
    return text.replace('#include "monarch_prims.cuh"', read_source("monarch_prims.cuh"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--compile-only", action="store_true")
    ap.add_argument("--profile", action="store_true", help="one launch of each kernel, for ncu")
    ap.add_argument(
        "--pairs", nargs="*", default=["2:8:2", "1:8:3", "4:16:1"], help="P:WARPS:MINB variants"
    )
    args = ap.parse_args()
    print(f"mirror (float64) rel err {mirror_check():.2e}")
    if args.compile_only:
        return
    import cupy as cp

    sys.path.insert(0, str(HERE.parent))
    from devtiming import bench

    from cufftconv import fused

    names = [f"fold4k<{v.replace(':', ',')}>" for v in args.pairs]
    mod = cp.RawModule(code=source(), options=("-std=c++17",), name_expressions=names)
    tab = cp.asarray(table())
    fidx = cp.asarray(kfrag_index())

    def kfrag(k: cp.ndarray) -> cp.ndarray:
        kk = cp.fft.fft(k.astype(cp.float64), n=N, axis=-1)[:, fidx]
        parts = cp.stack([kk.real, kk.imag], axis=-1).astype(cp.float16)  # (H, 4096, re/im)
        return cp.ascontiguousarray(parts)

    def launcher(v: str, B: int, H: int):
        p, warps, minb = (int(x) for x in v.split(":"))
        fn = mod.get_function(f"fold4k<{p},{warps},{minb}>")
        plane = 16 * 35 * 16
        smem = 2 * (2 * p * plane) + 32 * 2 * 35 * 16
        fn.max_dynamic_shared_size_bytes = smem
        units = (B // 2) * H // p
        sms = cp.cuda.Device().attributes["MultiProcessorCount"]
        per_sm = min((228 * 1024) // (smem + 1024), minb)
        grid = min(units, sms * max(1, per_sm))

        def run(u, y, kf):
            fn((grid,), (32 * warps,), (u, y, kf, tab, np.int32(B), np.int32(H)), shared_mem=smem)

        return run

    if args.profile:
        B, H = 64, 768
        u = cp.asarray(np.random.default_rng(3).standard_normal((B, H, N)).astype(np.float16))
        k = cp.asarray(
            (np.random.default_rng(4).standard_normal((H, N)) / np.sqrt(N)).astype(np.float32)
        )
        y = cp.empty_like(u)
        conv = fused.FusedConv(N, "float16", pregate=False, postgate=False)
        kf_cur = conv.filter_spectrum(k)
        conv.launcher(B, H, N, 0, N)(
            u.data.ptr, u.data.ptr, kf_cur, y.data.ptr, y.data.ptr, cp.cuda.get_current_stream()
        )
        kf = kfrag(k)
        for p in args.pairs:
            launcher(p, B, H)(u, y, kf)
        cp.cuda.Device().synchronize()
        return

    # correctness against float64, fresh inputs, poisoned output
    for B, H in ((4, 6), (8, 3), (64, 5)):
        rng = np.random.default_rng(B * 100 + H)
        u16 = rng.standard_normal((B, H, N)).astype(np.float16)
        k = (rng.standard_normal((H, N)) / np.sqrt(N)).astype(np.float32)
        ref = np.fft.ifft(
            np.fft.fft(u16.astype(np.float64)) * np.fft.fft(k.astype(np.float64))
        ).real
        for p in args.pairs:
            if (B // 2) % int(p.split(":")[0]):
                continue
            u = cp.asarray(u16)
            y = cp.full((B, H, N), np.float16(np.nan))
            launcher(p, B, H)(u, y, kfrag(cp.asarray(k)))
            out = cp.asnumpy(y).astype(np.float64)
            err = np.linalg.norm(out - ref) / np.linalg.norm(ref)
            same = bool((cp.asnumpy(u) == u16).all())
            print(
                f"B={B} H={H} P={p}: rel err {err:.2e}, nan {int(np.isnan(out).sum())}, input intact {same}"
            )

    # speed: B=64, H=768, side by side
    B, H, REP = 64, 768, 10
    rng = np.random.default_rng(7)
    u = cp.asarray(rng.standard_normal((B, H, N)).astype(np.float16))
    k = cp.asarray((rng.standard_normal((H, N)) / np.sqrt(N)).astype(np.float32))
    y = cp.empty_like(u)
    stream = cp.cuda.get_current_stream()

    def timed(fn) -> float:
        def many():
            for _ in range(REP):
                fn()

        return bench(many, reps=15, warmup=3) / REP

    nbytes = u.nbytes
    src = cp.empty(nbytes // 2, dtype=cp.float32)
    dst = cp.empty_like(src)
    copy_ms = timed(lambda: cp.copyto(dst, src))
    bw = 2 * src.nbytes / (copy_ms * 1e-3)
    floor = 2 * nbytes / bw * 1e3
    rows = [f"copy bandwidth {bw / 1e12:.3f} TB/s, HBM floor {floor:.4f} ms (B={B}, H={H}, N={N})"]
    conv = fused.FusedConv(N, "float16", pregate=False, postgate=False)
    kf_cur = conv.filter_spectrum(k)
    launch = conv.launcher(B, H, N, 0, N)
    y_cur = cp.empty_like(u)
    args_cur = (u.data.ptr, u.data.ptr, kf_cur, y_cur.data.ptr, y_cur.data.ptr, stream)
    t_cur = timed(lambda: launch(*args_cur))
    rows.append(f"dispatched fused kernel: {t_cur:.4f} ms  eff {floor / t_cur:.1%}")
    kf = kfrag(k)
    for p in args.pairs:
        run = launcher(p, B, H)
        t = timed(lambda run=run: run(u, y, kf))
        d = float(
            cp.linalg.norm((y - y_cur).astype(cp.float32))
            / cp.linalg.norm(y_cur.astype(cp.float32))
        )
        rows.append(
            f"folded P={p}: {t:.4f} ms  eff {floor / t:.1%}  x{t_cur / t:.2f} vs dispatched  diff {d:.1e}"
        )
    try:
        import torch

        ut = torch.from_dlpack(u)
        kt = torch.from_dlpack(k)

        def torch_conv():
            return torch.fft.irfft(torch.fft.rfft(ut.float(), n=N) * torch.fft.rfft(kt, n=N), n=N)[
                ..., :N
            ].half()

        rows.append(f"torch rfft conv: {timed(torch_conv):.4f} ms")
    except ImportError:
        rows.append("torch: not installed")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
