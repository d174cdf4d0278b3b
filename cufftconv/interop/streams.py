"""Run on the caller's stream so that no synchronisation is needed on either side."""

from __future__ import annotations

import sys
import warnings
from typing import Any

from ..device import require_cupy
from .arrays import Operand

_external: dict[tuple[int, int], Any] = {}


def _external_stream(ptr: int, device: int) -> Any:
    cp = require_cupy()
    with warnings.catch_warnings():
        # CuPy 14 deprecates ExternalStream for Stream.from_external, which needs the
        # producer's stream object; a raw pointer is what every framework can give.
        warnings.simplefilter("ignore", DeprecationWarning)
        return cp.cuda.ExternalStream(ptr, device)


def torch_stream_ptr(device: int) -> int:
    """PyTorch's current stream on ``device`` as a raw pointer (cheapest available call)."""
    torch = sys.modules["torch"]
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    if raw is not None:
        return int(raw(device))
    return int(torch.cuda.current_stream(device).cuda_stream)


def _producer_stream(op: Operand) -> Any | None:
    """The producer framework's current stream as a CuPy stream, or None to keep CuPy's."""
    if op.kind == "torch" and op.device is not None:
        ptr = torch_stream_ptr(op.device)
        if ptr == 0:
            return require_cupy().cuda.Stream.null
        key = (op.device, ptr)
        stream = _external.get(key)
        if stream is None:
            stream = _external[key] = _external_stream(ptr, op.device)
        return stream
    return None


class execution_context:
    """Make ``device`` current and, for PyTorch operands, PyTorch's current stream CuPy's too.

    A class rather than a generator: this sits on every call's hot path.
    """

    __slots__ = ("_device", "_stream")

    def __init__(self, op: Operand, device: int) -> None:
        self._device = require_cupy().cuda.Device(device)
        self._stream = _producer_stream(op)

    def __enter__(self) -> None:
        self._device.__enter__()
        if self._stream is not None:
            self._stream.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self._stream is not None:
            self._stream.__exit__(*exc)
        self._device.__exit__(*exc)
