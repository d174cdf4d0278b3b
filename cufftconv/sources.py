"""Where the CUDA sources live: package data ``cufftconv.kernels`` or the repo's ``kernels/``."""

from __future__ import annotations

import functools
from pathlib import Path


@functools.cache
def kernels_dir() -> Path:
    """Directory holding the ``.cu`` / ``.cuh`` sources (installed wheel or source tree)."""
    try:
        from importlib import resources

        path = Path(str(resources.files("cufftconv.kernels")))
        if (path / "convert.cuh").is_file():
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[1] / "kernels"


@functools.cache
def read_source(name: str) -> str:
    """Text of one source file in :func:`kernels_dir`."""
    return (kernels_dir() / name).read_text()
