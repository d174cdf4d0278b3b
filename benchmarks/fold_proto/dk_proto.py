"""Prototype: the backward's dk on the twiddle-folded FFT-4096 stages (fold_dk.cuh), no gates.

    python benchmarks/fold_proto/dk_proto.py

The bwd_bench workload at FFT 4096 (causal: L = Lout = 2048, Lk = 2048, B = 64, H = 768, fp16
u and dy): the kernel's batch sum of conj(Z_u) Z_dy, finished by FusedBwd's own Hermitian fold,
inverse FFT and window, against FusedBwd's dk-only call (monarch_bwd) and float64 (two
channels). Then CUDA-event times (median) of both, alternating, and of the kernel alone.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import cupy as cp
import numpy as np
from devtiming import bench

from cufftconv import fused, twiddle_fold


def module(half: bool, du: bool = False):
    with open(os.path.join(HERE, "fold_dk.cuh")) as f:
        src = twiddle_fold.kernel_source() + "\n" + f.read()
    names = [f"fold_dk<0, {str(half).lower()}, {str(du).lower()}>"]
    mod = cp.RawModule(code=src, options=twiddle_fold.compile_options(None), name_expressions=names)
    return mod.get_function(names[0])


def finish(acc, n: int, Lk: int, nsplit: int, h: int):
    """FusedBwd's tail: Hermitian fold, inverse FFT, window."""
    from cupy.cuda import cufft

    inv = fused._dk_order(n)
    herm = cp.empty((h, n // 2 + 1), dtype=cp.complex64)
    fused._hermitian_kernel()(
        fused._grid256(herm.size),
        (256,),
        (acc, np.int32(nsplit), np.int32(h), np.int32(n), inv, np.float32(0.5 / n), herm),
    )
    corr = cp.empty((h, n), dtype=cp.float32)
    fused._plan1d(True, n, h).fft(herm, corr, cufft.CUFFT_INVERSE)
    return fused._dk_window(corr, n, Lk, 0, cp)


def main() -> None:
    n, B, H, L = 4096, 64, 768, 2048
    Lk = L
    rng = np.random.default_rng(1)
    u = cp.asarray(rng.standard_normal((B, H, L), dtype=np.float32).astype(np.float16))
    dy = cp.asarray(rng.standard_normal((B, H, L), dtype=np.float32).astype(np.float16))
    kerns = {False: module(False), True: module(True), "du": module(True, True)}
    k = cp.asarray((rng.standard_normal((H, Lk)) / np.sqrt(Lk)).astype(np.float32))
    smem = 2 * 4 * 8960 + 32 * 1120 + 8 * 2 * 4 + 4096 * 8
    for kern in kerns.values():
        kern.max_dynamic_shared_size_bytes = smem
    bwd = fused.FusedBwd(n, "float16", pregate=False, postgate=False)
    kr = bwd.adjoint_spectrum(k, 0)
    du_ours = cp.full((B, H, L), np.nan, dtype=cp.float16)
    du_theirs = cp.full((B, H, L), np.nan, dtype=cp.float16)

    def ours(nsplit: int, half=True):
        acc = cp.empty((nsplit, H, n, 2), dtype=cp.float32)
        kerns[half](
            (H * nsplit,),
            (256,),
            (
                u,
                dy,
                acc,
                np.int64(H * L),
                np.int64(L),
                np.int64(H * L),
                np.int64(L),
                np.int32(B),
                np.int32(H),
                np.int32(L),
                np.int32(L),
                np.int32(nsplit),
                kr,
                du_ours,
                np.int64(H * L),
                np.int64(L),
            ),
            shared_mem=smem,
        )
        return acc

    def theirs():
        return bwd(u, dy, L=L, out_offset=0, Lout=L, Lk=Lk)

    def theirs_du():
        return bwd(u, dy, kr, L=L, out_offset=0, Lout=L, Lk=Lk, du=du_theirs)

    ref = theirs()
    for nsplit, half in ((1, False), (1, True), (2, True), (3, True)):
        got = finish(ours(nsplit, half), n, Lk, nsplit, H)
        err = float(cp.linalg.norm(got - ref) / cp.linalg.norm(ref))
        print(f"nsplit {nsplit} half {half}: rel. diff vs monarch_bwd dk {err:.2e}", flush=True)
    # float64, two channels: dk[h, s] = sum_b,t dy[b,h,t] u[b,h,t - s] (zero padded to n)
    uh, dh = cp.asnumpy(u).astype(np.float64), cp.asnumpy(dy).astype(np.float64)
    for h in (0, H - 1):
        U = np.fft.rfft(uh[:, h], n=n)
        D = np.fft.rfft(dh[:, h], n=n)
        corr = np.fft.irfft((np.conj(U) * D).sum(0), n=n)
        want = corr[:Lk]  # c[s] = sum_m u[m] dy[m + s]: the inverse FFT of conj(U) D
        for name, arr in (("fold_dk", finish(ours(1), n, Lk, 1, H)), ("monarch_bwd", ref)):
            got = cp.asnumpy(arr[h]).astype(np.float64)
            print(
                f"h={h} {name}: rel err vs float64 {np.linalg.norm(got - want) / np.linalg.norm(want):.2e}"
            )
    # du and dk in one kernel (DU)
    dk_du = finish(ours(1, "du"), n, Lk, 1, H)
    dk_t = theirs_du()
    e = float(cp.linalg.norm(dk_du - dk_t) / cp.linalg.norm(dk_t))
    print(
        f"DU: dk rel. diff vs monarch_bwd {e:.2e}; du NaN-free: {not bool(cp.isnan(du_ours).any())}"
    )
    d = du_ours.astype(cp.float32) - du_theirs.astype(cp.float32)
    e = float(cp.linalg.norm(d) / cp.linalg.norm(du_theirs.astype(cp.float32)))
    print(f"DU: du rel. diff vs monarch_bwd {e:.2e}")
    kh = cp.asnumpy(k).astype(np.float64)
    for h in (0, H - 1):
        K = np.fft.rfft(kh[h], n=n)
        D = np.fft.rfft(dh[:, h], n=n)
        want = np.fft.irfft(np.conj(K)[None] * D, n=n)[:, :L]  # du[m] = sum_t dy[t] k[t - m]
        got = cp.asnumpy(du_ours[:, h]).astype(np.float64)
        e = np.linalg.norm(got - want) / np.linalg.norm(want)
        print(f"DU h={h}: du rel err vs float64 {e:.2e}")
    again = finish(ours(1), n, Lk, 1, H)
    print("bitwise repeatable:", bool((again == finish(ours(1), n, Lk, 1, H)).all()))
    for rnd in range(2):
        t_ours = {
            s: bench(lambda s=s: finish(ours(s), n, Lk, s, H), reps=20, warmup=3) for s in (1, 2, 3)
        }
        t_kern = bench(lambda: ours(1), reps=20, warmup=3)
        t_full = bench(lambda: ours(1, False), reps=20, warmup=3)
        t_theirs = bench(theirs, reps=20, warmup=3)
        t_du = bench(lambda: finish(ours(1, "du"), n, Lk, 1, H), reps=20, warmup=3)
        t_theirs_du = bench(theirs_du, reps=20, warmup=3)
        print(
            f"round {rnd}: du + dk monarch_bwd {t_theirs_du:.3f} ms; fold_dk DU + tail {t_du:.3f} ms"
        )
        print(
            f"round {rnd}: dk monarch_bwd {t_theirs:.3f} ms; fold_dk + tail "
            + ", ".join(f"nsplit {s}: {t:.3f}" for s, t in t_ours.items())
            + f" ms; fold_dk kernel alone (nsplit 1) {t_kern:.3f} ms, without HALF {t_full:.3f} ms",
            flush=True,
        )


if __name__ == "__main__":
    main()
