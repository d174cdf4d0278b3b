"""GPU tests of the dispatch table end to end: which row runs, and that every row is right."""

import numpy as np
import pytest
from helpers import rel_err

import cufftconv
from cufftconv import reference
from cufftconv.validation import MODES

pytestmark = pytest.mark.gpu

TOL = {"float16": 1e-3, "bfloat16": 6e-3, "float32": 2e-5}


def _torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    return torch


def _host(t):
    return t.detach().double().cpu().numpy()


def _lout(L, Lk, mode):
    return {"full": L + Lk - 1, "valid": abs(L - Lk) + 1}.get(mode, L)


def _run(torch, shape, Lk, mode, dtype, gated, path=None, k_shape=None):
    dt = getattr(torch, dtype)
    L = shape[-1]
    u = torch.randn(shape, device="cuda", dtype=dt)
    k = torch.randn(k_shape or (shape[-2], Lk), device="cuda")
    out_shape = shape[:-1] + (_lout(L, Lk, mode),)
    pre = torch.randn(shape, device="cuda", dtype=dt) if gated else None
    post = torch.randn(out_shape, device="cuda", dtype=dt) if gated else None
    plan = cufftconv.FFTConv(shape, k=k, dtype=dtype, mode=mode, pregate=gated,
                             postgate=gated, path=path)
    out = torch.full(out_shape, float("nan"), device="cuda", dtype=dt)
    plan(u, pregate=pre, postgate=post, out=out)
    assert torch.isfinite(out).all(), "unwritten outputs"
    ref = reference.fftconv_direct(
        _host(u), _host(k), mode=mode,
        pregate=None if pre is None else _host(pre), postgate=None if post is None else _host(post),
    )
    return plan.route, rel_err(_host(out), ref)


FUSED_CASES = [  # (u shape, Lk, mode): all must take the fused row
    ((4, 8, 256), 256, "circular"),
    ((3, 5, 1024), 1024, "circular"),
    ((2, 3, 32768), 32768, "circular"),
    ((1, 1, 100), 100, "causal"),
    ((5, 111, 2049), 2049, "causal"),
    ((2, 7, 16384), 16384, "causal"),
    ((3, 4, 1000), 77, "full"),
    ((2, 6, 4099), 300, "same"),
    ((1, 2, 12345), 999, "valid"),
    ((2, 9, 300), 5000, "valid"),
    ((6, 3, 8191), 8191, "causal"),
]


@pytest.mark.parametrize("shape,Lk,mode", FUSED_CASES)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("gated", [False, True])
def test_fused_row(shape, Lk, mode, dtype, gated):
    torch = _torch()
    route, err = _run(torch, shape, Lk, mode, dtype, gated)
    assert route == "fused-monarch"
    assert err <= TOL[dtype]


FALLBACK_CASES = [  # (u shape, Lk, mode, dtype, k shape): must fall back to cuFFT
    ((2, 3, 1000), 1000, "circular", "float16", None),  # period not a power of two
    ((1, 1, 2**23 + 1), 2**23 + 1, "causal", "float16", None),  # FFT size above the long table
    ((2, 3, 1024), 1024, "circular", "float32", None),  # fp32 is never computed in 16 bits
    ((2, 3, 512), 512, "causal", "float16", (2, 1, 512)),  # filter varies along the batch only
]


@pytest.mark.parametrize("shape,Lk,mode,dtype,k_shape", FALLBACK_CASES)
def test_fallback_row(shape, Lk, mode, dtype, k_shape):
    torch = _torch()
    route, err = _run(torch, shape, Lk, mode, dtype, False, k_shape=k_shape)
    assert route == "cufft"
    assert err <= TOL[dtype]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_forced_cufft_path_16bit(mode, dtype):
    torch = _torch()
    route, err = _run(torch, (3, 5, 777), 777 if mode == "circular" else 50, mode, dtype, True,
                      path="cufft")
    assert route == "cufft"
    assert err <= TOL[dtype]


def test_forced_path_declines():
    with pytest.raises(ValueError, match="path: 'fused-monarch' cannot run"):
        cufftconv.FFTConv((2, 100), k_shape=(100,), dtype="float32", path="fused-monarch")
    with pytest.raises(ValueError, match="path: got 'nope'"):
        cufftconv.FFTConv((2, 100), k_shape=(100,), dtype="float32", path="nope")


def test_fused_non_contiguous_and_deterministic():
    torch = _torch()
    base = torch.randn(8, 6, 2048, device="cuda", dtype=torch.float16)
    u = base.transpose(0, 1)[:, ::2]  # (6, 4, 2048), B/H strides permuted
    k = torch.randn(4, 2048, device="cuda")
    a = cufftconv.fftconv(u, k)
    b = cufftconv.fftconv(u, k)
    assert torch.equal(a, b), "not deterministic"
    assert rel_err(_host(a), reference.fftconv_direct(_host(u), _host(k))) <= 1e-3


def test_fused_cupy_fp16_and_filter_shapes():
    import cupy as cp

    rng = np.random.default_rng()
    u = cp.asarray(rng.standard_normal((3, 4, 5, 700)).astype(np.float16))
    for k_shape in [(700,), (5, 700), (1, 5, 64), (4, 5, 9)]:
        k = cp.asarray(rng.standard_normal(k_shape).astype(np.float32))
        plan = cufftconv.FFTConv(u.shape, k=k, dtype="float16", mode="full")
        assert plan.route == "fused-monarch", k_shape
        y = plan(u)
        ref = reference.fftconv_direct(u.get().astype(np.float64), k.get(), mode="full")
        assert rel_err(y.get(), ref) <= 1e-3


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("gated", [False, True])
def test_plan_fast_path_matches_general_path(dtype, gated):
    """Contiguous operands take the pre-resolved launch; strided ones the general path."""
    torch = _torch()
    dt = getattr(torch, dtype)
    shape = (3, 5, 3000)
    k = torch.randn(5, 3000, device="cuda")
    plan = cufftconv.FFTConv(shape, k=k, dtype=dtype, mode="causal", pregate=gated,
                             postgate=gated)
    assert plan.route == "fused-monarch" and plan._fast is not None
    u = torch.randn(shape, device="cuda", dtype=dt)
    gates = {}
    if gated:
        gates = {"pregate": torch.randn(shape, device="cuda", dtype=dt),
                 "postgate": torch.randn(shape, device="cuda", dtype=dt)}
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):  # the fast path must also follow the caller's stream
        y_fast = plan(u, **gates)
        strided = torch.empty(shape[0], shape[1], 2 * shape[2], device="cuda", dtype=dt)
        strided[..., ::2] = u
        strided = strided[..., ::2]
        assert not strided.is_contiguous()
        y_general = plan(strided, **gates)
    s.synchronize()
    assert torch.equal(y_fast, y_general)
    ref = reference.fftconv_direct(
        _host(u), _host(k), pregate=_host(gates["pregate"]) if gated else None,
        postgate=_host(gates["postgate"]) if gated else None,
    )
    assert rel_err(_host(y_fast), ref) <= TOL[dtype]


def test_plan_fast_path_cupy():
    import cupy as cp

    rng = np.random.default_rng()
    u = cp.asarray(rng.standard_normal((4, 3, 1024)).astype(np.float16))
    k = cp.asarray(rng.standard_normal((3, 1024)).astype(np.float32))
    plan = cufftconv.FFTConv(u.shape, k=k, dtype="float16", mode="circular")
    y = plan(u)
    assert isinstance(y, cp.ndarray) and y.dtype == np.float16
    ref = reference.fftconv_direct(u.get().astype(np.float64), k.get(), mode="circular")
    assert rel_err(y.get(), ref) <= 1e-3
    out = cp.full(u.shape, cp.nan, dtype=cp.float16)
    assert plan(u, out=out) is out
    assert bool((out == y).all())
    with pytest.raises(ValueError, match="u: got shape"):
        plan(u[:2])  # the fast path declines; the general path names the problem
