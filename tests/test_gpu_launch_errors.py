"""GPU: a real launch failure surfaces as KernelLaunchError naming the kernel and its launch.

The failures are forced with launch settings no device accepts (a 2048-thread block, 1 MiB of
dynamic shared memory); such errors are not sticky, so the device stays usable afterwards.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import rel_err

import cufftconv
from cufftconv import fused, reference

pytestmark = pytest.mark.gpu

SHAPE = (2, 8, 1024)  # causal, Lk = L: FFT size 2048, both halves padded (PAD = 3)
NAME = "monarch_conv_fwd<2048, 0, false, false, 3>"


def _data(cp, rng):
    u = cp.asarray(rng.standard_normal(SHAPE).astype(np.float16))
    k = cp.asarray(rng.standard_normal(SHAPE[1:]).astype(np.float32) / 32)
    return u, k


def _still_works(cp, u, k) -> None:
    y = cufftconv.FFTConv(SHAPE, k=k, dtype="float16")(u)
    assert rel_err(y.get(), reference.fftconv_direct(u.get(), k.get())) <= 1e-3


def test_fast_path_launch_failure(rng, monkeypatch):
    cp = pytest.importorskip("cupy")
    u, k = _data(cp, rng)
    original = fused.FusedConv.launcher

    def bad_launcher(self, *args):
        launch = original(self, *args)
        launch.block = (2048,)  # above every GPU's 1024 threads per block
        return launch

    monkeypatch.setattr(fused.FusedConv, "launcher", bad_launcher)
    plan = cufftconv.FFTConv(SHAPE, k=k, dtype="float16")
    assert plan.route == "fused-monarch"
    y = cp.empty(SHAPE, dtype=cp.float16)
    with pytest.raises(cufftconv.KernelLaunchError) as info:
        plan(u, out=y)
    msg = str(info.value)
    for part in (NAME, "block=(2048,)", "grid=(", "dynamic shared memory=",
                 f"u={u.data.ptr:#x} (C-contiguous {SHAPE})", "kf=float16(8, 4104)",
                 "B=2, H=8, L=1024, out_offset=0, Lout=1024", "CUDADriverError"):
        assert part in msg, (part, msg)
    monkeypatch.undo()
    _still_works(cp, u, k)


def test_general_path_launch_failure(rng, monkeypatch):
    cp = pytest.importorskip("cupy")
    u, k = _data(cp, rng)
    plan = cufftconv.FFTConv(SHAPE, k_shape=k.shape, dtype="float16", k_dtype="float32")
    assert plan.route == "fused-monarch"
    monkeypatch.setattr(plan._executor.kernel, "smem", 1 << 20)
    with pytest.raises(cufftconv.KernelLaunchError) as info:
        plan(u, k)
    msg = str(info.value)
    for part in (NAME, "dynamic shared memory=1048576 B", f"u=float16{SHAPE}",
                 f"at {u.data.ptr:#x}", "CUDADriverError"):
        assert part in msg, (part, msg)
    _still_works(cp, u, k)
