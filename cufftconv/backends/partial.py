"""The partial-convolution path: overlap-save blocks through the fused kernel family.

Takes 16-bit linear convolutions whose filter is short (Lk <= L / 4) and whose dense FFT size
would be above the fused table (the dense fused kernel is already one pass below it). Each
group of blocks from :func:`cufftconv.partial.plan_blocks` is one fused-kernel launch on
strided (B, block, H, window) views (the kernel's two-level batch), so windows are read in
place and outputs written in place, and the launch count does not grow with B.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import partial
from ..device import DeviceInfo, require_cupy
from ..dtypes import to_compute
from ..validation import ConvSpec, linear_length
from .fused import FusedExecutor, batch_channels, family_reason

# A switch for comparing with the dense path (benchmarks/partial_dev.py); on by default.
ENABLED = True


def block_size(spec: ConvSpec) -> int | None:
    """Block FFT size for ``spec``, or None when the partial path does not apply."""
    from .. import fused

    if spec.freq_mask is not None:
        return None  # blocks of another FFT size cannot apply a mask defined on freq_n
    if spec.mode == "circular" or spec.Lk * partial.MIN_RATIO > spec.L:
        return None
    dense = 1 << (linear_length(spec.L, spec.Lk, spec.mode) - 1).bit_length()
    if dense <= fused.SUPPORTED_N[-1]:
        return None  # one dense fused pass
    return partial.block_fft_size(spec.Lk)


def accepts(spec: ConvSpec, dev: DeviceInfo | None) -> str | None:
    from .. import fused

    if spec.freq_mask is not None:
        return (
            "frequency-sparse (freq_keep/freq_mask): the mask is defined on the FFT of size "
            f"{spec.freq_n}, which the overlap-save blocks do not compute"
        )
    if not ENABLED:
        return "switched off (cufftconv.backends.partial.ENABLED = False)"
    sizes = (
        f"linear modes with Lk <= L/{partial.MIN_RATIO}, a dense FFT size above "
        f"{fused.SUPPORTED_N[-1]} and a block size in {fused.SUPPORTED_N[0]}.."
        f"{fused.SUPPORTED_N[-1]}"
    )
    return family_reason(
        spec,
        dev,
        "partial",
        fused.DTYPES,
        block_size(spec),
        lambda n: fused.shared_bytes(n, spec.dtype),
        sizes,
    )


class PartialExecutor(FusedExecutor):
    """Overlap-save over the fused kernel: the fused executor's I/O, blocks of size n."""

    def __init__(
        self,
        spec: ConvSpec,
        dev: DeviceInfo | None,
        *,
        xp: Any = None,
        make_kernel: Callable[..., Any] | None = None,
    ) -> None:
        from .. import fused

        self.xp = require_cupy() if xp is None else xp
        self.spec = spec
        self.n = partial.block_fft_size(spec.Lk)
        if self.n is None:
            raise ValueError(f"no block size for a filter of length {spec.Lk}")
        self.B, self.H = batch_channels(spec)
        make = fused.FusedConv if make_kernel is None else make_kernel
        gates = {
            "pregate": spec.pregate_dtype is not None,
            "postgate": spec.postgate_dtype is not None,
        }
        self.kernel = make(self.n, spec.dtype, **gates)
        self.k_used = spec.Lk
        self.hop = partial.hop_size(self.n, spec.Lk)
        self.groups = partial.plan_blocks(spec.L, spec.Lk, spec.offset, spec.Lout, self.n)
        written = partial.covered(self.groups, self.hop)
        self.full_cover = sum(b - a for a, b in written) == spec.Lout

    def spectrum(self, k: Any) -> Any:
        kc = to_compute(k[..., : self.k_used], self.spec.k_dtype, "float32", self.xp)
        return self.kernel.filter_spectrum(kc.reshape(self.H, kc.shape[-1]))

    def _window(self, a: Any, start: int, count: int, length: int) -> Any:
        """(B, count, H, length) view of a (B, H, total): block i starts at start + i*hop."""
        it = a.itemsize
        view = a[:, :, start:]
        return self.xp.lib.stride_tricks.as_strided(
            view,
            shape=(self.B, count, self.H, length),
            strides=(a.strides[0], self.hop * it, a.strides[1], it),
        )

    def _launch(self, u: Any, kspec: Any, y: Any, pre: Any | None, post: Any | None) -> None:
        if not self.full_cover:
            y[...] = 0
        for g in self.groups:  # one launch per group: every batch row's blocks at once
            self.kernel(
                self._window(u, g.w0, g.count, g.lw),
                kspec,
                self._window(y, g.t0, g.count, g.lout),
                L=g.lw,
                out_offset=g.out_offset,
                Lout=g.lout,
                pregate=None if pre is None else self._window(pre, g.w0, g.count, g.lw),
                postgate=None if post is None else self._window(post, g.t0, g.count, g.lout),
            )
