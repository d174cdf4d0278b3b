"""Backward pass of :func:`cufftconv.fftconv`: ``fftconv_bwd`` and its executors.

The forward is ``y = postgate * window(conv(pregate * u, k))``: the full linear convolution
(or the circular one of period L) of ``v = pregate * u`` with ``k``, cut to the mode's output
window ``[offset, offset + Lout)``. Every factor enters linearly, so with ``dc = dy *
postgate`` placed at the window inside the full-length signal ``g``:

* ``dv = corr(g, k)[:L]`` (the adjoint of the convolution: multiply by ``conj(rfft(k))``),
  summed over the axes where u was broadcast; ``du = dv * pregate``, ``dpregate = dv * u``;
* ``dk = corr(g, v)[:Lk]`` (multiply by ``conj(rfft(v))``), summed over every axis where k
  was broadcast (in the frequency domain, before the inverse FFT);
* ``dpostgate = dy * window(conv(v, k))``.

An FFT size without wrap-around for the forward is also one for both correlations, so the
backward uses the forward's size. Executors are picked from a small table like the forward's
:mod:`cufftconv.dispatch`: for 16-bit calls the forward kernels take, ``monarch-adjoint``
(:mod:`cufftconv.backends.adjoint`: the fused backward kernel at FFT sizes 256..16384, else
forward kernel calls for du, dpregate and dpostgate, and for dk the 16K backward kernel on
blocks at 32768, the cuFFT adjoint beyond); then the exact cuFFT path (``cupy.fft`` in
float32/float64) and the NumPy float64 path. Other rows register ahead of them with
:func:`register_bwd`.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import numpy as np

from . import dispatch
from .cache import BuildCache
from .device import DeviceInfo, require_cupy
from .dispatch import Route
from .dtypes import from_compute, to_compute
from .interop import Operand, describe, execution_context, to_device, to_host, wrap
from .interop.fastcheck import signature
from .validation import (
    ConvSpec,
    check_mode,
    check_same_place,
    compute_dtype,
    linear_length,
    spec_from_operands,
)

__all__ = [
    "BwdExecutor",
    "CufftBwdExecutor",
    "HostBwdExecutor",
    "bwd_routes",
    "check_cotangent",
    "choose_bwd",
    "clear_bwd_cache",
    "fftconv_bwd",
    "register_bwd",
]

Needs = tuple[bool, bool, bool, bool]
ALL: Needs = (True, True, True, True)


class BwdExecutor(Protocol):
    """A backward path built for one spec; arrays are of its module ``xp`` (bf16 as uint16).

    ``run_bwd`` returns ``(du, dk, dpregate, dpostgate)`` in the storage of u's, k's and the
    gates' dtypes; an entry is None where its gate is absent or ``needs`` says False.
    """

    xp: Any

    def run_bwd(
        self,
        dy: Any,
        u: Any,
        k: Any,
        pregate: Any | None,
        postgate: Any | None,
        *,
        needs: Needs = ALL,
    ) -> tuple[Any, Any, Any, Any]: ...


def wanted(needs: Needs, pregate: Any, postgate: Any) -> Needs:
    """(du, dk, dpregate, dpostgate) to compute: as ``needs`` asks, no gate gradient without
    its gate."""
    return needs[0], needs[1], needs[2] and pregate is not None, needs[3] and postgate is not None


def _sum_to(x: Any, lead: tuple[int, ...]) -> Any:
    """Sum ``x`` (shape ``full_lead + (n,)``) down to ``lead + (n,)`` (undo a broadcast)."""
    full = x.shape[:-1]
    extra = len(full) - len(lead)
    axes = tuple(range(extra)) + tuple(
        extra + i for i, s in enumerate(lead) if s == 1 and full[extra + i] != 1
    )
    if axes:
        x = x.sum(axis=axes, keepdims=True)
    return x.reshape(lead + (x.shape[-1],))


class _FFTBwd:
    """The adjoint through real FFTs of size ``n`` in precision ``compute`` on module ``xp``."""

    xp: Any
    n: int
    compute: str

    def __init__(self, spec: ConvSpec) -> None:
        self.spec = spec
        # Causal outputs never see k[L:]: those taps get a zero gradient.
        self.k_used = min(spec.Lk, spec.L) if spec.mode == "causal" else spec.Lk

    def run_bwd(
        self,
        dy: Any,
        u: Any,
        k: Any,
        pregate: Any | None,
        postgate: Any | None,
        *,
        needs: Needs = ALL,
    ) -> tuple[Any, Any, Any, Any]:
        xp, s, n, c = self.xp, self.spec, self.n, self.compute
        need_u, need_k, need_pre, need_post = wanted(needs, pregate, postgate)
        need_dv = need_u or need_pre
        fft, ifft = xp.fft.rfft, xp.fft.irfft

        x = to_compute(u, s.dtype, c, xp)
        pre = None if pregate is None else to_compute(pregate, s.pregate_dtype, c, xp)
        v = x if pre is None else x * pre
        dyc = to_compute(dy, s.dtype, c, xp)
        dc = dyc if postgate is None else dyc * to_compute(postgate, s.postgate_dtype, c, xp)

        K = fft(to_compute(k[..., : self.k_used], s.k_dtype, c, xp), n) if (
            need_dv or need_post
        ) else None
        V = fft(v, n) if (need_k or need_post) else None

        dpost = None
        if need_post:
            yc = ifft(V * K, n)[..., s.offset : s.offset + s.Lout]
            dpost = from_compute(dyc * yc, s.postgate_dtype, xp)
            del yc
        if not (need_dv or need_k):
            return None, None, None, dpost

        if s.offset:  # place dc at its window inside the full linear convolution
            g = xp.zeros(s.lead_shape + (s.offset + s.Lout,), dtype=c)
            g[..., s.offset :] = dc
            dc = g
        G = fft(dc, n)
        del dc

        dk = None
        if need_k:
            # Reduce over k's broadcast axes in the frequency domain: one inverse FFT per filter.
            dK = _sum_to(G * V.conj(), s.k_shape[:-1])
            dk = ifft(dK, n)[..., : self.k_used]
            del dK
            if self.k_used < s.Lk:
                full = xp.zeros(s.k_shape, dtype=c)
                full[..., : self.k_used] = dk
                dk = full
            dk = from_compute(dk, s.k_dtype, xp)
        del V

        du = dpre = None
        if need_dv:
            G *= K.conj()
            dv = ifft(_sum_to(G, s.u_shape[:-1]), n)[..., : s.L]
            del G
            if need_u:
                du = from_compute(dv if pre is None else dv * pre, s.dtype, xp)
            if need_pre:
                dpre = from_compute(dv * x, s.pregate_dtype, xp)
        return du, dk, dpre, dpost


class CufftBwdExecutor(_FFTBwd):
    """The exact GPU backward: ``cupy.fft`` in float32 (float64 if any operand is float64)."""

    def __init__(self, spec: ConvSpec) -> None:
        from .backends.cufft import fft_size

        super().__init__(spec)
        self.xp = require_cupy()
        self.compute = compute_dtype(
            spec.dtype, spec.k_dtype, spec.pregate_dtype, spec.postgate_dtype
        )
        self.n = fft_size(spec)


class HostBwdExecutor(_FFTBwd):
    """The CPU backward: ``numpy.fft`` (pocketfft) in float64."""

    xp = np

    def __init__(self, spec: ConvSpec) -> None:
        super().__init__(spec)
        self.compute = "float64"
        self.n = spec.L if spec.mode == "circular" else _fast_len(
            linear_length(spec.L, spec.Lk, spec.mode)
        )


def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (pocketfft is fastest on 5-smooth sizes)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


# --------------------------------------------------------------------------- route table


def _needs_gpu(spec: ConvSpec, dev: DeviceInfo | None) -> str | None:
    return None if dev is not None else "no CUDA GPU (or CuPy) available"


def _accepts_adjoint(spec: ConvSpec, dev: DeviceInfo | None) -> str | None:
    from .backends.adjoint import accepts

    return accepts(spec, dev)


def _build_adjoint(spec: ConvSpec, dev: DeviceInfo | None) -> Any:
    from .backends.adjoint import AdjointBwdExecutor

    return AdjointBwdExecutor(spec, dev)


_table_lock = threading.Lock()
_BWD_TABLE: list[Route] = [
    Route(
        "monarch-adjoint",
        "fp16/bf16: all four gradients in one fused backward kernel (FFT 256..16384); "
        "elsewhere du, dpregate, dpostgate through the forward kernels and dk through the "
        "16K backward kernel on blocks (FFT 32768) or cuFFT (longer)",
        _accepts_adjoint,
        _build_adjoint,
    ),
    Route(
        "cufft",
        "exact cuFFT (cupy.fft) adjoint in float32/float64, any shape and mode",
        _needs_gpu,
        lambda spec, dev: CufftBwdExecutor(spec),
    ),
    Route(
        "numpy",
        "numpy.fft adjoint in float64 on the host (no GPU)",
        lambda spec, dev: None,
        lambda spec, dev: HostBwdExecutor(spec),
    ),
]


def register_bwd(route: Route, *, before: str = "cufft") -> None:
    """Insert a backward row ahead of the row named ``before`` (replacing one of the same name).

    ``route.build(spec, dev)`` must return an object with ``xp`` and ``run_bwd`` (see
    :class:`BwdExecutor`); ``route.accepts(spec, dev)`` returns None or why it declines.
    """
    with _table_lock:
        rows = [r for r in _BWD_TABLE if r.name != route.name]
        names = [r.name for r in rows]
        rows.insert(names.index(before) if before in names else 0, route)
        _BWD_TABLE[:] = rows
    clear_bwd_cache()


def bwd_routes() -> tuple[Route, ...]:
    return tuple(_BWD_TABLE)


def choose_bwd(spec: ConvSpec, dev: DeviceInfo | None = None) -> Route:
    """The first backward row that accepts ``spec`` on ``dev``."""
    for route in _BWD_TABLE:
        if route.accepts(spec, dev) is None:
            return route
    raise AssertionError("the NumPy row accepts everything")


_cache: BuildCache[tuple[DeviceInfo | None, str, Any]] = BuildCache(64)


def _executor(spec: ConvSpec) -> tuple[DeviceInfo | None, str, Any]:
    if spec.freq_mask is not None:
        raise ValueError(
            "freq_keep/freq_mask: frequency-sparse convolutions have no backward pass; "
            "fftconv_bwd computes the gradients of the dense convolution only"
        )

    def build() -> tuple[DeviceInfo | None, str, Any]:
        dev = dispatch.target_device(spec)
        route = choose_bwd(spec, dev)
        return dev, route.name, route.build(spec, dev)

    return _cache.get(spec, build)


def clear_bwd_cache() -> None:
    """Drop the cached backward executors."""
    _cache.clear()
    _fast.clear()


# Per-call fast paths by a cheap signature of the operands (see ``_fast_key``); a value of
# None marks a signature that has none. Bounded: a new signature past the bound is not cached.
_fast: dict[tuple, Any] = {}
_FAST_MAX = 256


def _fast_key(
    dy: Any, u: Any, k: Any, pregate: Any, postgate: Any, mode: str, needs: Needs
) -> tuple | None:
    """The forward's :func:`~cufftconv.interop.fastcheck.signature` plus ``needs`` (dy's
    shape and dtype follow from the spec; the fast path checks them)."""
    key = signature(u, k, pregate, postgate, mode)
    return None if key is None else (*key, tuple(needs))


def _fast_bwd(
    dy: Any, u: Any, k: Any, pregate: Any, postgate: Any, mode: str, needs: Needs
) -> tuple | None:
    """The gradients through the signature's fast path, or None where there is none yet or
    it does not take these operands."""
    key = _fast_key(dy, u, k, pregate, postgate, mode, needs)
    fast = _fast.get(key) if key is not None else None
    return None if fast is None else fast(dy, u, k, pregate, postgate)


# --------------------------------------------------------------------------- public API


def check_cotangent(spec: ConvSpec, u: Operand, dy: Operand) -> None:
    """``dy`` must sit with u and have the output's shape and u's dtype."""
    check_same_place(u, dy)
    if dy.shape != spec.out_shape:
        raise ValueError(
            f"dy: got shape {dy.shape}; it must have the output's shape {spec.out_shape} "
            f"(mode={spec.mode!r}, u {spec.u_shape}, k {spec.k_shape})"
        )
    if dy.dtype != spec.dtype:
        raise TypeError(f"dy: got dtype {dy.dtype}; it must have u's dtype {spec.dtype}")


def fftconv_bwd(
    dy: Any,
    u: Any,
    k: Any,
    *,
    mode: str = "causal",
    pregate: Any = None,
    postgate: Any = None,
) -> tuple[Any, Any, Any | None, Any | None]:
    """Gradients of ``y = postgate * conv(pregate * u, k)`` (see :func:`cufftconv.fftconv`).

    Args:
        dy: the gradient of the loss with respect to y: the output's shape
            ``broadcast(u.shape[:-1], k.shape[:-1]) + (Lout,)`` and u's dtype.
        u, k, mode, pregate, postgate: the forward's operands and mode, exactly as given to
            :func:`cufftconv.fftconv` (u ``(..., L)``, k ``(..., Lk)`` broadcasting against u's
            leading axes, gates of u's and the output's shape).

    Returns:
        ``(du, dk, dpregate, dpostgate)``: each of its operand's shape and dtype and kind of
        array (on the operand's device). ``dk`` is summed over every axis where k was
        broadcast against u (e.g. over B for k ``(H, Lk)`` and u ``(B, H, L)``), and ``du``
        and ``dpregate`` over the axes where u was broadcast. Causal mode with ``Lk > L``
        gives ``dk[..., L:] = 0`` (those taps never reach an output). The gate gradients are
        None when the gate is None.

    On a GPU, fp16/bf16 calls whose FFT size is 256..16384 get all four gradients from one
    fused backward kernel (16-bit transforms, fp32 arithmetic and dk accumulation, 16-bit du
    and gate gradients); FFT 32768 gets du, dpregate and dpostgate from the forward kernels
    and dk from the 16384 backward kernel run on blocks; longer ones take du, dpregate and
    dpostgate from the long kernels and dk from ``cupy.fft`` in float32; everything else
    runs ``cupy.fft`` in float32 (float64 when any operand is float64), all on the caller's
    stream; without a GPU it runs ``numpy.fft`` in float64.
    Errors name the argument and are raised before any device work.

    Example:
        >>> import numpy as np, cufftconv
        >>> u = np.random.randn(4, 8, 100).astype(np.float32)
        >>> k = np.random.randn(8, 100).astype(np.float32)
        >>> dy = np.ones((4, 8, 100), np.float32)
        >>> du, dk, _, _ = cufftconv.fftconv_bwd(dy, u, k, mode="causal")
        >>> du.shape, dk.shape, dk.dtype
        ((4, 8, 100), (8, 100), dtype('float32'))
    """
    return _fftconv_bwd(dy, u, k, mode=mode, pregate=pregate, postgate=postgate)


def _fftconv_bwd(
    dy: Any,
    u: Any,
    k: Any,
    *,
    mode: str,
    pregate: Any,
    postgate: Any,
    needs: Needs = ALL,
) -> tuple[Any, Any, Any | None, Any | None]:
    """:func:`fftconv_bwd` computing only the gradients ``needs`` asks for (others None)."""
    grads = _fast_bwd(dy, u, k, pregate, postgate, mode, needs)
    if grads is not None:
        return grads
    key = _fast_key(dy, u, k, pregate, postgate, mode, needs)
    check_mode(mode)
    uop = describe("u", u)
    kop = describe("k", k)
    pre = None if pregate is None else describe("pregate", pregate)
    post = None if postgate is None else describe("postgate", postgate)
    dyop = describe("dy", dy)
    spec = spec_from_operands(uop, kop, pre, post, None, mode)
    check_cotangent(spec, uop, dyop)

    dev, _, ex = _executor(spec)
    on_host = ex.xp is np

    def imp(op: Operand | None) -> Any:
        if op is None:
            return None
        return to_host(op) if on_host else to_device(op)

    ctx = _NullContext() if dev is None else execution_context(uop, dev.index)
    with ctx:
        if key is not None and key not in _fast and dev is not None:
            make = getattr(ex, "fast_bwd", None)
            if make is not None and len(_fast) < _FAST_MAX:
                _fast[key] = make(dev.index, needs)
        grads = ex.run_bwd(imp(dyop), imp(uop), imp(kop), imp(pre), imp(post), needs=needs)
        dtypes = (spec.dtype, spec.k_dtype, spec.pregate_dtype, spec.postgate_dtype)
        return tuple(  # type: ignore[return-value]
            None if g is None else wrap(g, op, dt)
            for g, op, dt in zip(grads, (uop, kop, pre, post), dtypes)
        )


class _NullContext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
