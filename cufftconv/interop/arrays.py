"""A thin holder for user operands: what they are, where they live, how to bring them in and out.

Description (:func:`describe`) reads metadata only: shape, dtype, device. It never launches
device work, so validation can run first. :func:`to_device` / :func:`to_host` import the data
zero-copy where the producer allows it, and :func:`wrap` returns a result in the caller's kind
of array. bfloat16 travels as its raw uint16 bits: CuPy and NumPy have no native bfloat16.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..device import require_cupy

KDL_CPU, KDL_CUDA, KDL_CUDA_HOST, KDL_CUDA_MANAGED = 1, 2, 3, 13


@dataclass(frozen=True)
class Operand:
    """Metadata of one user array.

    ``kind`` is one of "numpy", "cupy", "torch", "jax", "dlpack"; ``device`` is None for
    host memory, else the CUDA device index; ``dtype`` is a NumPy-style name ("float16",
    "bfloat16", "int32", "complex64", ...).
    """

    name: str
    obj: Any
    kind: str
    shape: tuple[int, ...]
    dtype: str
    device: int | None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def where(self) -> str:
        return "host" if self.device is None else f"cuda:{self.device}"


def _torch_dtype_name(dt: Any) -> str:
    return str(dt).removeprefix("torch.")


def describe(name: str, x: Any) -> Operand:
    """Describe ``x`` without touching device memory; TypeError for non-arrays."""
    mod = type(x).__module__.split(".")[0]
    if isinstance(x, np.generic):  # NumPy scalars are 0-d arrays for our purposes
        x = np.asarray(x)
    if isinstance(x, np.ndarray):
        return Operand(name, x, "numpy", tuple(x.shape), str(x.dtype), None)
    if mod == "cupy":
        return Operand(name, x, "cupy", tuple(x.shape), str(x.dtype), int(x.device.id))
    if mod == "torch" and "torch" in sys.modules:
        dev = x.device
        index = None
        if dev.type == "cuda":
            index = dev.index if dev.index is not None else 0
        elif dev.type != "cpu":
            raise TypeError(
                f"{name}: torch tensors on device type {dev.type!r} are not supported; "
                "use a CUDA or CPU tensor"
            )
        return Operand(name, x, "torch", tuple(x.shape), _torch_dtype_name(x.dtype), index)
    if mod in ("jax", "jaxlib") and hasattr(x, "devices"):
        devs = list(x.devices())
        if len(devs) != 1:
            raise ValueError(f"{name}: sharded JAX arrays (on {len(devs)} devices) are not supported")
        dev = devs[0]
        index = None if dev.platform == "cpu" else int(getattr(dev, "local_hardware_id", dev.id))
        if dev.platform not in ("cpu", "gpu", "cuda"):
            raise TypeError(f"{name}: JAX arrays on platform {dev.platform!r} are not supported")
        return Operand(name, x, "jax", tuple(x.shape), str(np.dtype(x.dtype)), index)
    if hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__"):
        dev_type, dev_id = x.__dlpack_device__()
        if int(dev_type) in (KDL_CPU, KDL_CUDA_HOST):
            arr = np.from_dlpack(x)
            return Operand(name, x, "dlpack", tuple(arr.shape), str(arr.dtype), None)
        if int(dev_type) in (KDL_CUDA, KDL_CUDA_MANAGED):
            cp = require_cupy()
            arr = cp.from_dlpack(x)
            return Operand(name, arr, "dlpack", tuple(arr.shape), str(arr.dtype), int(dev_id))
        raise TypeError(f"{name}: DLPack device type {dev_type} is not supported (CPU or CUDA only)")
    if isinstance(x, (list, tuple, int, float)):
        raise TypeError(
            f"{name}: got a Python {type(x).__name__}; pass an array "
            "(NumPy, CuPy, PyTorch, JAX or any DLPack producer)"
        )
    raise TypeError(
        f"{name}: got an object of type {type(x).__module__}.{type(x).__name__}, which is not an "
        "array; pass a NumPy, CuPy, PyTorch or JAX array or any DLPack producer"
    )


def _as_bits(arr: Any, xp: Any) -> Any:
    """bfloat16 arrays from NumPy/ml_dtypes come in as their uint16 bit pattern."""
    if str(arr.dtype) == "bfloat16":
        return arr.view(xp.uint16)
    return arr


_TORCH_STORAGE = {"bfloat16": "uint16"}


def torch_as_cupy(t: Any, dtype: str, device: int) -> Any:
    """Zero-copy CuPy view of a CUDA tensor, without the DLPack handshake.

    The caller runs on the tensor's producer stream (see ``execution_context``), so no
    synchronisation is needed; this skips DLPack's per-call capsule and stream negotiation,
    which dominated the host time of small calls.
    """
    cp = require_cupy()
    itemsize = t.element_size()
    strides = t.stride()
    span = 1 + sum((n - 1) * st for n, st in zip(t.shape, strides))
    mem = cp.cuda.UnownedMemory(t.data_ptr(), span * itemsize, t, device)
    return cp.ndarray(
        tuple(t.shape),
        _TORCH_STORAGE.get(dtype, dtype),
        cp.cuda.MemoryPointer(mem, 0),
        strides=tuple(st * itemsize for st in strides),
    )


def torch_empty(shape: tuple[int, ...], like: Operand) -> tuple[Any, Any]:
    """A new CUDA tensor of ``like``'s dtype and device, and its CuPy view."""
    torch = _torch()
    t = torch.empty(shape, dtype=like.obj.dtype, device=like.obj.device)
    return t, torch_as_cupy(t, like.dtype, like.device)


def to_device(op: Operand) -> Any:
    """The operand as a CuPy array on its GPU (zero copy for GPU producers).

    Host operands are copied to the current CuPy device. bfloat16 becomes uint16 bits.
    Call inside the CuPy device/stream context the computation runs in: DLPack producers
    are asked to make their data ready on that stream.
    """
    cp = require_cupy()
    x = op.obj
    if op.kind == "cupy":
        return x
    if op.kind == "torch":
        if op.dtype == "bfloat16":
            x = x.view(_torch().int16)
        if op.device is None:
            x = x.numpy()
            return cp.asarray(_as_bits(x, np))
        return torch_as_cupy(op.obj, op.dtype, op.device)
    if op.kind == "jax":
        if op.dtype == "bfloat16":
            import jax

            x = jax.lax.bitcast_convert_type(x, np.uint16)
        if op.device is None:
            return cp.asarray(np.asarray(x))
        return cp.from_dlpack(x)
    if op.kind == "numpy":
        return cp.asarray(_as_bits(x, np))
    if op.kind == "dlpack":
        if op.device is None:
            return cp.asarray(_as_bits(np.from_dlpack(x), np))
        return _as_bits(x, cp)  # already imported by describe()
    raise AssertionError(op.kind)


def to_host(op: Operand) -> np.ndarray:
    """The operand as a NumPy array (host operands only). bfloat16 becomes uint16 bits."""
    x = op.obj
    if op.kind == "numpy":
        return _as_bits(x, np)
    if op.kind == "torch":
        if op.dtype == "bfloat16":
            x = x.view(_torch().int16)
            return x.numpy().view(np.uint16)
        return x.numpy()
    if op.kind == "jax":
        if op.dtype == "bfloat16":
            return np.asarray(x).view(np.uint16)
        return np.asarray(x)
    if op.kind == "dlpack":
        return _as_bits(np.from_dlpack(x), np)
    raise AssertionError(op.kind)


def _torch() -> Any:
    import torch

    return torch


def writable_view(op: Operand) -> Any:
    """A zero-copy writable view of an ``out=`` operand (CuPy array or NumPy array)."""
    if op.kind == "jax":
        raise TypeError("out: JAX arrays are immutable; omit out= and use the returned array")
    if op.device is None:
        arr = to_host(op)
        if not arr.flags.writeable:
            raise ValueError("out: the array is read-only")
        return arr
    return to_device(op)


def wrap(result: Any, like: Operand, dtype: str) -> Any:
    """Return ``result`` (CuPy or NumPy, bfloat16 as uint16 bits) as ``like``'s kind of array."""
    kind = like.kind
    if kind in ("cupy", "dlpack") and like.device is not None:
        return result
    if kind in ("numpy", "dlpack"):
        out = _host(result)
        if dtype == "bfloat16":
            import ml_dtypes  # only reachable when the caller passed an ml_dtypes bfloat16 array

            out = out.view(ml_dtypes.bfloat16)
        return out
    if kind == "torch":
        torch = _torch()
        if like.device is None:
            t = torch.from_numpy(_host(result))
        else:
            t = torch.from_dlpack(result)
        return t.view(torch.bfloat16) if dtype == "bfloat16" else t
    if kind == "jax":
        import jax

        if like.device is None:
            out = jax.numpy.asarray(_host(result))
        else:
            # JAX exposes no stream to order against, so hand over finished data.
            require_cupy().cuda.get_current_stream().synchronize()
            out = jax.dlpack.from_dlpack(result)
        if dtype == "bfloat16":
            out = jax.lax.bitcast_convert_type(out, jax.numpy.bfloat16)
        return out
    raise AssertionError(kind)


def _host(result: Any) -> np.ndarray:
    if isinstance(result, np.ndarray):
        return result
    return result.get()
