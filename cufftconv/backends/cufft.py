"""The exact GPU path: cuFFT through ``cupy.fft`` at float32 or float64.

It covers the whole contract and stays as the fallback for what the fused kernels do not
cover (fp32/fp64 input, odd shapes) and as a baseline.
"""

from __future__ import annotations

import functools
from typing import Any

from ..device import require_cupy
from ..dtypes import storage_dtype, to_compute
from ..sources import read_source
from ..validation import ConvSpec, compute_dtype, linear_length

# Element-wise stages around the FFTs, one pass each: widen (and pregate) before the forward
# FFT, postgate and round to the storage type after the inverse. The device functions live in
# kernels/convert.cuh; CuPy handles strides and broadcasting.
_OPS = {
    "widen": ("X x", "C y", "y = cfc_widen<C>(x)"),
    "widen_mul": ("X x, G g", "C y", "y = cfc_widen<C>(x) * cfc_widen<C>(g)"),
    "narrow": ("C x", "O y", "y = cfc_narrow<O>(x)"),
    "narrow_mul": ("C x, G g", "O y", "y = cfc_narrow<O>(x * cfc_widen<C>(g))"),
}


@functools.cache
def _elementwise(op: str):
    ins, outs, body = _OPS[op]
    return require_cupy().ElementwiseKernel(
        ins, outs, body, f"cufftconv_{op}", preamble=read_source("convert.cuh")
    )


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

    def run(
        self, u: Any, kspec: Any, pregate: Any | None, postgate: Any | None, out: Any = None
    ) -> Any:
        xp, s, cd = self.xp, self.spec, self.compute
        x = xp.empty(u.shape, cd)
        if pregate is None:
            _elementwise("widen")(u, x)
        else:
            _elementwise("widen_mul")(u, pregate, x)
        spec_u = xp.fft.rfft(x, self.n)
        del x
        spec_u *= kspec
        y = xp.fft.irfft(spec_u, self.n)[..., s.offset : s.offset + s.Lout]
        del spec_u
        if out is None:
            out = xp.empty(s.out_shape, storage_dtype(s.dtype))
        if postgate is None:
            return _elementwise("narrow")(y, out)
        return _elementwise("narrow_mul")(y, postgate, out)
