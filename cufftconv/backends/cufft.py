"""The exact GPU path: cuFFT through ``cupy.fft`` at float32 or float64.

It covers the whole contract and stays as the fallback for what the fused kernels do not
cover (fp32/fp64 input, odd shapes) and as a baseline.
"""

from __future__ import annotations

from typing import Any

from ..device import require_cupy
from ..dtypes import from_compute, to_compute
from ..validation import ConvSpec, compute_dtype, linear_length


def fft_size(spec: ConvSpec) -> int:
    """cuFFT size: exactly L for circular mode, else a fast size without wrap-around."""
    if spec.mode == "circular":
        return spec.L
    import cupyx.scipy.fft as cfft

    return int(cfft.next_fast_len(linear_length(spec.L, spec.Lk, spec.mode), real=True))


class CufftExecutor:
    """rfft -> multiply -> irfft, gates applied in the compute precision."""

    def __init__(self, spec: ConvSpec) -> None:
        self.xp = require_cupy()
        self.spec = spec
        self.compute = compute_dtype(
            spec.dtype, spec.k_dtype, spec.pregate_dtype, spec.postgate_dtype
        )
        self.n = fft_size(spec)
        # Causal outputs never see k[L:]; dropping it keeps the FFT size at ~2L.
        self.k_used = min(spec.Lk, spec.L) if spec.mode == "causal" else spec.Lk

    def spectrum(self, k: Any) -> Any:
        kc = to_compute(k[..., : self.k_used], self.spec.k_dtype, self.compute, self.xp)
        return self.xp.fft.rfft(kc, self.n)

    def run(self, u: Any, kspec: Any, pregate: Any | None, postgate: Any | None) -> Any:
        xp, s = self.xp, self.spec
        x = to_compute(u, s.dtype, self.compute, xp)
        if pregate is not None:
            x = x * to_compute(pregate, s.pregate_dtype, self.compute, xp)
        spec_u = xp.fft.rfft(x, self.n)
        spec_u *= kspec
        y = xp.fft.irfft(spec_u, self.n)[..., s.offset : s.offset + s.Lout]
        if postgate is not None:
            y = y * to_compute(postgate, s.postgate_dtype, self.compute, xp)
        return from_compute(y, s.dtype, xp)
