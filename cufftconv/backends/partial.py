"""The partial-convolution path: overlap-save blocks through the fused kernel family.

Takes 16-bit linear convolutions whose filter is short (Lk <= L / 4) and whose dense FFT size
would be above the fused table (the dense fused kernel is already one pass below it). Each
group of blocks from :func:`cufftconv.partial.plan_blocks` is one fused-kernel launch on
strided views: for batch element b, the kernel's (B, H) axes are (block, channel) with strides
(hop, L), so windows are read in place and outputs written in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import partial
from ..device import DeviceInfo, require_cupy
from ..dtypes import to_compute
from ..validation import ConvSpec, linear_length
from .fused import FusedExecutor, batch_channels, family_reason

# Off until the path has run on a GPU (its block arithmetic is checked on the host against
# the float64 reference through a NumPy stand-in for the kernel).
ENABLED = False


def block_size(spec: ConvSpec) -> int | None:
    """Block FFT size for ``spec``, or None when the partial path does not apply."""
    from .. import fused

    if spec.mode == "circular" or spec.Lk * partial.MIN_RATIO > spec.L:
        return None
    dense = 1 << (linear_length(spec.L, spec.Lk, spec.mode) - 1).bit_length()
    if dense <= fused.SUPPORTED_N[-1]:
        return None  # one dense fused pass
    return partial.block_fft_size(spec.Lk)


def accepts(spec: ConvSpec, dev: DeviceInfo | None) -> str | None:
    from .. import fused

    if not ENABLED:
        return "not enabled (cufftconv.backends.partial.ENABLED) until verified on a GPU"
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

    def _window(self, a: Any, b: int, start: int, count: int, length: int) -> Any:
        """(count, H, length) view of rows a[b] (H, total): block i starts at start + i*hop."""
        row = a[b]
        it = row.itemsize
        view = row[:, start:]
        return self.xp.lib.stride_tricks.as_strided(
            view, shape=(count, self.H, length), strides=(self.hop * it, row.strides[0], it)
        )

    def _launch(self, u: Any, kspec: Any, y: Any, pre: Any | None, post: Any | None) -> None:
        if not self.full_cover:
            y[...] = 0
        for b in range(self.B):
            for g in self.groups:
                self.kernel(
                    self._window(u, b, g.w0, g.count, g.lw),
                    kspec,
                    self._window(y, b, g.t0, g.count, g.lout),
                    L=g.lw,
                    out_offset=g.out_offset,
                    Lout=g.lout,
                    pregate=None if pre is None else self._window(pre, b, g.w0, g.count, g.lw),
                    postgate=None if post is None else self._window(post, b, g.t0, g.count, g.lout),
                )
