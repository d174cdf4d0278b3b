"""Storage <-> compute conversions shared by the NumPy and CuPy paths.

bfloat16 is stored as uint16 bits (neither NumPy nor CuPy has the type), so it is widened
and rounded here by bit manipulation, with round-to-nearest-even like the hardware.
"""

from __future__ import annotations

from typing import Any


def to_compute(x: Any, dtype: str, compute: str, xp: Any) -> Any:
    """Widen ``x`` (logical dtype ``dtype``) to the float type ``compute``."""
    if dtype == "bfloat16":
        f32 = (x.astype(xp.uint32) << 16).view(xp.float32)
        return f32 if compute == "float32" else f32.astype(compute)
    return x.astype(compute, copy=False)


def from_compute(y: Any, dtype: str, xp: Any) -> Any:
    """Round ``y`` to the storage of logical dtype ``dtype`` (a new contiguous array)."""
    if dtype == "bfloat16":
        f32 = xp.ascontiguousarray(y, dtype=xp.float32)
        bits = f32.view(xp.uint32)
        rounded = (bits + (0x7FFF + ((bits >> 16) & 1))) >> 16
        return xp.where(xp.isnan(f32), xp.uint32(0x7FC0), rounded).astype(xp.uint16)
    return xp.ascontiguousarray(y, dtype=dtype)


def storage_dtype(dtype: str) -> str:
    """The NumPy/CuPy dtype that holds logical ``dtype``."""
    return "uint16" if dtype == "bfloat16" else dtype
