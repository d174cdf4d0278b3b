"""The long-sequence path: FFT sizes 65536 and up in three passes (:mod:`cufftconv.long`).

Same contract as the fused row (16-bit u, k broadcasting as ``(H, Lk)``, gates in u's dtype); it
takes every call whose FFT size is above the fused kernels' 32768 and within the long table,
when its shared memory fits the device.
"""

from __future__ import annotations

from typing import Any

from ..device import DeviceInfo, require_cupy
from ..validation import ConvSpec, linear_length
from .fused import FusedExecutor, batch_channels, family_reason


def fft_size(spec: ConvSpec) -> int | None:
    """The FFT size for ``spec`` in the long table, or None."""
    from .. import long

    if spec.mode == "circular":
        n = spec.L
    else:
        need = linear_length(spec.L, spec.Lk, spec.mode)
        n = 1 << (need - 1).bit_length()
    return n if n in long.SUPPORTED_N else None


def accepts(spec: ConvSpec, dev: DeviceInfo | None) -> str | None:
    from .. import long

    sizes = f"{long.MIN_N}..{long.MAX_N}"
    return family_reason(
        spec, dev, "long", long.DTYPES, fft_size(spec), long.min_shared_bytes, sizes
    )


class LongExecutor(FusedExecutor):
    """Runs the three-pass long kernels for a spec (the fused executor's I/O, another family)."""

    def __init__(self, spec: ConvSpec, dev: DeviceInfo | None) -> None:
        from .. import long

        self.xp = require_cupy()
        self.spec = spec
        self.n = fft_size(spec)
        self.B, self.H = batch_channels(spec)
        self.kernel: Any = long.LongConv(
            self.n,
            spec.dtype,
            pregate=spec.pregate_dtype is not None,
            postgate=spec.postgate_dtype is not None,
            freq_mask=spec.freq_mask,
            max_row=None if dev is None else long.row_limit(self.n, dev.smem_per_block_optin),
        )
        self.k_used = min(spec.Lk, spec.L) if spec.mode == "causal" else spec.Lk
