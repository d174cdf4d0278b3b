"""GPU tests of the backward pass and the PyTorch / JAX integration (run on the GPU machine).

References are float64 on the same (already rounded) inputs: the forward from
``reference.fftconv_direct``, the gradients from the host ``numpy.fft`` adjoint that
tests/test_grad.py checks against the direct sums.
"""

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave memory to CuPy/torch

import numpy as np
import pytest
from helpers import rel_err

import cufftconv
from cufftconv import grad, reference
from cufftconv.validation import MODES, build_spec

pytestmark = pytest.mark.gpu

DEV = "cuda"  # torch device of these tests
JAX_PLATFORM = "gpu"
TOL = {"float16": 2e-3, "bfloat16": 1.5e-2, "float32": 1e-4, "float64": 1e-10}


def _torch():
    torch = pytest.importorskip("torch")
    if DEV == "cuda" and not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    return torch


def _jax():
    jax = pytest.importorskip("jax")
    try:
        dev = jax.devices(JAX_PLATFORM)[0]
    except RuntimeError:
        pytest.skip(f"JAX without a {JAX_PLATFORM} backend")
    return jax, dev


def _host(a):
    if a is None:
        return None
    if hasattr(a, "get"):
        return a.get().astype(np.float64)
    if type(a).__module__.startswith("torch"):
        return a.detach().double().cpu().numpy()
    return np.asarray(a).astype(np.float64)


def _dtype(a):
    return str(a.dtype).removeprefix("torch.")


def _ref_bwd(dy, u, k, pre, post, mode):
    """(du, dk, dpre, dpost) in float64 from the host adjoint, on the same rounded inputs."""
    h = [_host(a) for a in (dy, u, k, pre, post)]
    spec = build_spec(
        h[1].shape, h[2].shape, mode=mode, dtype="float64", k_dtype="float64",
        pregate_dtype=None if pre is None else "float64",
        postgate_dtype=None if post is None else "float64",
    )
    return grad.HostBwdExecutor(spec).run_bwd(*h)


def _check_grads(grads, ref, ops, kind):
    for i, (g, r, op) in enumerate(zip(grads, ref, ops)):
        if op is None:
            assert g is None
            continue
        assert kind(g), (i, type(g))
        assert tuple(g.shape) == tuple(op.shape) and _dtype(g) == _dtype(op), (i, g.shape, g.dtype)
        hg = _host(g)
        assert np.isfinite(hg).all(), i
        # a gradient is as precise as the transforms that made it: 16-bit u runs 16-bit
        # transforms, so dk (k's dtype, say float32) gets u's tolerance (the figures)
        tol = max(TOL[_dtype(g)], TOL[_dtype(ops[0])])
        assert rel_err(hg, r) <= tol, (i, rel_err(hg, r), tol)


# --------------------------------------------------------------------------- fftconv_bwd


SHAPES = [  # (u shape, k shape): odd/prime L, Lk > L, k broadcast over B or over all
    ((2, 3, 257), (3, 100)),
    ((1, 4, 127), (4, 300)),
    ((3, 2, 1000), (1, 2, 1000)),
    ((2, 5, 64), (64,)),
    ((2, 1, 4099), (3, 33)),
]


@pytest.mark.parametrize("us,ks", SHAPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("gated", [False, True])
def test_cupy_bwd(rng, us, ks, mode, dtype, gated):
    cp = pytest.importorskip("cupy")
    if mode == "circular" and ks[-1] > us[-1]:
        pytest.skip("circular needs Lk <= L")
    out_shape = build_spec(us, ks, mode=mode, dtype=dtype, k_dtype="float32").out_shape

    def arr(shape, dt):
        return cp.asarray(rng.standard_normal(shape).astype(dt))

    u, k, dy = arr(us, dtype), arr(ks, np.float32), arr(out_shape, dtype)
    pre = arr(us, dtype) if gated else None
    post = arr(out_shape, np.float32) if gated else None
    grads = cufftconv.grad.fftconv_bwd(dy, u, k, mode=mode, pregate=pre, postgate=post)
    _check_grads(grads, _ref_bwd(dy, u, k, pre, post, mode), (u, k, pre, post),
                 lambda g: isinstance(g, cp.ndarray))


def test_cupy_bwd_on_non_default_stream(rng):
    cp = pytest.importorskip("cupy")
    with cp.cuda.Stream(non_blocking=True):
        u = cp.asarray(rng.standard_normal((4, 16, 3000)).astype(np.float32))
        for _ in range(10):  # a chain of work on this stream to race against
            u = u * 1.0001
        k = cp.asarray(rng.standard_normal((16, 3000)).astype(np.float32))
        dy = cp.asarray(rng.standard_normal((4, 16, 3000)).astype(np.float32))
        du, dk, _, _ = cufftconv.grad.fftconv_bwd(dy, u, k)
        du, dk = du.get(), dk.get()
    ref = _ref_bwd(dy, u, k, None, None, "causal")
    assert rel_err(du, ref[0]) <= 1e-4 and rel_err(dk, ref[1]) <= 1e-4


def test_numpy_inputs_bwd_on_gpu(rng):
    u, k = rng.standard_normal((2, 3, 500)).astype(np.float32), rng.standard_normal((3, 70))
    dy = rng.standard_normal((2, 3, 500)).astype(np.float32)
    du, dk, _, _ = cufftconv.grad.fftconv_bwd(dy, u, k, mode="same")
    assert isinstance(du, np.ndarray) and du.dtype == np.float32 and dk.dtype == np.float64
    ref = _ref_bwd(dy, u, k, None, None, "same")
    assert rel_err(du, ref[0]) <= 1e-4 and rel_err(dk, ref[1]) <= 1e-10


# --------------------------------------------------------------------------- PyTorch


def test_torch_bwd_bf16(rng):
    torch = _torch()
    import cufftconv.torch as ct

    u = torch.randn(2, 6, 1000, device=DEV, dtype=torch.bfloat16)
    k = torch.randn(6, 333, device=DEV)
    pre, post, dy = (torch.randn_like(u) for _ in range(3))
    ref = _ref_bwd(dy, u, k, pre, post, "causal")
    for fn in (cufftconv.grad.fftconv_bwd, ct.fftconv_bwd):
        grads = fn(dy, u, k, mode="causal", pregate=pre, postgate=post)
        _check_grads(grads, ref, (u, k, pre, post),
                     lambda g: isinstance(g, torch.Tensor) and g.device == u.device)


@pytest.mark.parametrize("mode", MODES)
def test_torch_autograd(rng, mode):
    torch = _torch()
    import cufftconv.torch as ct

    u = torch.randn(3, 8, 700, device=DEV, requires_grad=True)
    k = torch.randn(8, 700 if mode == "circular" else 900, device=DEV, requires_grad=True)
    pre = torch.randn(3, 8, 700, device=DEV, requires_grad=True)
    Lout = ct.fftconv(u, k, mode=mode).shape[-1]
    post = torch.randn(3, 8, Lout, device=DEV, requires_grad=True)
    dy = torch.randn(3, 8, Lout, device=DEV)
    ref = _ref_bwd(dy, u, k, pre, post, mode)
    y_ref = reference.fftconv_direct(*map(_host, (u, k)), mode=mode, pregate=_host(pre),
                                     postgate=_host(post))
    for call in (
        lambda: ct.fftconv(u, k, mode=mode, pregate=pre, postgate=post),
        lambda: ct.FFTConvFunction.apply(u, k, pre, post, mode),
    ):
        for t in (u, k, pre, post):
            t.grad = None
        y = call()
        assert rel_err(_host(y), y_ref) <= TOL["float32"]
        y.backward(dy)
        _check_grads([t.grad for t in (u, k, pre, post)], ref, (u, k, pre, post),
                     lambda g: isinstance(g, torch.Tensor))
    # Only what is needed: no gradient for u or the gates when only k asks for one.
    uu, kk = u.detach(), k.detach().requires_grad_()
    ct.fftconv(uu, kk, mode=mode).backward(dy)
    assert uu.grad is None and kk.grad is not None


def test_torch_gradcheck_fp64():
    torch = _torch()
    import cufftconv.torch as ct

    torch.manual_seed(0)
    for mode in ("causal", "same", "valid", "circular"):
        u = torch.randn(2, 3, 13, device=DEV, dtype=torch.float64, requires_grad=True)
        k = torch.randn(3, 5, device=DEV, dtype=torch.float64, requires_grad=True)
        pre = torch.randn(2, 3, 13, device=DEV, dtype=torch.float64, requires_grad=True)
        Lout = ct.fftconv(u, k, mode=mode).shape[-1]
        post = torch.randn(2, 3, Lout, device=DEV, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(
            lambda u, k, pre, post, mode=mode: ct.fftconv(
                u, k, mode=mode, pregate=pre, postgate=post
            ),
            (u, k, pre, post),
        )


@pytest.mark.parametrize("dt", ["float16", "bfloat16"])
def test_module_under_autocast(rng, dt):
    torch = _torch()
    from cufftconv.torch import FFTConv1d

    adt = getattr(torch, dt)
    m = FFTConv1d(8, 500, skip=True).to(DEV)
    x = torch.randn(4, 8, 500, device=DEV, requires_grad=True)
    g = torch.randn(4, 8, 500, device=DEV)
    with torch.autocast(DEV, dtype=adt):
        y = m(x, pregate=g)
    assert y.dtype == adt
    dy = torch.randn_like(y)
    y.backward(dy)
    assert m.kernel.grad.dtype == torch.float32 and x.grad.dtype == torch.float32
    assert m.D.grad.dtype == torch.float32
    # What it computes in: u and the gate rounded to the autocast dtype, the filter in fp32.
    xc, gc = x.detach().to(adt), g.to(adt)
    D = _host(m.D)[:, None]
    skip = D * _host(x) * _host(g)
    y_ref = reference.fftconv_direct(_host(xc), _host(m.kernel), pregate=_host(gc)) + skip
    assert rel_err(_host(y), y_ref) <= TOL[dt]
    ref = _ref_bwd(dy, xc, m.kernel, gc, None, "causal")
    # dk comes from 16-bit transforms of u and dy (the fused backward): the fp16 figure
    assert rel_err(_host(m.kernel.grad), ref[1]) <= TOL["float16"]
    assert rel_err(_host(x.grad), ref[0] + _host(dy) * D * _host(g)) <= TOL[dt]


def _hyena_layer(torch, D, L, **conv_kw):
    from cufftconv.torch import FFTConv1d

    nn = torch.nn

    class HyenaLayer(nn.Module):
        """x + out(q * conv(k * v, h) + skip): a one-order Hyena operator, x (B, L, D)."""

        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(D)
            self.proj = nn.Linear(D, 3 * D)
            self.conv = FFTConv1d(D, L, skip=True, **conv_kw)
            self.out = nn.Linear(D, D)
            with torch.no_grad():
                self.proj.bias[: 2 * D] = 1.0  # gates start near the identity

        def forward(self, x):
            q, k, v = self.proj(self.norm(x)).transpose(1, 2).chunk(3, dim=1)
            return x + self.out(self.conv(v, pregate=k, postgate=q).transpose(1, 2))

    return HyenaLayer()


def test_torch_compile(rng):
    torch = _torch()
    torch.manual_seed(0)
    model = torch.nn.Sequential(_hyena_layer(torch, 16, 128), _hyena_layer(torch, 16, 128))
    model = model.to(DEV)
    x = torch.randn(4, 128, 16, device=DEV)

    def step(f):
        model.zero_grad(set_to_none=True)
        out = f(x)
        out.square().mean().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    y0, g0 = step(model)
    compiled = torch.compile(model, fullgraph=True)
    y1, g1 = step(compiled)
    assert rel_err(_host(y1), _host(y0)) <= 1e-5
    for a, b in zip(g1, g0):
        assert rel_err(_host(a), _host(b)) <= 1e-4


def test_cuda_graph_capture_and_replay(rng):
    torch = _torch()
    if DEV != "cuda":
        pytest.skip("CUDA graphs need CUDA")
    from cufftconv.torch import FFTConv1d

    torch.manual_seed(0)
    m = FFTConv1d(16, 1000, mode="causal").to(DEV)
    x = torch.randn(4, 16, 1000, device=DEV, requires_grad=True)  # static input
    gate = torch.randn(4, 16, 1000, device=DEV, dtype=torch.float32)
    w = torch.randn(4, 16, 1000, device=DEV)

    def fwd_bwd():
        y = m(x, postgate=gate)
        (y * w).sum().backward()
        return y

    # Warm-up on a side stream: plans and kernels are made outside the capture.
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            m.zero_grad(set_to_none=True)
            x.grad = None
            fwd_bwd()
    torch.cuda.current_stream().wait_stream(s)

    m.zero_grad(set_to_none=True)
    x.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = fwd_bwd()
    fwd_graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(fwd_graph):
        static_y_fwd = m(x, postgate=gate)

    for _ in range(3):
        with torch.no_grad():
            x.copy_(torch.randn_like(x))
            gate.copy_(torch.randn_like(gate))
            m.kernel.copy_(torch.randn_like(m.kernel) * 0.02)
            static_y.fill_(float("nan"))
            static_y_fwd.fill_(float("nan"))
        graph.replay()
        fwd_graph.replay()
        torch.cuda.synchronize()
        y_ref = reference.fftconv_direct(_host(x), _host(m.kernel), postgate=_host(gate))
        assert rel_err(_host(static_y), y_ref) <= 1e-5
        assert rel_err(_host(static_y_fwd), y_ref) <= 1e-5
        ref = _ref_bwd(w, x, m.kernel, None, gate, "causal")
        assert rel_err(_host(x.grad), ref[0]) <= 1e-4
        assert rel_err(_host(m.kernel.grad), ref[1]) <= 1e-4


def test_torch_bad_input():
    torch = _torch()
    import cufftconv.torch as ct
    from cufftconv.torch import FFTConv1d

    u = torch.randn(2, 3, 10, device=DEV)
    with pytest.raises(ValueError, match="mode: got 'nope'"):
        ct.fftconv(u, torch.randn(3, 4, device=DEV), mode="nope")
    with pytest.raises(TypeError, match="k: got ndarray"):
        ct.fftconv(u, np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"k: leading axes \(5,\)"):
        ct.fftconv(u, torch.randn(5, 4, device=DEV))
    with pytest.raises(ValueError, match=r"u: got shape \(2, 4, 10\)"):
        FFTConv1d(3, 10).to(DEV)(torch.randn(2, 4, 10, device=DEV))
    with pytest.raises(ValueError, match="skip"):
        FFTConv1d(3, 10, mode="full", skip=True)
    with pytest.raises(ValueError, match="dy: got shape"):
        ct.fftconv_bwd(torch.randn(2, 3, 9, device=DEV), u, torch.randn(3, 4, device=DEV))


def test_hyena_block_trains_torch(rng):
    torch = _torch()
    torch.manual_seed(0)
    B, L, D = 8, 256, 16
    model = torch.nn.Sequential(_hyena_layer(torch, D, L), _hyena_layer(torch, D, L)).to(DEV)
    # Target: x plus a fixed causal long convolution of x (decaying filters, memory ~ 30);
    # the loss starts near var(conv) ~ 1 and only the long convolutions can bring it down.
    t = torch.arange(L, device=DEV)
    teacher = torch.randn(D, L, device=DEV) * torch.exp(-t / 30.0) / 4
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    import cufftconv.torch as ct

    for _ in range(100):
        x = torch.randn(B, L, D, device=DEV)
        target = x + ct.fftconv(x.transpose(1, 2), teacher).transpose(1, 2)
        loss = torch.nn.functional.mse_loss(model(x), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert np.isfinite(losses).all() and last < 0.3 * first and last < 0.4, (first, last)


# --------------------------------------------------------------------------- JAX


@pytest.mark.parametrize("mode", MODES)
def test_jax_custom_vjp(rng, mode):
    jax, dev = _jax()
    jnp = jax.numpy
    from cufftconv.jax import fftconv

    def arr(*shape):
        return jax.device_put(rng.standard_normal(shape).astype(np.float32), dev)

    u, k, pre = arr(2, 4, 300), arr(4, 120), arr(2, 4, 300)
    Lout = fftconv(u, k, mode=mode).shape[-1]
    post, dy = arr(2, 4, Lout), arr(2, 4, Lout)

    def f(u, k, pre, post):
        return jnp.sum(dy * fftconv(u, k, mode=mode, pregate=pre, postgate=post))

    ref = _ref_bwd(dy, u, k, pre, post, mode)
    grads = jax.grad(f, argnums=(0, 1, 2, 3))(u, k, pre, post)
    _check_grads(grads, ref, (u, k, pre, post),
                 lambda g: isinstance(g, jax.Array) and dev in g.devices())
    if mode in ("causal", "valid"):  # the jit path (pure_callback) as well
        grads = jax.jit(jax.grad(f, argnums=(0, 1, 2, 3)))(u, k, pre, post)
        _check_grads(grads, ref, (u, k, pre, post), lambda g: isinstance(g, jax.Array))
    ug = jax.grad(lambda u: fftconv(u, k, mode=mode).sum())(u)  # ungated
    assert ug.shape == u.shape


def test_jax_bf16(rng):
    jax, dev = _jax()
    jnp = jax.numpy
    from cufftconv.jax import fftconv

    u = jax.device_put(rng.standard_normal((2, 4, 500)).astype(np.float32), dev)
    u = u.astype(jnp.bfloat16)
    k = jax.device_put(rng.standard_normal((4, 200)).astype(np.float32), dev)
    dy = jnp.ones((2, 4, 500), jnp.bfloat16)
    y, vjp = jax.vjp(lambda u, k: fftconv(u, k), u, k)
    du, dk = vjp(dy)
    assert y.dtype == du.dtype == jnp.bfloat16 and dk.dtype == jnp.float32
    ref = _ref_bwd(dy, u, k, None, None, "causal")
    assert rel_err(_host(du.astype(jnp.float32)), ref[0]) <= TOL["bfloat16"]
    assert rel_err(_host(dk), ref[1]) <= TOL["float16"]  # 16-bit transforms (fused backward)


def test_hyena_block_trains_jax(rng):
    jax, dev = _jax()
    jnp = jax.numpy
    from cufftconv.jax import fftconv

    B, L, D = 8, 256, 16
    key = jax.random.PRNGKey(0)

    def init_layer(key):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        bound = 1 / np.sqrt(D)  # nn.Linear's init; gate biases 1 as in the torch model
        return {
            "ln": jnp.ones(D), "ln_b": jnp.zeros(D),
            "proj": jax.random.uniform(k1, (D, 3 * D), minval=-bound, maxval=bound),
            "proj_b": jnp.concatenate([jnp.ones(2 * D), jnp.zeros(D)]),
            "h": 0.02 * jax.random.normal(k2, (D, L)), "skip": jax.random.normal(k4, (D,)),
            "out": jax.random.uniform(k3, (D, D), minval=-bound, maxval=bound),
            "out_b": jnp.zeros(D),
        }

    def layer(p, x):  # x (B, L, D)
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        xn = (x - mu) / jnp.sqrt(var + 1e-5) * p["ln"] + p["ln_b"]
        q, k, v = jnp.split((xn @ p["proj"] + p["proj_b"]).transpose(0, 2, 1), 3, axis=1)
        y = fftconv(v, p["h"], pregate=k, postgate=q) + q * k * v * p["skip"][:, None]
        return x + y.transpose(0, 2, 1) @ p["out"] + p["out_b"]

    key, k1, k2, k3 = jax.random.split(key, 4)
    params = jax.device_put([init_layer(k1), init_layer(k2)], dev)
    t = jnp.arange(L)
    teacher = jax.device_put(jax.random.normal(k3, (D, L)) * jnp.exp(-t / 30.0) / 4, dev)

    def loss_fn(params, x, target):
        for p in params:
            x = layer(p, x)
        return jnp.mean((x - target) ** 2)

    # Adam by hand (no optax dependency).
    lr, b1, b2, eps = 1e-2, 0.9, 0.999, 1e-8
    m = jax.tree_util.tree_map(jnp.zeros_like, params)
    s = jax.tree_util.tree_map(jnp.zeros_like, params)
    losses = []
    for step in range(1, 101):
        key, sub = jax.random.split(key)
        x = jax.device_put(jax.random.normal(sub, (B, L, D)), dev)
        target = x + fftconv(x.transpose(0, 2, 1), teacher).transpose(0, 2, 1)
        loss, g = jax.value_and_grad(loss_fn)(params, x, target)
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
        s = jax.tree_util.tree_map(lambda s, g: b2 * s + (1 - b2) * g * g, s, g)
        c1, c2 = 1 - b1**step, 1 - b2**step
        params = jax.tree_util.tree_map(
            lambda p, m, s, c1=c1, c2=c2: p - lr * (m / c1) / (jnp.sqrt(s / c2) + eps),
            params, m, s,
        )
        losses.append(float(loss))
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert np.isfinite(losses).all() and last < 0.3 * first and last < 0.4, (first, last)
