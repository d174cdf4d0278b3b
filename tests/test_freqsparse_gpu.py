"""GPU tests of frequency-sparse convolutions on the kernel rows (issue #6).

The fused (FFT sizes 4096..32768: zeroed spectrum tiles are skipped) and long (65536 and up:
zeroed workspace rows are skipped) kernels against the float64 reference with the same mask
(:func:`cufftconv.reference.fftconv_direct` with ``freq_mask``). Fresh random inputs,
NaN-poisoned outputs. Sizes below 4096 (tiles mix frequency classes) mask the spectrum only.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import rel_err

cp = pytest.importorskip("cupy")

pytestmark = pytest.mark.gpu  # conftest skips it without a GPU

import cufftconv
from cufftconv import freqmask, reference
from cufftconv.backends import folded as folded_row
from cufftconv.backends import partial as partial_row

TOL = {"float16": 1e-3, "bfloat16": 6e-3}
EXPLICIT = (True, False, True, False, False, False, True, False,
            True, False, True, False, False, False, True, False)  # classes 0, 2, 6, 8, 10, 14


def _storage(x: np.ndarray, dtype: str):
    """(device array for the library, exact float64 value of its rounded data)."""
    if dtype == "float16":
        h = x.astype(np.float16)
        return cp.asarray(h), h.astype(np.float64)
    import torch

    t = torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16)
    return t.cuda(), t.float().numpy().astype(np.float64)


def _run(rng, dtype, B, H, L, Lk, mode, gated, route, *, keep=None, mask=None):
    u, u64 = _storage(rng.standard_normal((B, H, L)), dtype)
    k = (rng.standard_normal((H, Lk)) / np.sqrt(Lk)).astype(np.float32)
    pre = post = pre64 = post64 = None
    spec_mask = freqmask.resolve(keep, mask)
    kd = cp.asarray(k)
    if dtype == "bfloat16":
        import torch

        kd = torch.from_numpy(k).cuda()
    plan = cufftconv.FFTConv((B, H, L), k=kd, dtype=dtype, mode=mode, pregate=gated,
                             postgate=gated, freq_keep=keep, freq_mask=mask)
    assert plan.route == route, plan.route
    if gated:
        pre, pre64 = _storage(rng.standard_normal((B, H, L)), dtype)
        post, post64 = _storage(rng.standard_normal(plan.out_shape), dtype)
    out = cp.full(plan.out_shape, np.nan, dtype=np.float16) if dtype == "float16" else None
    if out is None:
        import torch

        out = torch.full(plan.out_shape, float("nan"), dtype=torch.bfloat16, device="cuda")
    y = plan(u, pregate=pre, postgate=post, out=out)
    got = cp.asnumpy(y).astype(np.float64) if dtype == "float16" else y.float().cpu().numpy()
    assert not np.isnan(got).any(), "unwritten outputs"
    want = reference.fftconv_direct(u64, k.astype(np.float64), mode=mode, pregate=pre64,
                                    postgate=post64, freq_mask=spec_mask)
    err = rel_err(got, want)
    assert err <= TOL[dtype], f"{dtype} {mode} L={L} Lk={Lk} keep={keep}: rel err {err:.2e}"
    # it is not the dense result (the mask did something)
    dense = reference.fftconv_direct(u64, k.astype(np.float64), mode=mode, pregate=pre64,
                                     postgate=post64)
    assert rel_err(got, dense) > 10 * TOL[dtype]
    return err


@pytest.fixture(autouse=True)
def _fresh_plans():
    cufftconv.clear_plan_cache()
    yield
    cufftconv.clear_plan_cache()


def _fused_route(n_big: int, keep: float) -> str:
    """keep 1/4 and below fold (N / F >= 256); keep 1/2 skips tiles inside the fused kernel."""
    f = folded_row.fold_factor(freqmask.from_keep(keep))
    return "fused-folded" if f and f >= 4 and n_big // f >= 256 else "fused-monarch"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("n", [4096, 8192, 16384, 32768])
@pytest.mark.parametrize("keep", [0.5, 0.25, 0.1])
def test_fused_circular(rng, dtype, n, keep):
    _run(rng, dtype, 3, 5, n, n, "circular", False, _fused_route(n, keep), keep=keep)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(
    "B,H,L,Lk,mode,keep",
    [
        (2, 3, 2048, 2048, "causal", 0.25),  # FFT 4096 -> 1024
        (1, 7, 5001, 300, "same", 0.25),  # odd L, FFT 8192 -> 2048
        (2, 3, 9000, 999, "full", 0.1),  # FFT 16384 -> 2048 (F = 8)
        (2, 2, 3000, 700, "valid", 0.25),  # FFT 4096 -> 1024
        (1, 111, 4096, 4096, "circular", 0.0625),  # F = 16 -> 256, B = 1, H = 111
        (3, 2, 16384, 16384, "causal", 0.25),  # FFT 32768 -> 8192
    ],
)
@pytest.mark.parametrize("gated", [True, False])
def test_folded_modes(rng, dtype, B, H, L, Lk, mode, keep, gated):
    # (ungated with out_offset 0: the kernel writes y's first period and the tiling pass
    # copies from y itself, whose rows are unaligned when Lout is odd: full mode here)
    _run(rng, dtype, B, H, L, Lk, mode, gated, "fused-folded", keep=keep)


def test_folded_strided_operands(rng):
    """Channel- and batch-strided views go through the fold and tile passes in place."""
    B, H, L = 2, 3, 4096
    big = cp.asarray(rng.standard_normal((B, 2 * H, L)).astype(np.float16))
    u = big[:, ::2, :]
    k = (rng.standard_normal((H, L)) / np.sqrt(L)).astype(np.float32)
    pre_big = cp.asarray(rng.standard_normal((B, 2 * H, L)).astype(np.float16))
    pre = pre_big[:, 1::2, :]
    y = cufftconv.fftconv(u, cp.asarray(k), mode="causal", pregate=pre, freq_keep=0.25)
    want = reference.fftconv_direct(cp.asnumpy(u).astype(np.float64), k.astype(np.float64),
                                    mode="causal", pregate=cp.asnumpy(pre).astype(np.float64),
                                    freq_mask=freqmask.from_keep(0.25))
    assert rel_err(cp.asnumpy(y).astype(np.float64), want) <= TOL["float16"]
    plan = cufftconv.FFTConv((B, H, L), k_shape=(H, L), dtype="float16", mode="causal",
                             pregate=True, freq_keep=0.25)
    assert plan.route == "fused-folded"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(
    "B,H,L,Lk,mode",
    [
        (2, 3, 2048, 2048, "causal"),  # FFT 4096
        (1, 7, 5001, 300, "same"),  # odd L, FFT 8192
        (3, 2, 16384, 16384, "causal"),  # FFT 32768
        (2, 3, 9000, 999, "full"),  # FFT 16384
        (2, 2, 3000, 700, "valid"),  # FFT 4096
    ],
)
def test_fused_linear_modes_gated(rng, dtype, B, H, L, Lk, mode):
    _run(rng, dtype, B, H, L, Lk, mode, True, "fused-monarch", mask=EXPLICIT)


@pytest.mark.parametrize("n", [512, 1024, 2048])
def test_small_fused_sizes_mask_the_spectrum(rng, n):
    _run(rng, "float16", 2, 3, n, n, "circular", False, _fused_route(n, 0.25), keep=0.25)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("n", [1 << 16, 1 << 18, 1 << 20])
@pytest.mark.parametrize("keep", [0.5, 0.25, 0.1])
def test_long_circular(rng, dtype, n, keep):
    bh = {1 << 16: (3, 3), 1 << 18: (2, 2), 1 << 20: (1, 2)}[n]
    _run(rng, dtype, *bh, n, n, "circular", False, "long-monarch", keep=keep)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(
    "B,H,L,Lk,mode",
    [
        (1, 3, 40001, 30011, "full"),  # odd, FFT 131072
        (2, 2, 65536, 65536, "causal"),  # FFT 131072
        (3, 2, 100003, 77, "same"),  # a short filter: dense long route, not partial
    ],
)
def test_long_linear_modes_gated(rng, dtype, B, H, L, Lk, mode):
    _run(rng, dtype, B, H, L, Lk, mode, True, "long-monarch", mask=EXPLICIT)


def test_partial_row_refuses_masks(rng):
    assert partial_row.ENABLED
    _run(rng, "float16", 1, 2, 1 << 18, 1000, "causal", False, "long-monarch", keep=0.25)


def test_all_true_mask_is_dense_bitwise(rng):
    u = cp.asarray(rng.standard_normal((2, 3, 8192)).astype(np.float16))
    k = cp.asarray(rng.standard_normal((3, 8192)).astype(np.float32))
    a = cufftconv.fftconv(u, k, mode="circular")
    b = cufftconv.fftconv(u, k, mode="circular", freq_mask=[True] * 16)
    c = cufftconv.fftconv(u, k, mode="circular", freq_keep=1.0)
    assert bool((a.view(cp.uint16) == b.view(cp.uint16)).all())
    assert bool((a.view(cp.uint16) == c.view(cp.uint16)).all())


def test_sparse_is_deterministic(rng):
    for n in (16384, 1 << 18):
        u = cp.asarray(rng.standard_normal((2, 3, n)).astype(np.float16))
        k = cp.asarray(rng.standard_normal((3, n)).astype(np.float32))
        a = cufftconv.fftconv(u, k, mode="circular", freq_keep=0.25)
        b = cufftconv.fftconv(u, k, mode="circular", freq_keep=0.25)
        assert bool((a.view(cp.uint16) == b.view(cp.uint16)).all())
