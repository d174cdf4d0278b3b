"""The exact GPU path: cuFFT (through CuPy) at float32 or float64.

It covers the whole contract and stays as the fallback for what the fused kernels do not
cover (fp32/fp64 input, odd shapes) and as a baseline.
"""

from __future__ import annotations

import functools
import math
import threading
from typing import Any

import numpy as np

from ..device import require_cupy
from ..dtypes import storage_dtype, to_compute
from ..errors import KernelLaunchError, describe_arg, is_cuda_error, launch_error
from ..freqmask import spectrum_mask
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


def _launch(op: str, *args: Any) -> Any:
    """Run element-wise stage ``op``; a failed launch raises KernelLaunchError."""
    try:
        return _elementwise(op)(*args)
    except Exception as err:  # the message is built only on failure
        if is_cuda_error(err):
            raise _launch_error(op, args, err) from err
        raise


def _launch_error(op: str, args: tuple, err: BaseException) -> KernelLaunchError:
    ins, outs, _ = _OPS[op]
    names = [p.split()[-1] for p in f"{ins}, {outs}".split(",")]
    size = max((a.size for a in args), default=0)
    return launch_error(
        f"cufftconv_{op} (ElementwiseKernel)",
        grid=f"chosen by CuPy for {size} elements",
        block="chosen by CuPy",
        smem=0,
        args=[(nm, describe_arg(a)) for nm, a in zip(names, args)],
        err=err,
    )


def fft_size(spec: ConvSpec) -> int:
    """cuFFT size: exactly L for circular mode, else a fast size without wrap-around; for a
    frequency-sparse spec exactly ``spec.freq_n`` (the mask is defined on that FFT)."""
    if spec.freq_mask is not None:
        return int(spec.freq_n)  # type: ignore[arg-type]
    if spec.mode == "circular":
        return spec.L
    import cupyx.scipy.fft as cfft

    return int(cfft.next_fast_len(linear_length(spec.L, spec.Lk, spec.mode), real=True))


class CufftExecutor:
    """rfft -> multiply -> irfft on cached cuFFT plans, gates applied in the compute precision.

    The input is widened straight into a zero-padded buffer and the output window is read
    straight out of the inverse transform, so the only passes over the data are the two FFTs,
    the spectrum multiply and one element-wise pass on each side. The 1/n of the inverse is
    folded into the filter spectrum, and so is a frequency mask (``spec.freq_mask``: the
    half spectrum's frequency f is kept iff ``freq_mask[f % 16]``, FFT size ``spec.freq_n``).
    """

    def __init__(self, spec: ConvSpec) -> None:
        cp = self.xp = require_cupy()
        self.spec = spec
        self.compute = compute_dtype(
            spec.dtype, spec.k_dtype, spec.pregate_dtype, spec.postgate_dtype
        )
        self.n = fft_size(spec)
        self.nf = self.n // 2 + 1
        # Causal outputs never see k[L:]; dropping it keeps the FFT size at ~2L.
        self.k_used = min(spec.Lk, spec.L) if spec.mode == "causal" else spec.Lk
        cufft = cp.cuda.cufft
        single = self.compute == "float32"
        self._types = (
            cufft.CUFFT_R2C if single else cufft.CUFFT_D2Z,
            cufft.CUFFT_C2R if single else cufft.CUFFT_Z2D,
        )
        self._spectral = cp.complex64 if single else cp.complex128
        # What the filter spectrum is scaled by: 1/n, times the frequency mask if any.
        self._kscale: Any = 1.0 / self.n
        if spec.freq_mask is not None:
            weights = spectrum_mask(spec.freq_mask, self.n)[: self.nf] / self.n
            self._kscale = cp.asarray(weights.astype(self.compute))
        # cuFFT plans bind a stream per call and own a work area: one set per thread.
        self._plans: dict[tuple[int, int, int, int], Any] = {}

    def _plan(self, kind: int, batch: int) -> Any:
        cp = self.xp
        key = (threading.get_ident(), cp.cuda.runtime.getDevice(), kind, batch)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = cp.cuda.cufft.Plan1d(self.n, self._types[kind], batch)
        return plan

    def spectrum(self, k: Any) -> Any:
        kc = to_compute(k[..., : self.k_used], self.spec.k_dtype, self.compute, self.xp)
        spec_k = self.xp.fft.rfft(kc, self.n)
        spec_k *= self._kscale
        return spec_k

    def run(
        self, u: Any, kspec: Any, pregate: Any | None, postgate: Any | None, out: Any = None
    ) -> Any:
        xp, s, cd, n = self.xp, self.spec, self.compute, self.n
        lead = u.shape[:-1]
        if n > s.L:
            x = xp.zeros(lead + (n,), cd)
            dst = x[..., : s.L]
        else:
            x = dst = xp.empty(lead + (n,), cd)
        if pregate is None:
            _launch("widen", u, dst)
        else:
            _launch("widen_mul", u, pregate, dst)
        spec_u = xp.empty(lead + (self.nf,), self._spectral)
        self._plan(0, math.prod(lead)).fft(x, spec_u, xp.cuda.cufft.CUFFT_FORWARD)
        del x, dst
        if np.broadcast_shapes(lead, kspec.shape[:-1]) == lead:
            spec_u *= kspec
        else:  # k broadcasts u's leading axes
            spec_u = spec_u * kspec
        full_lead = spec_u.shape[:-1]
        y = xp.empty(full_lead + (n,), cd)
        self._plan(1, math.prod(full_lead)).fft(spec_u, y, xp.cuda.cufft.CUFFT_INVERSE)
        del spec_u
        y = y[..., s.offset : s.offset + s.Lout]
        if out is None:
            out = xp.empty(s.out_shape, storage_dtype(s.dtype))
        if postgate is None:
            return _launch("narrow", y, out)
        return _launch("narrow_mul", y, postgate, out)
