"""Exceptions of cufftconv and the formatting of kernel-launch failures.

Launch sites wrap the launch in ``try`` / ``except`` and call :func:`launch_error` only when
something was raised, so a successful launch pays nothing for the diagnostics.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class KernelLaunchError(RuntimeError):
    """A cufftconv kernel failed to launch.

    The message names the kernel, its launch geometry (grid, block, dynamic shared memory,
    stream) and its arguments (array shapes, dtypes and pointers); ``__cause__`` holds the
    CuPy / CUDA error. CUDA reports errors of earlier asynchronous work (e.g. an illegal
    address in a previous kernel) at the next launch, so the named kernel is where the error
    surfaced, not necessarily where it happened.
    """


def is_cuda_error(err: BaseException) -> bool:
    """True for CuPy's CUDA driver / runtime errors (what a failed launch raises)."""
    try:
        from cupy_backends.cuda.api.driver import CUDADriverError
        from cupy_backends.cuda.api.runtime import CUDARuntimeError
    except ImportError:  # no CuPy: nothing launched through it
        return False
    return isinstance(err, (CUDADriverError, CUDARuntimeError))


def describe_arg(value: Any, *, pointer: bool = False) -> str:
    """One kernel argument for a message: arrays as dtype, shape, strides and address."""
    data = getattr(value, "data", None)
    ptr = getattr(data, "ptr", None)
    if ptr is not None and hasattr(value, "shape"):
        strides = getattr(value, "strides", None)
        return f"{value.dtype}{tuple(value.shape)} strides={strides} at {int(ptr):#x}"
    if pointer and isinstance(value, int):
        return f"{value:#x}"
    return str(value)


def _stream_text(stream: Any) -> str:
    if stream is None:
        try:
            from cupy.cuda import get_current_stream

            stream = get_current_stream()
        except Exception:  # noqa: BLE001 - the error being reported matters more than this
            return "CuPy's current stream"
    ptr = getattr(stream, "ptr", stream)
    return f"{ptr:#x}" if isinstance(ptr, int) else str(ptr)


def launch_error(
    kernel: str,
    *,
    grid: Any,
    block: Any,
    smem: int,
    stream: Any = None,
    args: Iterable[tuple[str, str]],
    err: BaseException,
) -> KernelLaunchError:
    """A :class:`KernelLaunchError` for a launch of ``kernel`` that raised ``err``.

    ``grid`` and ``block`` are tuples, or text where CuPy picks them (ElementwiseKernel);
    ``args`` holds (name, formatted value) pairs, in the kernel's parameter order. ``stream``
    is a CuPy stream or a pointer; None stands for CuPy's current stream.
    """
    where = _stream_text(stream)
    arg_text = ", ".join(f"{name}={text}" for name, text in args)
    return KernelLaunchError(
        f"cufftconv: launching kernel {kernel} failed: {type(err).__name__}: {err} "
        f"(grid={grid}, block={block}, dynamic shared memory={smem} B, "
        f"stream={where}; arguments: {arg_text})"
    )


__all__ = ["KernelLaunchError", "describe_arg", "is_cuda_error", "launch_error"]
