"""GPU tests of the exact cuFFT path and the array interchange (run on the GPU machine)."""

import numpy as np
import pytest
from helpers import rel_err

import cufftconv
from cufftconv import reference
from cufftconv.cli import CHECK_TOLERANCE, error_bound
from cufftconv.validation import MODES

pytestmark = pytest.mark.gpu

TOL = CHECK_TOLERANCE
_tol = error_bound  # looser only for outputs too small to average rounding errors


def _cp():
    import cupy

    return cupy


def _torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    return torch


def _host(a):
    if hasattr(a, "get"):
        return a.get().astype(np.float64)
    if type(a).__module__.startswith("torch"):
        return a.detach().float().cpu().numpy().astype(np.float64)
    return np.asarray(a, dtype=np.float64)


def _lout(L, Lk, mode):
    return {"full": L + Lk - 1, "valid": abs(L - Lk) + 1}.get(mode, L)


SHAPES = [  # (u shape, Lk): odd and prime L, B = 1, H not a multiple of 16
    ((1, 1, 1), 1),
    ((1, 7, 127), 127),
    ((3, 111, 1009), 1009),
    ((2, 5, 4096), 300),
    ((1, 3, 8191), 8191),
    ((2, 17, 65537), 64),
    ((5, 200), 3),
]


@pytest.mark.parametrize("shape,Lk", SHAPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_cupy_all_modes(rng, shape, Lk, mode, dtype):
    cp = _cp()
    if mode == "circular" and Lk > shape[-1]:
        pytest.skip("circular needs Lk <= L")
    gated = bool(rng.integers(2))
    L = shape[-1]
    H = shape[-2] if len(shape) > 1 else 1
    u = cp.asarray(rng.standard_normal(shape).astype(dtype))
    k = cp.asarray(rng.standard_normal((H, Lk)).astype(np.float32))
    out_shape = shape[:-1] + (_lout(L, Lk, mode),)
    pre = cp.asarray(rng.standard_normal(shape).astype(dtype)) if gated else None
    post = cp.asarray(rng.standard_normal(out_shape).astype(dtype)) if gated else None
    out = cp.full(out_shape, cp.nan, dtype=dtype)  # poisoned
    y = cufftconv.fftconv(u, k, mode=mode, pregate=pre, postgate=post, out=out)
    assert y is out
    assert bool(cp.isfinite(out).all()), "unwritten (NaN) outputs"
    ref = reference.fftconv_direct(
        _host(u), _host(k), mode=mode,
        pregate=None if pre is None else _host(pre), postgate=None if post is None else _host(post),
    )
    err = rel_err(_host(out), ref)
    assert err <= _tol(dtype, out.size), err


@pytest.mark.parametrize("mode", ["causal", "circular", "full"])
def test_torch_bf16_and_fp16(rng, mode):
    torch = _torch()
    for dt, name in ((torch.bfloat16, "bfloat16"), (torch.float16, "float16")):
        u = torch.randn(2, 33, 1500, device="cuda", dtype=dt)
        k = torch.randn(33, 1500 if mode == "circular" else 411, device="cuda")
        y = cufftconv.fftconv(u, k, mode=mode)
        assert isinstance(y, torch.Tensor) and y.dtype == dt and y.device == u.device
        ref = reference.fftconv_direct(_host(u), _host(k), mode=mode)
        assert rel_err(_host(y), ref) <= TOL[name]


def test_torch_zero_copy_in_and_out(rng):
    torch = _torch()
    from cufftconv.interop import describe, to_device

    u = torch.randn(2, 3, 256, device="cuda", dtype=torch.float16)
    assert to_device(describe("u", u)).data.ptr == u.data_ptr()
    ub = u.to(torch.bfloat16)
    assert to_device(describe("u", ub)).data.ptr == ub.data_ptr()
    k = torch.randn(3, 256, device="cuda")
    out = torch.full((2, 3, 256), float("nan"), device="cuda", dtype=torch.float16)
    ptr = out.data_ptr()
    res = cufftconv.fftconv(u, k, out=out)
    assert res is out and out.data_ptr() == ptr and torch.isfinite(out).all()
    assert rel_err(_host(out), reference.fftconv_direct(_host(u), _host(k))) <= 1e-3


def test_torch_non_contiguous(rng):
    torch = _torch()
    base = torch.randn(6, 300, 4, device="cuda", dtype=torch.float32)
    u = base[::2].transpose(1, 2)  # (3, 4, 300) strided view
    k = torch.randn(300, 4, device="cuda").T  # (4, 300) transposed
    y = cufftconv.fftconv(u, k, mode="same")
    assert y.shape == (3, 4, 300)
    ref = reference.fftconv_direct(_host(u), _host(k), mode="same")
    assert rel_err(_host(y), ref) <= 2e-5


def test_torch_non_default_stream(rng):
    torch = _torch()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        # A long chain on s, so that running on another stream would read unfinished data.
        u = torch.randn(8, 64, 8192, device="cuda")
        for _ in range(20):
            u = u * 1.0001 + 1e-4
        k = torch.randn(64, 8192, device="cuda")
        y = cufftconv.fftconv(u, k)
        z = y * 2  # consumer on the same stream, no explicit synchronisation
    s.synchronize()
    ref = reference.fftconv_direct(_host(u[:2]), _host(k))
    assert rel_err(_host(z[:2]) / 2, ref) <= 2e-5


def test_cupy_non_default_stream(rng):
    cp = _cp()
    with cp.cuda.Stream(non_blocking=True):
        u = cp.asarray(rng.standard_normal((4, 16, 3000)).astype(np.float32))
        k = cp.asarray(rng.standard_normal((16, 3000)).astype(np.float32))
        y = cufftconv.fftconv(u, k, mode="full")
        yh = y.get()
    assert rel_err(yh, reference.fftconv_direct(_host(u), _host(k), mode="full")) <= 2e-5


def test_jax_zero_copy_round_trip(rng):
    jax = pytest.importorskip("jax")
    try:
        gpu = jax.devices("gpu")[0]
    except RuntimeError:
        pytest.skip("JAX without a GPU backend")
    jnp = jax.numpy
    u = jax.device_put(jnp.asarray(rng.standard_normal((2, 5, 700)), dtype=jnp.float32), gpu)
    k = jax.device_put(jnp.asarray(rng.standard_normal((5, 70)), dtype=jnp.float32), gpu)
    from cufftconv.interop import describe, to_device

    assert to_device(describe("u", u)).data.ptr == u.unsafe_buffer_pointer()
    y = cufftconv.fftconv(u, k)
    assert isinstance(y, jax.Array) and next(iter(y.devices())) == gpu
    ref = reference.fftconv_direct(np.asarray(u), np.asarray(k))
    assert rel_err(np.asarray(y), ref) <= 2e-5
    ub = u.astype(jnp.bfloat16)
    yb = cufftconv.fftconv(ub, k)
    assert yb.dtype == jnp.bfloat16
    refb = reference.fftconv_direct(np.asarray(ub.astype(jnp.float32)), np.asarray(k))
    assert rel_err(np.asarray(yb.astype(jnp.float32)), refb) <= 6e-3


def test_numpy_input_computed_on_gpu(rng):
    u = rng.standard_normal((2, 3, 500)).astype(np.float32)
    k = rng.standard_normal((3, 500)).astype(np.float32)
    plan = cufftconv.FFTConv(u.shape, k=k, dtype="float32")
    assert plan.route == "cufft"
    y = plan(u)
    assert isinstance(y, np.ndarray)
    assert rel_err(y, reference.fftconv_direct(u, k)) <= 2e-5


def test_plan_filter_fixed(rng):
    cp = _cp()
    k = cp.asarray(rng.standard_normal((9, 1000)).astype(np.float32))
    plan = cufftconv.FFTConv((2, 9, 1000), k=k, dtype="float16", pregate=True, postgate=True)
    for _ in range(3):
        u, g, h = (cp.asarray(rng.standard_normal((2, 9, 1000)).astype(np.float16))
                   for _ in range(3))
        y = plan(u, pregate=g, postgate=h)
        ref = reference.fftconv_direct(_host(u), _host(k), pregate=_host(g), postgate=_host(h))
        assert rel_err(_host(y), ref) <= 1e-3


def test_deterministic(rng):
    cp = _cp()
    u = cp.asarray(rng.standard_normal((4, 32, 4096)).astype(np.float16))
    k = cp.asarray(rng.standard_normal((32, 4096)).astype(np.float32))
    a = cufftconv.fftconv(u, k)
    b = cufftconv.fftconv(u, k)
    assert bool((a == b).all())


def test_inputs_not_modified(rng):
    cp = _cp()
    u = cp.asarray(rng.standard_normal((2, 4, 999)).astype(np.float16))
    k = cp.asarray(rng.standard_normal((4, 999)).astype(np.float32))
    g = cp.asarray(rng.standard_normal((2, 4, 999)).astype(np.float16))
    copies = [a.copy() for a in (u, k, g)]
    cufftconv.fftconv(u, k, pregate=g, postgate=g)
    for a, c in zip((u, k, g), copies):
        assert bool((a == c).all())
