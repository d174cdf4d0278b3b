"""The dispatch table: one place that maps a convolution signature to the path that runs it.

Each row is a :class:`Route` with a predicate that either accepts a
(:class:`~cufftconv.validation.ConvSpec`, :class:`~cufftconv.device.DeviceInfo`) pair or says
why not. Rows are tried in order; the first that accepts wins. Fused kernels register rows
ahead of the exact cuFFT path; the NumPy reference is the last row and accepts everything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .device import DeviceInfo, device_info, gpu_available
from .validation import ConvSpec

Accepts = Callable[[ConvSpec, "DeviceInfo | None"], "str | None"]
Builder = Callable[[ConvSpec, "DeviceInfo | None"], Any]


@dataclass(frozen=True)
class Route:
    """One row: ``accepts`` returns None when the route takes the spec, else the reason."""

    name: str
    description: str
    accepts: Accepts
    build: Builder


def _needs_gpu(spec: ConvSpec, dev: DeviceInfo | None) -> str | None:
    return None if dev is not None else "no CUDA GPU (or CuPy) available"


def _accepts_fused(spec: ConvSpec, dev: DeviceInfo | None) -> str | None:
    from .backends.fused import accepts

    return accepts(spec, dev)


def _build_fused(spec: ConvSpec, dev: DeviceInfo | None) -> Any:
    from .backends.fused import FusedExecutor

    return FusedExecutor(spec, dev)


def _accepts_folded(spec: ConvSpec, dev: DeviceInfo | None) -> str | None:
    from .backends.folded import accepts

    return accepts(spec, dev)


def _build_folded(spec: ConvSpec, dev: DeviceInfo | None) -> Any:
    from .backends.folded import FoldedExecutor

    return FoldedExecutor(spec, dev)


def _accepts_partial(spec: ConvSpec, dev: DeviceInfo | None) -> str | None:
    from .backends.partial import accepts

    return accepts(spec, dev)


def _build_partial(spec: ConvSpec, dev: DeviceInfo | None) -> Any:
    from .backends.partial import PartialExecutor

    return PartialExecutor(spec, dev)


def _accepts_long(spec: ConvSpec, dev: DeviceInfo | None) -> str | None:
    from .backends.long import accepts

    return accepts(spec, dev)


def _build_long(spec: ConvSpec, dev: DeviceInfo | None) -> Any:
    from .backends.long import LongExecutor

    return LongExecutor(spec, dev)


def _build_cufft(spec: ConvSpec, dev: DeviceInfo | None) -> Any:
    from .backends.cufft import CufftExecutor

    return CufftExecutor(spec)


def _build_host(spec: ConvSpec, dev: DeviceInfo | None) -> Any:
    from .backends.host import HostExecutor

    return HostExecutor(spec)


_lock = threading.Lock()
_TABLE: list[Route] = [
    Route(
        "fused-folded",
        "frequency-sparse masks keeping f % F == 0 (F = 4, 8, 16): fold, the dense fused "
        "kernel at N / F, tile",
        _accepts_folded,
        _build_folded,
    ),
    Route(
        "fused-monarch",
        "fused Monarch FFT conv on tensor cores (fp16/bf16, FFT size 256..32768)",
        _accepts_fused,
        _build_fused,
    ),
    Route(
        "partial-blocked",
        "overlap-save blocks of the fused kernel for short filters (Lk <= L/4, long L)",
        _accepts_partial,
        _build_partial,
    ),
    Route(
        "long-monarch",
        "three-pass long FFT conv (fp16/bf16, FFT size 65536..2**24), fp32 workspace chunks",
        _accepts_long,
        _build_long,
    ),
    Route(
        "cufft",
        "exact cuFFT (cupy.fft) rfft-multiply-irfft in float32/float64, any shape and mode",
        _needs_gpu,
        _build_cufft,
    ),
    Route(
        "numpy-reference",
        "NumPy Monarch reference in float64 on the host (no GPU)",
        lambda spec, dev: None,
        _build_host,
    ),
]


def register(route: Route, *, before: str = "cufft") -> None:
    """Insert ``route`` ahead of the row named ``before`` (replacing a row of the same name)."""
    with _lock:
        rows = [r for r in _TABLE if r.name != route.name]
        names = [r.name for r in rows]
        rows.insert(names.index(before) if before in names else 0, route)
        _TABLE[:] = rows


def routes() -> tuple[Route, ...]:
    return tuple(_TABLE)


def target_device(spec: ConvSpec) -> DeviceInfo | None:
    """The GPU a spec runs on: its own, or the current one for host arrays when a GPU exists."""
    if spec.device is not None:
        return device_info(spec.device)
    if gpu_available():
        from .device import require_cupy

        return device_info(int(require_cupy().cuda.Device().id))
    return None


def choose(spec: ConvSpec, dev: DeviceInfo | None = None, *, path: str | None = None) -> Route:
    """The first route that accepts ``spec`` on ``dev`` (or the row named ``path``)."""
    if path is not None:
        rows = {r.name: r for r in _TABLE}
        if path not in rows:
            raise ValueError(f"path: got {path!r}; allowed: None or one of {', '.join(rows)}")
        reason = rows[path].accepts(spec, dev)
        if reason is not None:
            raise ValueError(f"path: {path!r} cannot run this convolution: {reason}")
        return rows[path]
    for route in _TABLE:
        if route.accepts(spec, dev) is None:
            return route
    raise AssertionError("the NumPy reference row accepts everything")


def explain(spec: ConvSpec, dev: DeviceInfo | None = None) -> list[tuple[str, str | None]]:
    """Every row with None (accepted) or the reason it declines; for ``python -m cufftconv info``."""
    return [(route.name, route.accepts(spec, dev)) for route in _TABLE]
