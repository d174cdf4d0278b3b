"""The folded frequency-sparse path: a mask that keeps f % F == 0 is a smaller dense convolution.

Keeping only the frequencies ``f % F == 0`` of the size-N FFT (``freq_keep`` = 1/4, 1/8, 1/16,
or the same explicit ``freq_mask``) equals an ``n = N / F`` point circular convolution of the
input folded to period n (``xf[m] = sum_j x[m + j n]``) by the filter folded the same way and
divided by F, read back with period n: ``y[t] = post[t] * yc[(t + offset) mod n]``. So three
launches replace one N-point fused kernel: a fold pass (reads u, writes B*H*n), the dense fused
kernel at size n, and a tiling pass (writes y). It takes the masks that zero 75 % or more of the
spectrum, where that costs less than the fused kernel's own tile skipping (which leaves the
first and last stages, loads and stores at full size). The folded input is rounded once to the
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

# Folded input per chunk of batch rows: small enough that the fold pass's output and the
# kernel's (each read back once by the next launch) stay in L2 between the launches.
CHUNK_BYTES = 16 << 20
MIN_FOLD = 4  # F = 2 saves less than the fused kernel's own skipping (two extra passes)
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
        self._launchers: dict[int, Any] = {}  # batch rows per chunk -> the size-n launch

    def spectrum(self, k: Any) -> Any:
        xp = self.xp
        kc = to_compute(k[..., : self.k_used], self.spec.k_dtype, "float32", xp)
        kc = kc.reshape(self.H, kc.shape[-1])
        kpad = xp.zeros((self.H, self.big), dtype=xp.float32)
        kpad[:, : kc.shape[-1]] = kc
        kf = kpad.reshape(self.H, self.fold, self.n).sum(axis=1) * (1.0 / self.fold)
        return self.kernel.filter_spectrum(kf)

    def _launch(self, u: Any, kspec: Any, y: Any, pre: Any | None, post: Any | None) -> None:
        """Fold, convolve, tile, over chunks of whole batch rows whose folded input fits
        CHUNK_BYTES, so that xf and yc pass between the three launches through L2."""
        xp, s, n, H = self.xp, self.spec, self.n, self.H
        if self.B * H == 0 or s.Lout == 0:
            return
        fn = _functions()
        fold = fn[f"fold_rows<{self.dt}, {'true' if pre is not None else 'false'}>"]
        tile = fn[f"tile_rows<{self.dt}, {'true' if post is not None else 'false'}>"]
        i32, i64 = np.int32, np.int64

        def strides(a: Any | None) -> tuple:  # (batch, channel) strides in elements
            if a is None:
                return i64(0), i64(0)
            return i64(a.strides[0] // a.itemsize), i64(a.strides[1] // a.itemsize)

        per_b = H * n * u.itemsize
        step = max(1, min(self.B, CHUNK_BYTES // per_b))
        xf = xp.empty((step, H, n), dtype=u.dtype)
        yc = xp.empty_like(xf)
        stream = xp.cuda.get_current_stream()
        for b0 in range(0, self.B, step):
            bc = min(step, self.B - b0)
            uc, yo = u[b0 : b0 + bc], y[b0 : b0 + bc]
            pc = None if pre is None else pre[b0 : b0 + bc]
            gc = None if post is None else post[b0 : b0 + bc]
            chunks = bc * H * (n // 8)
            fold(
                (-(-chunks // 256),),
                (256,),
                (
                    uc,
                    uc if pc is None else pc,
                    xf,
                    i32(H),
                    i32(s.L),
                    i32(n),
                    i32(self.fold),
                    *strides(uc),
                    *strides(pc),
                    i64(chunks),
                ),
            )
            launch = self._launchers.get(bc)
            if launch is None:
                launch = self._launchers[bc] = self.kernel.launcher(bc, H, n, 0, n)
            launch(xf.data.ptr, xf.data.ptr, kspec, yc.data.ptr, yc.data.ptr, stream)
            chunks = bc * H * -(-s.Lout // 8)
            tile(
                (-(-chunks // 256),),
                (256,),
                (
                    yc,
                    yc if gc is None else gc,
                    yo,
                    i32(H),
                    i32(n),
                    i32(s.Lout),
                    i32(s.offset),
                    *strides(yo),
                    *strides(gc),
                    i64(chunks),
                ),
            )
