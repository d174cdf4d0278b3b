"""Where the CUDA sources live: package data ``cufftconv.kernels`` or the repo's ``kernels/``."""

from __future__ import annotations

import functools
import re
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


_INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"\s*$', re.MULTILINE)


def _inline(path: Path, seen: set[str]) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1)
        inc = path.parent / name
        if not inc.is_file():
            return m.group(0)
        if name in seen:
            return f"// (already included: {name})"
        seen.add(name)
        return f"// ---- begin {name} ----\n{_inline(inc, seen)}\n// ---- end {name} ----"

    return _INCLUDE_RE.sub(sub, path.read_text())


@functools.cache
def inline_source(name: str) -> str:
    """Text of ``name`` with its local ``#include "*.cuh"`` headers inlined.

    Self-contained text means CuPy's compile cache (keyed on the source) sees header edits too,
    and NVRTC needs no include path.
    """
    return _inline(kernels_dir() / name, set())
