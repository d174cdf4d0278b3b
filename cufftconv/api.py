"""The functional entry point ``fftconv``: validate, fetch a cached plan, run it."""

from __future__ import annotations

from typing import Any

from . import freqmask
from .cache import BuildCache
from .interop import describe
from .interop.fastcheck import signature
from .plan import FFTConv
from .validation import ConvSpec, check_mode, spec_from_operands

_plans: BuildCache[FFTConv] = BuildCache(64)


def _cached_plan(spec: ConvSpec) -> FFTConv:
    return _plans.get(spec, lambda: FFTConv._from_spec(spec))


# Per-call fast paths of dense calls by a cheap signature of the operands (``_fast_key``);
# None marks a signature without one. Bounded: past the bound a new signature is not cached.
_fast: dict[tuple, Any] = {}
_FAST_MAX = 256


_fast_key = signature  # a dense call's key


def _fast_fftconv(u: Any, k: Any, pregate: Any, postgate: Any, mode: str) -> Any:
    """A dense call through its signature's fast path, or None where there is none yet or
    it does not take these operands (then the general path runs, and raises what it must)."""
    key = _fast_key(u, k, pregate, postgate, mode)
    fast = _fast.get(key) if key is not None else None
    return None if fast is None else fast(u, k, pregate, postgate)


def clear_plan_cache() -> None:
    """Drop the plans cached by :func:`fftconv` and ``fftconv_bwd`` (compiled kernels stay)."""
    _plans.clear()
    _fast.clear()
    from .grad import clear_bwd_cache

    clear_bwd_cache()


def fftconv(
    u: Any,
    k: Any,
    *,
    mode: str = "causal",
    pregate: Any = None,
    postgate: Any = None,
    out: Any = None,
    freq_keep: float | None = None,
    freq_mask: Any = None,
) -> Any:
    """Long convolution ``y = postgate * conv(pregate * u, k)`` along the last axis.

    Args:
        u: input of shape ``(..., L)``, e.g. ``(B, H, L)``; float16, bfloat16, float32 or
            float64. Any array with ``__dlpack__`` (PyTorch, JAX, CuPy) is taken zero-copy on
            its own GPU; NumPy arrays are computed on the GPU when there is one, else by the
            NumPy reference.
        k: filter of shape ``(..., Lk)`` whose leading axes broadcast against u's, e.g.
            ``(H, Lk)``; any real float dtype; any ``Lk >= 1``.
        mode: "causal" (default): ``y[..., t] = sum_{s<=min(t, Lk-1)} k[..., s] u[..., t-s]``,
            ``t < L``. "full", "same", "valid": ``scipy.signal.fftconvolve(u, k, mode,
            axes=-1)`` after broadcasting. "circular": period ``L`` (needs ``Lk <= L``).
        pregate: optional, u's shape: multiplies u before the convolution.
        postgate: optional, the output's shape: multiplies the result.
        out: optional output array (the output's shape, u's dtype and kind of array).
        freq_keep: frequency-sparse convolution keeping about this fraction of the
            spectrum, a float in (0, 1]: ``m = round(16 * freq_keep)`` residue classes (at
            least 1, an odd m > 1 rounded up to stay symmetric), the first m of
            ``cufftconv.freqmask.KEEP_ORDER = (0, 8, 4, 12, 2, 14, ...)``; 1.0 is dense.
        freq_mask: frequency-sparse convolution with explicit classes: 16 booleans
            (Hermitian-symmetric, ``freq_mask[r] == freq_mask[(16 - r) % 16]``, at least
            one True); all True is dense. Give at most one of freq_keep and freq_mask.

    Frequency-sparse convolutions (``freq_keep`` or ``freq_mask``): with ``N`` the FFT size
    ``cufftconv.freqmask.fft_size(L, Lk, mode)`` (the power of two ``>= L + Lk - 1``, or
    ``>= L + min(Lk, L) - 1`` for causal, at least 16; ``N = L`` for circular, which then
    needs ``L % 16 == 0``), the result is ``y = postgate * crop(IFFT_N(FFT_N(pregate * u)
    * FFT_N(k) * M))`` with ``M[f] = mask[f % 16]`` for ``f = 0 .. N-1`` (causal mode cuts
    k to its first L taps first), and crop the same output window as the dense mode. For
    example ``freq_keep=0.25`` keeps the classes {0, 4, 8, 12}: the frequencies with
    ``f % 4 == 0``, a quarter of the spectrum. The mask is part of the plan.

    Returns:
        ``y`` of shape ``broadcast(u.shape[:-1], k.shape[:-1]) + (Lout,)`` with ``Lout = L``
        for causal, same and circular, ``L + Lk - 1`` for full and ``|L - Lk| + 1`` for
        valid; u's dtype, on u's device, as u's kind of array (``out`` if given). fp16/bf16
        inputs accumulate in float32; fp32 and fp64 inputs are computed at their own precision.

    The FFT size is chosen inside. Calls with the same signature reuse a cached plan; use
    :class:`FFTConv` to also keep the filter spectrum between calls.

    Example:
        >>> import numpy as np, cufftconv
        >>> u = np.random.randn(4, 8, 1000).astype(np.float32)
        >>> k = np.random.randn(8, 1000).astype(np.float32)
        >>> cufftconv.fftconv(u, k, mode="causal").shape
        (4, 8, 1000)
        >>> y = cufftconv.fftconv(u, k, mode="causal", freq_keep=0.25)  # N = 2048
        >>> y.shape
        (4, 8, 1000)
    """
    dense = freq_keep is None and freq_mask is None and out is None
    if dense:
        y = _fast_fftconv(u, k, pregate, postgate, mode)
        if y is not None:
            return y
    key = _fast_key(u, k, pregate, postgate, mode) if dense else None
    mask = freqmask.resolve(freq_keep, freq_mask)
    check_mode(mode)
    uop = describe("u", u)
    kop = describe("k", k)
    pre = None if pregate is None else describe("pregate", pregate)
    post = None if postgate is None else describe("postgate", postgate)
    oop = None if out is None else describe("out", out)
    spec = spec_from_operands(uop, kop, pre, post, oop, mode, mask)
    plan = _cached_plan(spec)
    y = plan._execute(uop, kop, pre, post, oop)
    if key is not None and key not in _fast and len(_fast) < _FAST_MAX:
        _fast[key] = plan._fast_with_k()
    return y
