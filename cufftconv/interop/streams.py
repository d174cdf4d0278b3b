"""Run on the caller's stream so that no synchronisation is needed on either side."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from ..device import require_cupy
from .arrays import Operand

_external: dict[tuple[int, int], Any] = {}


def _producer_stream(op: Operand) -> Any | None:
    """The producer framework's current stream as a CuPy stream, or None to keep CuPy's."""
    if op.kind == "torch" and op.device is not None:
        torch = sys.modules["torch"]
        ptr = int(torch.cuda.current_stream(op.device).cuda_stream)
        if ptr == 0:
            return require_cupy().cuda.Stream.null
        key = (op.device, ptr)
        stream = _external.get(key)
        if stream is None:
            stream = _external_stream(ptr, op.device)
            _external[key] = stream
        return stream
    return None


def _external_stream(ptr: int, device: int) -> Any:
    cp = require_cupy()
    with warnings.catch_warnings():
        # CuPy 14 deprecates ExternalStream for Stream.from_external, which needs the
        # producer's stream object; a raw pointer is what every framework can give.
        warnings.simplefilter("ignore", DeprecationWarning)
        return cp.cuda.ExternalStream(ptr, device)


@contextlib.contextmanager
def execution_context(op: Operand, device: int) -> Iterator[None]:
    """Make ``device`` current and, for PyTorch operands, PyTorch's current stream CuPy's too."""
    cp = require_cupy()
    with cp.cuda.Device(device):
        stream = _producer_stream(op)
        if stream is None:
            yield
        else:
            with stream:
                yield
