"""Cheap operand checks, stream lookup and allocation for the per-call fast paths.

A fast path takes only C-contiguous PyTorch or CuPy operands of exactly the planned shapes
and dtypes on its device; anything else returns to the general path (which validates and
raises). These closures cost well under a microsecond per operand.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NamedTuple

from .streams import _external_stream, torch_stream_ptr


def signature(u: Any, k: Any, pregate: Any, postgate: Any, mode: str) -> tuple | None:
    """What fixes a call's spec for PyTorch and CuPy operands, as a key for the fast-path
    caches (the fast path checks the rest: the other operands' shapes, every dtype, device
    and layout); None for other kinds of arrays."""
    t = type(u)
    if t.__name__ not in ("Tensor", "ndarray") or type(k) is not t:
        return None
    return (t, u.shape, u.dtype, k.shape, k.dtype, pregate is None, postgate is None, mode)


def cupy_dtype(cp: Any, name: str) -> Any:
    """CuPy's dtype called ``name``, or None for bfloat16 (CuPy has none)."""
    return None if name == "bfloat16" else cp.dtype(name)


class Kind(NamedTuple):
    """One kind of array a fast path takes, with the planned dtypes in that kind's terms."""

    ok: Callable[[Any, tuple, Any], bool]  # (array, shape, dtype): usable as is
    dtype: Any  # u's dtype
    k_dtype: Any  # k's dtype (None: this kind cannot hold it, e.g. CuPy bfloat16)
    addr: Callable[[Any], int]  # device pointer
    empty: Callable[[tuple], Any]  # new C-contiguous array of u's dtype on the device
    empty_like: Callable[[Any], Any]  # (of a C-contiguous operand: so is the result)
    stream: Callable[[], Any]  # the kind's current stream, as a CuPy stream
    # (holder, pointer) of n bytes of scratch, ordered on the kind's current stream: it is
    # free for reuse once the holder is dropped and the work queued on that stream is done
    workspace: Callable[[int], tuple[Any, int]]


def fast_kinds(cp: Any, device: int, dtype: str, k_dtype: str) -> dict[type, Kind]:
    """``{array type: Kind}`` on GPU ``device`` for PyTorch tensors (when torch is imported)
    and CuPy arrays whose u dtype is ``dtype`` and k dtype ``k_dtype`` (names): a fast path
    looks up ``type(u)`` and runs the same checks for either kind."""
    kinds: dict[type, Kind] = {}
    torch = sys.modules.get("torch")
    if torch is not None:
        t_dtype = getattr(torch, dtype)
        t_dev = torch.device("cuda", device)
        u8 = torch.uint8
        streams: dict[int, Any] = {}

        def torch_ok(a: Any, shape: tuple, dt: Any) -> bool:
            return (
                type(a) is torch.Tensor
                and a.shape == shape
                and a.dtype is dt
                and a.get_device() == device
                and a.is_contiguous()
            )

        def torch_stream() -> Any:  # PyTorch's current stream on the device, as CuPy's
            ptr = torch_stream_ptr(device)
            stream = streams.get(ptr)
            if stream is None:
                stream = streams[ptr] = (
                    cp.cuda.Stream.null if ptr == 0 else _external_stream(ptr, device)
                )
            return stream

        def torch_ws(nbytes: int) -> tuple[Any, int]:
            t = torch.empty(nbytes, dtype=u8, device=t_dev)
            return t, t.data_ptr()

        kinds[torch.Tensor] = Kind(
            torch_ok, t_dtype, getattr(torch, k_dtype), torch.Tensor.data_ptr,
            lambda shape: torch.empty(shape, dtype=t_dtype, device=t_dev), torch.empty_like,
            torch_stream, torch_ws,
        )
    c_dtype = cupy_dtype(cp, dtype)
    if c_dtype is not None:
        alloc = cp.cuda.alloc  # CuPy's current allocator, on the current stream

        def cupy_ok(a: Any, shape: tuple, dt: Any) -> bool:
            return (
                type(a) is cp.ndarray
                and a.shape == shape
                and a.dtype == dt
                and a.data.device_id == device
                and a.flags.c_contiguous
            )

        def cupy_ws(nbytes: int) -> tuple[Any, int]:
            m = alloc(nbytes)
            return m, m.ptr

        kinds[cp.ndarray] = Kind(
            cupy_ok, c_dtype, cupy_dtype(cp, k_dtype), lambda a: a.data.ptr,
            lambda shape: cp.empty(shape, dtype=c_dtype), cp.empty_like,
            cp.cuda.get_current_stream, cupy_ws,
        )
    return kinds


__all__ = ["Kind", "cupy_dtype", "fast_kinds", "signature"]
