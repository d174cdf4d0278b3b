"""The folded frequency-sparse path: a mask that keeps f % F == 0 is a smaller dense convolution.

Keeping only the frequencies ``f % F == 0`` of the size-N FFT (``freq_keep`` = 1/4, 1/8, 1/16,
or the same explicit ``freq_mask``) equals an ``n = N / F`` point circular convolution of the
input folded to period n (``xf[m] = sum_j x[m + j n]``) by the filter folded the same way and
divided by F, read back with period n: ``y[t] = post[t] * yc[(t + offset) mod n]``. So three
launches replace one N-point fused kernel: a fold pass (reads u, writes B*H*n), the dense fused
kernel at size n, and a tiling pass (writes y). It takes the masks that zero 75 % or more of the
spectrum, where that costs less than the fused kernel's own tile skipping (which leaves the
first and last stages, loads and stores at full size; see :data:`IN_PLACE_FASTER`). The folded input is rounded once to the
input's 16-bit type (the sum of F values), which the accuracy figures include.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import freqmask
from ..cache import OnceCache
from ..device import DeviceInfo, require_cupy
from ..dtypes import to_compute
from ..sources import inline_source
from ..validation import ConvSpec
from .fused import FusedExecutor, batch_channels, family_reason

MIN_FOLD = 4  # F = 2 saves less than the fused kernel's own skipping (two extra passes)
# (N, F, causal half) where the SPARSE twiddle-folded kernel (cufftconv.twiddle_fold: the masked
# classes' tiles skipped in place) beats fold + kernel at N / F + tile, when a call fits it.
# freqsparse_bench.py on an H200, 2026-11-23 (benchmarks/RESULTS.md), ms at B=64, H=768, in
# place vs folded: 4096 circular F = 4 / 8 / 16: 0.336 / 0.314 / 0.304 vs 0.490 / 0.393 / 0.353,
# causal 0.255 / 0.237 / 0.230 vs 0.393 / 0.306 / 0.266. 8192 (in place since `20561b9`, run
# at `ea4c3901b4d7`): circular F = 4 / 8 / 16: 0.694 / 0.654 / 0.640 vs 0.807 / 0.689 / 0.596,
# causal 0.539 / 0.501 / 0.489 vs 0.586 / 0.454 / 0.360.
IN_PLACE_FASTER = frozenset(
    [(4096, f, half) for f in (4, 8, 16) for half in (False, True)]
    + [(8192, 4, False), (8192, 8, False), (8192, 4, True)]
)
KERNEL_FILE = "fold.cu"
NAMES = tuple(
    f"{k}<{dt}, {g}>"
    for k in ("fold_rows", "tile_rows")
    for dt in (0, 1)
    for g in ("false", "true")
)
_MODULE: OnceCache = OnceCache()  # (device, arch) -> the kernels/fold.cu functions


def fold_factor(mask: tuple[bool, ...] | None) -> int | None:
    """F when ``mask`` keeps exactly the classes r % F == 0 (F = 2, 4, 8, 16), else None."""
    if mask is None:
        return None
    for f in (16, 8, 4, 2):
        if mask == tuple(r % f == 0 for r in range(freqmask.GROUPS)):
            return f
    return None


def folded_size(spec: ConvSpec) -> int | None:
    """The dense kernel's FFT size n = N / F for ``spec``, or None when the path does not apply."""
    from .. import fused

    f = fold_factor(spec.freq_mask)
    if f is None or f < MIN_FOLD:
        return None
    big = spec.freq_n
    if big is None or big not in fused.SUPPORTED_N or big // f not in fused.SUPPORTED_N:
        return None
    return big // f


def in_place_faster(spec: ConvSpec, dev: DeviceInfo | None) -> bool:
    """Whether the fused row's SPARSE twiddle-folded kernel takes ``spec`` (device and shape
    rules; a view's strides and pointers are checked per call) and ran it faster in place."""
    from .. import twiddle_fold

    n, f, bh = spec.freq_n, fold_factor(spec.freq_mask), batch_channels(spec)
    if n is None or f is None or bh is None or dev is None:
        return False
    if dev.arch_number < twiddle_fold.MIN_CC:
        return False
    half = twiddle_fold.half(n, spec.L, spec.offset, spec.Lout)
    if (n, f, half) not in IN_PLACE_FASTER:
        return False
    B, H = bh
    contiguous = (H * spec.L, spec.L, H * spec.Lout, spec.Lout)
    return twiddle_fold.use_sparse(n, spec.freq_mask) and twiddle_fold.eligible(
        n,
        freq_mask=spec.freq_mask,
        B=B,
        BI=B,
        L=spec.L,
        out_offset=spec.offset,
        Lout=spec.Lout,
        strides=contiguous,
    )


def accepts(spec: ConvSpec, dev: DeviceInfo | None) -> str | None:
    from .. import fused

    if folded_size(spec) is None:
        return (
            "needs a frequency mask keeping exactly f % F == 0 (F = 4, 8 or 16) with the FFT "
            f"size N and N / F in {fused.SUPPORTED_N[0]}..{fused.SUPPORTED_N[-1]}"
        )
    small = folded_size(spec)
    bh = batch_channels(spec)
    if bh is not None and bh[0] * bh[1] >= 2**31:
        return "more than 2**31 - 1 rows of (B, H)"
    if in_place_faster(spec, dev):
        return (
            f"the fused kernel skips this mask's tiles in place faster at FFT size {spec.freq_n} "
            "(SPARSE twiddle-folded kernel)"
        )
    # (the family checks run on the mask's size N; shared memory is the size-n kernel's)
    return family_reason(
        spec,
        dev,
        "folded",
        fused.DTYPES,
        spec.freq_n,
        lambda _n: fused.shared_bytes(small, spec.dtype),
        "N / F",
    )


def kernel_source() -> str:
    return inline_source(KERNEL_FILE)


def compile_options(arch: str | None = None) -> tuple[str, ...]:
    from .. import fused

    return fused.compile_options(arch)


def _functions() -> dict:
    cp = require_cupy()
    dev = cp.cuda.Device()

    def build() -> dict:
        mod = cp.RawModule(
            code=kernel_source(),
            options=compile_options(None),
            name_expressions=list(NAMES),
        )
        return {name: mod.get_function(name) for name in NAMES}

    return _MODULE.get((dev.id, dev.compute_capability), build)


class FoldedExecutor(FusedExecutor):
    """Fold, a dense fused convolution of size n = N / F, tile: the fused executor's I/O."""

    def __init__(self, spec: ConvSpec, dev: DeviceInfo | None) -> None:
        from .. import fused

        self.xp = require_cupy()
        self.spec = spec
        self.n = folded_size(spec)
        if self.n is None:
            raise ValueError("the folded path does not apply to this spec")
        self.big = spec.freq_n
        self.fold = self.big // self.n
        self.B, self.H = batch_channels(spec)
        self.kernel = fused.FusedConv(self.n, spec.dtype, pregate=False, postgate=False)
        self.k_used = min(spec.Lk, spec.L) if spec.mode == "causal" else spec.Lk
        self.dt = 0 if spec.dtype == "float16" else 1

    def spectrum(self, k: Any) -> Any:
        xp = self.xp
        kc = to_compute(k[..., : self.k_used], self.spec.k_dtype, "float32", xp)
        kc = kc.reshape(self.H, kc.shape[-1])
        kpad = xp.zeros((self.H, self.big), dtype=xp.float32)
        kpad[:, : kc.shape[-1]] = kc
        kf = kpad.reshape(self.H, self.fold, self.n).sum(axis=1) * (1.0 / self.fold)
        return self.kernel.filter_spectrum(kf)

    def _launch(self, u: Any, kspec: Any, y: Any, pre: Any | None, post: Any | None) -> None:
        xp, s, n = self.xp, self.spec, self.n
        rows = self.B * self.H
        if rows == 0 or s.Lout == 0:
            return
        fn = _functions()
        i32, i64 = np.int32, np.int64

        def strides(a: Any | None) -> tuple:  # (batch, channel) strides in elements
            if a is None:
                return i64(0), i64(0)
            return i64(a.strides[0] // a.itemsize), i64(a.strides[1] // a.itemsize)

        xf = xp.empty((self.B, self.H, n), dtype=u.dtype)
        chunks = rows * (n // 8)
        fn[f"fold_rows<{self.dt}, {'true' if pre is not None else 'false'}>"](
            (-(-chunks // 256),),
            (256,),
            (
                u,
                u if pre is None else pre,
                xf,
                i32(self.H),
                i32(s.L),
                i32(n),
                i32(self.fold),
                *strides(u),
                *strides(pre),
                i64(chunks),
            ),
        )
        if post is None and s.offset == 0 and s.Lout > n:
            # the first period straight into y; the tiling pass copies it on from there
            self.kernel(xf, kspec, y[:, :, :n], L=n, out_offset=0, Lout=n)
            src, src_strides, start = y, strides(y), n
        else:
            src = xp.empty_like(xf)
            self.kernel(xf, kspec, src, L=n, out_offset=0, Lout=n)
            src_strides, start = (i64(self.H * n), i64(n)), 0
        chunks = rows * -(-(s.Lout - start) // 8)
        fn[f"tile_rows<{self.dt}, {'true' if post is not None else 'false'}>"](
            (-(-chunks // 256),),
            (256,),
            (
                src,
                src if post is None else post,
                y,
                i32(self.H),
                i32(n),
                i32(s.Lout),
                i32(s.offset),
                i32(start),
                *strides(y),
                *src_strides,
                *strides(post),
                i64(chunks),
            ),
        )
