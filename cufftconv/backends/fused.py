"""The fused Monarch tensor-core path: FFT -> filter multiply -> inverse FFT (+ gates) in one kernel.

This module is the dispatch row; the kernel family and its launch live in
:mod:`cufftconv.fused`. The row takes 16-bit inputs whose FFT size falls in the family's
table and whose filter broadcasts as ``(H, Lk)`` against ``u (B, H, L)``, and whose kernel fits
the device's shared memory. Everything else falls through to the exact cuFFT row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ..device import DeviceInfo, require_cupy
from ..dtypes import to_compute
from ..validation import ConvSpec, linear_length

MIN_N = 256  # smaller problems are zero padded up to the smallest kernel


def fft_size(spec: ConvSpec) -> int | None:
    """The kernel's FFT size for ``spec``, or None when no power of two fits the mode."""
    from .. import fused

    if spec.mode == "circular":
        n = spec.L  # the period is the FFT size: only exact powers of two
        return n if n in fused.SUPPORTED_N else None
    need = linear_length(spec.L, spec.Lk, spec.mode)
    n = max(MIN_N, 1 << (need - 1).bit_length())
    return n if n in fused.SUPPORTED_N else None


def batch_channels(spec: ConvSpec) -> tuple[int, int] | None:
    """(B, H) of the ``u (B, H, L)``, ``k (H, Lk)`` view of the spec, or None if k broadcasts
    in another way (e.g. varies along u's batch axes or broadcasts u itself)."""
    u_lead, k_lead = spec.u_shape[:-1], spec.k_shape[:-1]
    if spec.lead_shape != u_lead:
        return None
    trimmed = k_lead
    while trimmed and trimmed[0] == 1:
        trimmed = trimmed[1:]
    if trimmed and u_lead[len(u_lead) - len(trimmed) :] != trimmed:
        return None
    channels = math.prod(trimmed)
    return math.prod(u_lead) // channels, channels


def family_reason(
    spec: ConvSpec,
    dev: DeviceInfo | None,
    family: str,
    dtypes: tuple[str, ...],
    n: int | None,
    smem: Callable[[int], int],
    sizes: str,
) -> str | None:
    """The checks every 16-bit kernel-family row makes: None when ``spec`` fits, else why not.

    ``n`` is the family's FFT size for the spec (None: none in its table) and ``smem(n)`` the
    shared memory its largest block needs; ``sizes`` describes the table for the message.
    """
    if dev is None:
        return "no CUDA GPU"
    if spec.dtype not in dtypes:
        return f"u is {spec.dtype}; the {family} kernels take {' or '.join(dtypes)}"
    for gdt in (spec.pregate_dtype, spec.postgate_dtype):
        if gdt is not None and gdt != spec.dtype:
            return f"a gate is {gdt}, not u's dtype {spec.dtype}"
    if n is None:
        return (
            f"no {family} kernel for mode={spec.mode!r} with L={spec.L}, Lk={spec.Lk} "
            f"(FFT sizes {sizes}; circular needs L itself there)"
        )
    if spec.freq_mask is not None and spec.freq_n != n:
        return (
            f"frequency-sparse FFT size {spec.freq_n} is not the {family} kernel's size {n}"
        )
    if batch_channels(spec) is None:
        return f"k {spec.k_shape} does not broadcast as (H, Lk) against u {spec.u_shape}"
    need = smem(n)
    if need > dev.smem_per_block_optin:
        return f"needs {need} B of shared memory; {dev.name} allows {dev.smem_per_block_optin}"
    return None


def accepts(spec: ConvSpec, dev: DeviceInfo | None) -> str | None:
    from .. import fused

    sizes = f"{fused.SUPPORTED_N[0]}..{fused.SUPPORTED_N[-1]}"
    return family_reason(
        spec,
        dev,
        "fused",
        fused.DTYPES,
        fft_size(spec),
        lambda n: fused.shared_bytes(n, spec.dtype),
        sizes,
    )


class FusedExecutor:
    """Runs one instantiation of the fused kernel family for a spec."""

    def __init__(self, spec: ConvSpec, dev: DeviceInfo | None) -> None:
        from .. import fused

        self.xp = require_cupy()
        self.spec = spec
        self.n = fft_size(spec)
        self.B, self.H = batch_channels(spec)
        self.kernel = fused.FusedConv(
            self.n,
            spec.dtype,
            pregate=spec.pregate_dtype is not None,
            postgate=spec.postgate_dtype is not None,
            freq_mask=spec.freq_mask,
        )
        self.k_used = min(spec.Lk, spec.L) if spec.mode == "causal" else spec.Lk

    def _rows(self, a: Any, length: int) -> Any:
        """``a`` as (B, H, length) with a unit stride along the sequence."""
        a = a.reshape(self.B, self.H, length)
        if a.strides[-1] != a.itemsize:
            a = self.xp.ascontiguousarray(a)
        return a

    def spectrum(self, k: Any) -> Any:
        kc = to_compute(k[..., : self.k_used], self.spec.k_dtype, "float32", self.xp)
        return self.kernel.filter_spectrum(kc.reshape(self.H, kc.shape[-1]))

    def run(
        self, u: Any, kspec: Any, pregate: Any | None, postgate: Any | None, out: Any = None
    ) -> Any:
        s = self.spec
        rows = (self.B, self.H, s.Lout)
        direct = out is not None and out.flags.c_contiguous  # reshape is then a view
        y = out.reshape(rows) if direct else self.xp.empty(rows, dtype=u.dtype)
        self._launch(
            self._rows(u, s.L),
            kspec,
            y,
            None if pregate is None else self._rows(pregate, s.L),
            None if postgate is None else self._rows(postgate, s.Lout),
        )
        if direct:
            return out
        y = y.reshape(s.out_shape)
        if out is None:
            return y
        out[...] = y
        return out

    def _launch(self, u: Any, kspec: Any, y: Any, pre: Any | None, post: Any | None) -> None:
        """The kernel launches on (B, H, length) operands; y is written in place."""
        s = self.spec
        self.kernel(
            u, kspec, y, L=s.L, out_offset=s.offset, Lout=s.Lout, pregate=pre, postgate=post
        )


def fast_call(ex: FusedExecutor, kspec: Any, device: int) -> Any:
    """A per-call fast path for a plan holding its filter: C-contiguous PyTorch or CuPy
    operands of exactly the planned shape and dtype go straight to a pre-resolved launch.

    Returns ``fast(u, pregate, postgate, out) -> y or None``; None means "take the general
    path" (which also raises the proper errors for anything invalid).
    """
    fast = _fast(ex, device, kspec)
    return lambda u, pre, post, out: fast(u, None, pre, post, out)


def fast_call_k(ex: FusedExecutor, device: int) -> Any:
    """The per-call fast path of :func:`cufftconv.fftconv` for a dense fused spec, with k
    given on each call: k's spectrum (:class:`cufftconv.fused.SpectrumLauncher`: padding,
    rfft, ordering) and the kernel, pre-resolved. ``fast(u, k, pregate, postgate) -> y or
    None`` (None: take the general path)."""
    if ex.spec.freq_mask is not None:
        return None
    fast = _fast(ex, device, None)
    return lambda u, k, pre, post: fast(u, k, pre, post, None)


def _fast(ex: FusedExecutor, device: int, kspec: Any) -> Any:
    """``fast(u, k, pre, post, out)`` for :func:`fast_call` (``kspec`` held, k None) and
    :func:`fast_call_k` (kspec None, k's spectrum made on each call)."""
    from .. import fused
    from ..interop.fastcheck import fast_kinds

    cp, s = ex.xp, ex.spec
    launch = ex.kernel.launcher(ex.B, ex.H, s.L, s.offset, s.Lout)
    u_shape, out_shape, k_shape = s.u_shape, s.out_shape, s.k_shape
    need_pre, need_post = s.pregate_dtype is not None, s.postgate_dtype is not None
    kinds = fast_kinds(cp, device, s.dtype, s.k_dtype)
    spectra = ws_bytes = None
    if kspec is None:
        spectra = fused.SpectrumLauncher(ex.n, ex.H, s.Lk, ex.k_used, s.k_dtype, (None,))
        (_, _, o_kf), ws_bytes = fused._layout(spectra.ws_sizes)
    get_device = cp.cuda.runtime.getDevice

    def run(kind: Any, u_ptr: int, k_ptr: int, pre_ptr: int, y_ptr: int, post_ptr: int) -> None:
        stream = kind.stream()
        if spectra is None:
            launch(u_ptr, pre_ptr, kspec, y_ptr, post_ptr, stream)
            return
        hold, ws = kind.workspace(ws_bytes)
        kf = ws + o_kf
        spectra(stream, k_ptr, ws, (kf,))
        launch(u_ptr, pre_ptr, kf, y_ptr, post_ptr, stream)
        del hold  # free for reuse in stream order

    def fast(u: Any, k: Any, pre: Any, post: Any, out: Any) -> Any:
        if (pre is not None) != need_pre or (post is not None) != need_post:
            return None
        kind = kinds.get(type(u))
        if kind is None or get_device() != device:
            return None
        ok, dt = kind.ok, kind.dtype
        if not ok(u, u_shape, dt):
            return None
        if (pre is not None and not ok(pre, u_shape, dt)) or (
            post is not None and not ok(post, out_shape, dt)
        ):
            return None
        if spectra is not None and (kind.k_dtype is None or not ok(k, k_shape, kind.k_dtype)):
            return None
        if out is None:
            y = kind.empty(out_shape)
        elif ok(out, out_shape, dt):
            y = out
        else:
            return None
        addr = kind.addr
        u_ptr, y_ptr = addr(u), addr(y)
        pre_ptr = u_ptr if pre is None else addr(pre)
        post_ptr = y_ptr if post is None else addr(post)
        run(kind, u_ptr, 0 if k is None else addr(k), pre_ptr, y_ptr, post_ptr)
        return y

    return fast
