"""GPU: operands on a second GPU run there while another device is current; mixing devices
raises a ValueError that names the argument and both devices."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import rel_err

import cufftconv
from cufftconv import reference
from cufftconv.device import device_count

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        device_count() < 2, reason=f"needs 2 CUDA GPUs; CuPy sees {device_count()}"
    ),
]

SHAPE, K_SHAPE = (3, 16, 4096), (16, 4096)
TOL = {"float16": 1e-3, "bfloat16": 6e-3, "float32": 2e-5}
ROUTE = {"float16": "fused-monarch", "bfloat16": "fused-monarch", "float32": "cufft"}


def _cp():
    import cupy

    return cupy


def _torch():
    torch = pytest.importorskip("torch")
    if torch.cuda.device_count() < 2:
        pytest.skip(f"needs 2 CUDA GPUs; torch sees {torch.cuda.device_count()}")
    return torch


def _host(a) -> np.ndarray:
    if type(a).__module__.startswith("torch"):
        return a.detach().float().cpu().numpy().astype(np.float64)
    if hasattr(a, "get"):
        return a.get().astype(np.float64)
    return np.asarray(a, dtype=np.float64)


def _data(rng):
    u = rng.standard_normal(SHAPE).astype(np.float32)
    k = (rng.standard_normal(K_SHAPE) / 64).astype(np.float32)
    g = rng.standard_normal(SHAPE).astype(np.float32)
    return u, k, g


def _check(y, u, k, g, dtype):
    ref = reference.fftconv_direct(_host(u), _host(k), pregate=_host(g), postgate=_host(g))
    err = rel_err(_host(y), ref)
    assert err <= TOL[dtype], f"{dtype}: rel. error {err:.3e} > {TOL[dtype]}"


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_cupy_on_device_1(rng, dtype):
    cp = _cp()
    un, kn, gn = _data(rng)
    with cp.cuda.Device(1):
        u, g = cp.asarray(un.astype(dtype)), cp.asarray(gn.astype(dtype))
        k = cp.asarray(kn)
        out = cp.empty(SHAPE, dtype=dtype)
    assert cp.cuda.Device().id == 0
    y = cufftconv.fftconv(u, k, pregate=g, postgate=g)
    assert y.device.id == 1 and cp.cuda.Device().id == 0
    _check(y, u, k, g, dtype)

    plan = cufftconv.FFTConv(SHAPE, k=k, dtype=dtype, pregate=True, postgate=True)
    assert plan.route == ROUTE[dtype] and plan.spec.device == 1
    for _ in range(2):  # general path with device 0 current, fast path with device 1 current
        y = plan(u, pregate=g, postgate=g)
        assert y.device.id == 1
        _check(y, u, k, g, dtype)
        with cp.cuda.Device(1):
            out.fill(np.nan)
            y = plan(u, pregate=g, postgate=g, out=out)
        assert y is out
        _check(out, u, k, g, dtype)
    assert cp.cuda.Device().id == 0

    per_call = cufftconv.FFTConv(SHAPE, k_shape=K_SHAPE, dtype=dtype, k_dtype="float32",
                                 pregate=True, postgate=True, device=1)
    y = per_call(u, k, pregate=g, postgate=g)
    assert y.device.id == 1
    _check(y, u, k, g, dtype)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_torch_on_device_1(rng, dtype):
    torch = _torch()
    tdt = getattr(torch, dtype)
    dev = torch.device("cuda", 1)
    un, kn, gn = _data(rng)
    u, g = (torch.from_numpy(a).to(dev, tdt) for a in (un, gn))
    k = torch.from_numpy(kn).to(dev)
    assert torch.cuda.current_device() == 0
    y = cufftconv.fftconv(u, k, pregate=g, postgate=g)
    assert y.device == dev and y.dtype == tdt
    _check(y, u, k, g, dtype)
    plan = cufftconv.FFTConv(SHAPE, k=k, dtype=dtype, pregate=True, postgate=True)
    assert plan.route == ROUTE[dtype]
    for current in (0, 1):
        with torch.cuda.device(current):
            out = torch.full(SHAPE, float("nan"), dtype=tdt, device=dev)
            y = plan(u, pregate=g, postgate=g)
            plan(u, pregate=g, postgate=g, out=out)
        assert y.device == dev
        _check(y, u, k, g, dtype)
        _check(out, u, k, g, dtype)
    assert torch.cuda.current_device() == 0


def test_torch_autograd_on_device_1(rng):
    torch = _torch()
    from cufftconv.torch import FFTConv1d

    dev = torch.device("cuda", 1)
    torch.manual_seed(0)
    m = FFTConv1d(16, 1000, skip=True).to(dev)
    x = torch.randn(3, 16, 1000, device=dev, requires_grad=True)
    with torch.autocast("cuda", dtype=torch.float16):
        y = m(x)
    y.float().square().sum().backward()
    assert y.device == dev and x.grad.device == dev and m.kernel.grad.device == dev
    assert torch.isfinite(x.grad).all() and torch.isfinite(m.kernel.grad).all()
    # Same computation on device 0 gives the same gradients.
    m0 = FFTConv1d(16, 1000, skip=True).to("cuda:0")
    m0.load_state_dict(m.state_dict())
    x0 = x.detach().to("cuda:0").requires_grad_()
    with torch.autocast("cuda", dtype=torch.float16):
        y0 = m0(x0)
    y0.float().square().sum().backward()
    assert rel_err(_host(y), _host(y0)) <= 1e-6
    assert rel_err(_host(x.grad), _host(x0.grad)) <= 1e-6
    assert rel_err(_host(m.kernel.grad), _host(m0.kernel.grad)) <= 1e-6


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_cupy_mixed_devices(rng, dtype):
    cp = _cp()
    un, kn, gn = _data(rng)

    def on(dev, a):
        with cp.cuda.Device(dev):
            return cp.asarray(a)

    u0, u1 = on(0, un.astype(dtype)), on(1, un.astype(dtype))
    k0, k1 = on(0, kn), on(1, kn)
    g0 = on(0, gn.astype(dtype))
    with pytest.raises(ValueError, match="k: is on cuda:1 but u is on cuda:0"):
        cufftconv.fftconv(u0, k1)
    with pytest.raises(ValueError, match="pregate: is on cuda:0 but u is on cuda:1"):
        cufftconv.fftconv(u1, k1, pregate=g0)
    with pytest.raises(ValueError, match="postgate: is on cuda:0 but u is on cuda:1"):
        cufftconv.fftconv(u1, k1, postgate=g0)
    with pytest.raises(ValueError, match="out: is on cuda:0 but u is on cuda:1"):
        cufftconv.fftconv(u1, k1, out=cp.empty_like(u0))
    with pytest.raises(ValueError, match=r"k: is on cuda:1 but device=0"):
        cufftconv.FFTConv(SHAPE, k=k1, dtype=dtype, device=0)
    plan = cufftconv.FFTConv(SHAPE, k=k1, dtype=dtype, pregate=True)
    with pytest.raises(ValueError, match=r"u: got shape .* on cuda:0; this plan is for .* on cuda:1"):
        plan(u0, pregate=g0)
    with pytest.raises(ValueError, match=r"pregate: got dtype .* on cuda:0; this plan expects"):
        plan(u1, pregate=g0)
    per_call = cufftconv.FFTConv(SHAPE, k_shape=K_SHAPE, dtype=dtype, k_dtype="float32", device=1)
    with pytest.raises(ValueError, match=r"k: got shape .* on cuda:0; this plan is for .* on cuda:1"):
        per_call(u1, k0)
    with pytest.raises(ValueError, match="out: is on cuda:0"):
        per_call(u1, k1, out=cp.empty_like(u0))


def test_torch_mixed_devices(rng):
    torch = _torch()
    u0 = torch.randn(SHAPE, device="cuda:0", dtype=torch.float16)
    k1 = torch.randn(K_SHAPE, device="cuda:1")
    with pytest.raises(ValueError, match="k: is on cuda:1 but u is on cuda:0"):
        cufftconv.fftconv(u0, k1)
    plan = cufftconv.FFTConv(SHAPE, k=k1, dtype="float16")
    with pytest.raises(ValueError, match="on cuda:0; this plan is for .* on cuda:1"):
        plan(u0)
    u1 = u0.to("cuda:1")
    with pytest.raises(ValueError, match="out: is on cuda:0"):
        plan(u1, out=torch.empty_like(u0))
