"""GPU discovery without touching the device unless asked.

CuPy is optional: ``import cufftconv`` must work on a machine without CuPy or a GPU,
so every CuPy import goes through :func:`cupy_or_none`.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from types import ModuleType


@functools.lru_cache(maxsize=1)
def cupy_or_none() -> ModuleType | None:
    """Return the ``cupy`` module, or None when it is not installed or broken."""
    try:
        return importlib.import_module("cupy")
    except Exception:  # noqa: BLE001 - a broken CuPy install is the same as none for us
        return None


def require_cupy() -> ModuleType:
    cp = cupy_or_none()
    if cp is None:
        raise RuntimeError(
            "cufftconv: this call needs CuPy and a CUDA GPU, but CuPy is not importable. "
            "Install it with `pip install cufftconv[cuda13]` (or [cuda12])."
        )
    return cp


@functools.lru_cache(maxsize=1)
def device_count() -> int:
    """Number of CUDA devices CuPy can see (0 without CuPy, driver or GPU)."""
    cp = cupy_or_none()
    if cp is None:
        return 0
    try:
        return int(cp.cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001 - no driver / no device
        return 0


def gpu_available() -> bool:
    """True when CuPy is importable and sees at least one CUDA device."""
    return device_count() > 0


@dataclass(frozen=True)
class DeviceInfo:
    """What the dispatcher and ``info`` need to know about one GPU."""

    index: int
    name: str
    compute_capability: tuple[int, int]
    sm_count: int
    smem_per_block_optin: int
    l2_bytes: int
    total_memory: int

    @property
    def arch(self) -> str:
        return f"sm_{self.compute_capability[0]}{self.compute_capability[1]}"

    @property
    def arch_number(self) -> int:
        return 10 * self.compute_capability[0] + self.compute_capability[1]


@functools.cache
def device_info(index: int) -> DeviceInfo:
    """Properties of GPU ``index`` read from the driver (cached)."""
    cp = require_cupy()
    props = cp.cuda.runtime.getDeviceProperties(index)
    name = props["name"]
    if isinstance(name, bytes):
        name = name.decode()
    optin = int(props.get("sharedMemPerBlockOptin", 0)) or int(props["sharedMemPerBlock"])
    return DeviceInfo(
        index=index,
        name=name,
        compute_capability=(int(props["major"]), int(props["minor"])),
        sm_count=int(props["multiProcessorCount"]),
        smem_per_block_optin=optin,
        l2_bytes=int(props.get("l2CacheSize", 0)),
        total_memory=int(props["totalGlobalMem"]),
    )
