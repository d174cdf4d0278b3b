"""cufftconv.sources.source_digest: names the code a benchmark ran, with or without git."""

import shutil
from pathlib import Path

from cufftconv import sources

ROOT = Path(__file__).resolve().parents[1]


def _copy_tree(dst: Path) -> Path:
    for part in ("cufftconv", "kernels"):
        shutil.copytree(ROOT / part, dst / part, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def test_digest_is_stable_and_names_this_tree():
    d = sources.source_digest()
    assert len(d) == 12 and int(d, 16) >= 0
    assert sources.source_digest() == d == sources.digest_of(ROOT)


def test_digest_follows_kernel_and_python_edits(tmp_path):
    tree = _copy_tree(tmp_path)
    base = sources.digest_of(tree)
    assert base == sources.source_digest()  # a copy without .git gives the same name
    cu = tree / "kernels" / "long_conv.cu"
    cu.write_text(cu.read_text() + "\n// edit\n")
    edited = sources.digest_of(tree)
    assert edited != base
    py = tree / "cufftconv" / "long.py"
    py.write_text(py.read_text() + "\n# edit\n")
    assert sources.digest_of(tree) not in (base, edited)
