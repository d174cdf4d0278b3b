"""Array interchange: describe user operands, import them zero-copy, return the caller's kind."""

from .arrays import (
    Operand,
    describe,
    to_device,
    to_host,
    torch_as_cupy,
    torch_empty,
    wrap,
    writable_view,
)
from .streams import execution_context

__all__ = [
    "Operand",
    "describe",
    "execution_context",
    "to_device",
    "to_host",
    "torch_as_cupy",
    "torch_empty",
    "wrap",
    "writable_view",
]
