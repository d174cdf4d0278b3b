"""GPU tests of the partial-convolution path (overlap-save blocks through the fused kernel).

The row is on by default; the fixture makes sure of it (benchmarks switch it off to compare).
Fresh random inputs, NaN-poisoned outputs, float64 reference (scipy.signal.fftconvolve).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import rel_err

cp = pytest.importorskip("cupy")
torch = pytest.importorskip("torch")
signal = pytest.importorskip("scipy.signal")

pytestmark = pytest.mark.gpu  # conftest skips it without a GPU

import cufftconv
from cufftconv.backends import partial as partial_row

TOL = {"float16": 1e-3, "bfloat16": 6e-3}


@pytest.fixture(autouse=True)
def _enabled(monkeypatch):
    monkeypatch.setattr(partial_row, "ENABLED", True)
    cufftconv.clear_plan_cache()
    yield
    cufftconv.clear_plan_cache()


def _ref(x, k, mode, post=None):
    kk = np.broadcast_to(k, x.shape[:-1] + k.shape[-1:])
    L = x.shape[-1]
    y = signal.fftconvolve(x, kk, axes=-1, mode="full" if mode == "causal" else mode)
    y = y[..., :L] if mode == "causal" else y
    return y if post is None else y * post


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(
    "B,H,L,Lk,mode,gated",
    [
        (1, 4, 1 << 20, 4096, "causal", False),  # the shape class
        (2, 3, 300_007, 1000, "causal", True),  # odd L, gated
        (3, 2, 100_003, 77, "full", False),
        (1, 5, 99_999, 5000, "same", True),
        (2, 2, 70_000, 16384, "valid", False),  # block 32768 (2 Lk)
    ],
)
def test_against_reference(rng, dtype, B, H, L, Lk, mode, gated):
    tdt = getattr(torch, dtype)
    u = torch.randn(B, H, L).to(tdt)
    k = torch.from_numpy((rng.standard_normal((H, Lk)) / np.sqrt(Lk)).astype(np.float32))
    pre = torch.randn(B, H, L).to(tdt) if gated else None
    plan = cufftconv.FFTConv(
        (B, H, L), k=k.cuda(), dtype=dtype, mode=mode, pregate=gated, postgate=gated
    )
    assert plan.route == "partial-blocked"
    post = torch.randn(plan.out_shape).to(tdt) if gated else None
    out = torch.full(plan.out_shape, float("nan"), dtype=tdt, device="cuda")
    y = plan(
        u.cuda(),
        pregate=None if pre is None else pre.cuda(),
        postgate=None if post is None else post.cuda(),
        out=out,
    )
    got = y.float().cpu().numpy().astype(np.float64)
    assert not np.isnan(got).any(), "unwritten outputs"
    x = u.double().numpy() * (1.0 if pre is None else pre.double().numpy())
    want = _ref(x, k.double().numpy(), mode, None if post is None else post.double().numpy())
    assert rel_err(got, want) <= TOL[dtype]


def test_no_sequence_length_filter_buffer(rng):
    """L = 4M, Lk = 8192: the plan's filter spectrum is (H, n) with n = 32768, not (H, L)."""
    H, L, Lk = 2, 1 << 22, 8192
    u = cp.asarray(rng.standard_normal((1, H, L)).astype(np.float16))
    k = cp.asarray((rng.standard_normal((H, Lk)) / 90).astype(np.float32))
    plan = cufftconv.FFTConv(u.shape, k=k, dtype="float16", mode="causal")
    assert plan.route == "partial-blocked"
    pool = cp.get_default_memory_pool()
    before = pool.used_bytes()
    y = plan(u)
    cp.cuda.Device().synchronize()
    assert pool.used_bytes() - before <= y.nbytes + (1 << 20)  # the output, nothing L-sized
    want = _ref(u[:, :, :200_000].get().astype(np.float64), k.get().astype(np.float64), "causal")
    assert rel_err(y[:, :, :200_000].get(), want) <= TOL["float16"]
