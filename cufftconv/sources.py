"""Where the CUDA sources live: package data ``cufftconv.kernels`` or the repo's ``kernels/``."""

from __future__ import annotations

import functools
import hashlib
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


def source_digest() -> str:
    """12 hex digits of SHA-1 over the package's Python modules and the CUDA sources (sorted
    relative paths and contents): names the code a benchmark ran, with or without git. For a
    commit: ``git archive REV cufftconv kernels | tar -x -C DIR``, then :func:`digest_of` (DIR).
    """
    return _digest(Path(__file__).resolve().parent, kernels_dir())


def digest_of(root: str | Path) -> str:
    """:func:`source_digest` of a tree holding ``cufftconv/`` and ``kernels/``."""
    return _digest(Path(root) / "cufftconv", Path(root) / "kernels")


def _digest(package: Path, kernels: Path) -> str:
    def files(top: Path, pattern: str) -> list[Path]:
        return [p for p in top.rglob(pattern) if p.is_file() and "__pycache__" not in p.parts]

    items = [
        ("cufftconv/" + p.relative_to(package).as_posix(), p)
        for p in files(package, "*.py")
        if p.relative_to(package).parts[0] != "kernels"  # a wheel's package data: below
    ]
    items += [("kernels/" + p.name, p) for p in files(kernels, "*.cu*")]
    h = hashlib.sha1()
    for rel, path in sorted(items):
        h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]
