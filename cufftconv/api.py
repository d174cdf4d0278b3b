"""The functional entry point ``fftconv``: validate, fetch a cached plan, run it."""

from __future__ import annotations

from typing import Any

from .cache import BuildCache
from .interop import describe
from .plan import FFTConv
from .validation import ConvSpec, check_mode, spec_from_operands

_plans: BuildCache[FFTConv] = BuildCache(64)


def _cached_plan(spec: ConvSpec) -> FFTConv:
    return _plans.get(spec, lambda: FFTConv._from_spec(spec))


def clear_plan_cache() -> None:
    """Drop the plans cached by :func:`fftconv` and ``fftconv_bwd`` (compiled kernels stay)."""
    _plans.clear()
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
    """
    check_mode(mode)
    uop = describe("u", u)
    kop = describe("k", k)
    pre = None if pregate is None else describe("pregate", pregate)
    post = None if postgate is None else describe("postgate", postgate)
    oop = None if out is None else describe("out", out)
    spec = spec_from_operands(uop, kop, pre, post, oop, mode)
    return _cached_plan(spec)._execute(uop, kop, pre, post, oop)
