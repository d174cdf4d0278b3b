"""Launch failures surface as KernelLaunchError naming the kernel, geometry and arguments (CPU).

The launches are faked: a stand-in kernel raises CuPy's CUDARuntimeError (constructible without
a GPU) the way a real launch raises a CUDA error. tests/test_gpu_streams.py forces real ones.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import cufftconv
from cufftconv import errors, fused
from cufftconv.backends import cufft as cufft_backend

runtime = pytest.importorskip("cupy_backends.cuda.api.runtime")


def _cuda_error() -> Exception:
    return runtime.CUDARuntimeError(1)  # cudaErrorInvalidValue


class _FakeKernel:
    """Records its calls; raises ``exc`` if given."""

    def __init__(self, exc: Exception | None = None) -> None:
        self.exc, self.calls = exc, []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        if self.exc is not None:
            raise self.exc


def _fake_array(shape, dtype="float16", ptr=0x7F0000001000):
    a = np.empty(shape, dtype=dtype)
    return SimpleNamespace(
        shape=a.shape, dtype=a.dtype, strides=a.strides, size=a.size, data=SimpleNamespace(ptr=ptr)
    )


def _launcher(func) -> fused.Launcher:
    B, H, L, Lout = 4, 3, 4096, 4096
    tail = fused.launch_tail(B, H, L, 0, Lout)
    name = fused.name_expression(8192, "float16", False, False, 3)
    return fused.Launcher(func, (6,), (256,), 54321, tail, name)


def test_exported():
    assert cufftconv.KernelLaunchError is errors.KernelLaunchError
    assert issubclass(cufftconv.KernelLaunchError, RuntimeError)


def test_launcher_success_passes_arguments_through():
    func = _FakeKernel()
    kf = _fake_array((3, 2 * 8192 + 8))
    _launcher(func)(0x1000, 0x1000, kf, 0x2000, 0x2000, "stream")
    (args, kwargs), = func.calls
    assert args[0] == (6,) and args[1] == (256,) and args[3] == 54321 and args[4] == "stream"
    assert args[2][:5] == (0x1000, 0x1000, kf, 0x2000, 0x2000) and len(args[2]) == len(fused.ARG_NAMES)
    assert not kwargs


def test_launcher_failure_names_kernel_and_arguments():
    err = _cuda_error()
    kf = _fake_array((3, 2 * 8192 + 8), ptr=0xABC000)
    stream = SimpleNamespace(ptr=0x5555)
    with pytest.raises(cufftconv.KernelLaunchError) as info:
        _launcher(_FakeKernel(err))(0x7F00AA, 0x7F00AA, kf, 0x7F00BB, 0x7F00BB, stream)
    msg = str(info.value)
    assert info.value.__cause__ is err
    for part in (
        "monarch_conv_fwd<8192, 0, false, false, 3>",
        "grid=(6,)",
        "block=(256,)",
        "dynamic shared memory=54321 B",
        "stream=0x5555",
        "u=0x7f00aa (C-contiguous (4, 3, 4096))",
        "y=0x7f00bb",
        "kf=float16(3, 16392)",
        "at 0xabc000",
        "B=4, H=3, L=4096, out_offset=0, Lout=4096",
        "cudaErrorInvalidValue",
    ):
        assert part in msg, (part, msg)


def test_launcher_other_errors_pass_through():
    with pytest.raises(TypeError, match="not a CUDA error"):
        _launcher(_FakeKernel(TypeError("not a CUDA error")))(1, 1, None, 2, 2, None)


def _failing_prepare(monkeypatch, conv, B: int, H: int, L: int, smem: int):
    """Fake (B, H, L) operands and a prepare returning a kernel whose launch fails with a CUDA
    error, grid 7 and ``smem``: (kernel, u, y, kf)."""
    u = _fake_array((B, H, L), "uint16", ptr=0x1000)
    y = _fake_array((B, H, L), "uint16", ptr=0x2000)
    kf = _fake_array((H, 2 * conv.n + 8), ptr=0x3000)
    args = (u, u, kf, y, y, *(np.int64(0),) * 12, np.int32(B), np.int32(H), np.int32(L),
            np.int32(0), np.int32(L), np.int32(B), *fused.DENSE_TILES)
    assert len(args) == len(fused.ARG_NAMES)
    kern = _FakeKernel(_cuda_error())
    monkeypatch.setattr(conv, "prepare", lambda *a, **k: (kern, 7, args, smem), raising=False)
    return kern, u, y, kf


def test_fused_conv_general_path(monkeypatch):
    conv = fused.FusedConv(1024, "bfloat16", pregate=True, postgate=False)
    kern, u, y, kf = _failing_prepare(monkeypatch, conv, 2, 5, 1000, conv.smem)
    with pytest.raises(cufftconv.KernelLaunchError) as info:
        conv(u, kf, y, L=1000, out_offset=0, Lout=1000, pregate=u)
    msg = str(info.value)
    assert kern.calls[0][1] == {"shared_mem": conv.smem}
    for part in (
        "monarch_conv_fwd<1024, 1, true, false, 0>",  # L > n/2: no padding variant
        "grid=(7,)",
        f"block=({conv.threads},)",
        f"dynamic shared memory={conv.smem} B",
        "u=uint16(2, 5, 1000) strides=(10000, 2000, 2) at 0x1000",
        "y=uint16(2, 5, 1000)",
        "L=1000",
    ):
        assert part in msg, (part, msg)


def test_fused_conv_names_the_twiddle_folded_kernel(monkeypatch):
    """A failed launch of the kernel prepare picked (here the twiddle-folded one, told apart
    by its shared memory) is reported under that kernel's name."""
    from cufftconv import twiddle_fold

    conv = fused.FusedConv(4096, "bfloat16", pregate=False, postgate=False)
    smem = twiddle_fold.smem(4096)
    kern, u, y, kf = _failing_prepare(monkeypatch, conv, 4, 5, 4096, smem)
    with pytest.raises(cufftconv.KernelLaunchError) as info:
        conv(u, kf, y, L=4096, out_offset=0, Lout=4096)
    msg = str(info.value)
    assert kern.calls[0][1] == {"shared_mem": smem}
    assert "twiddle_fold_fwd<4096, 1, false, false, false, 0>" in msg and f"dynamic shared memory={smem} B" in msg, msg

def test_cufft_elementwise(monkeypatch):
    kern = _FakeKernel(_cuda_error())
    monkeypatch.setattr(cufft_backend, "_elementwise", lambda op: kern)
    u = _fake_array((2, 3, 10), "float16", ptr=0x10)
    x = _fake_array((2, 3, 10), "float32", ptr=0x20)
    with pytest.raises(cufftconv.KernelLaunchError) as info:
        cufft_backend._launch("widen", u, x)
    msg = str(info.value)
    for part in ("cufftconv_widen (ElementwiseKernel)", "for 60 elements",
                 "x=float16(2, 3, 10)", "y=float32(2, 3, 10)", "at 0x20"):
        assert part in msg, (part, msg)
    ok = _FakeKernel()
    monkeypatch.setattr(cufft_backend, "_elementwise", lambda op: ok)
    cufft_backend._launch("narrow_mul", x, x, u)
    assert ok.calls == [((x, x, u), {})]


def test_is_cuda_error():
    assert errors.is_cuda_error(_cuda_error())
    assert not errors.is_cuda_error(RuntimeError("cudaErrorInvalidValue"))


def test_packed_argument_format_matches_the_kernel_parameters():
    """The fast path packs monarch_conv_fwd's arguments by struct code: one per parameter,
    and the packed layout is C's (pointers and strides 8-byte aligned)."""
    import struct

    assert len(fused.FWD_ARG_FORMAT) == len(fused.ARG_NAMES)
    codes = dict(zip(fused.ARG_NAMES, fused.FWD_ARG_FORMAT))
    assert all(codes[n] == "Q" for n in ("u", "pregate", "kf", "y", "postgate", "tiles"))
    assert all(codes[n] == "i" for n in ("B", "H", "L", "out_offset", "Lout", "BI", "KC", "KZ"))
    assert struct.calcsize("@" + fused.FWD_ARG_FORMAT) == 5 * 8 + 12 * 8 + 6 * 4 + 8 + 3 * 4
