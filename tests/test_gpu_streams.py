"""GPU: calls run on the caller's stream, never synchronise the device, and capture into graphs.

Two routes: the fused kernel (16-bit, L = 4096, FFT size 8192) and cuFFT (float32). Every
result is checked against the float64 reference on the data the call was meant to see.

* Ordering: the input is filled on a non-default stream behind a ~100 ms GPU wait and the call
  follows at once, with no synchronisation. A call that ran on any other stream would read the
  input before the fill (NaN) instead of after it.
* No device-wide synchronisation: stream A spins for ~300 ms, then a call on stream B returns
  and B's work finishes while A is still busy.
* CUDA graphs: a plan call captured with CuPy's stream capture and with ``torch.cuda.graph``,
  replayed on new data copied into the captured input buffer.
"""

from __future__ import annotations

import contextlib
import os
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave memory to CuPy/torch

import numpy as np
import pytest
from helpers import rel_err

import cufftconv
from cufftconv import reference

pytestmark = pytest.mark.gpu

B, H, L = 4, 32, 4096
SHAPE, K_SHAPE = (B, H, L), (H, L)
TOL = {"float16": 1e-3, "bfloat16": 6e-3, "float32": 2e-5}
ROUTE = {"float16": "fused-monarch", "bfloat16": "fused-monarch", "float32": "cufft"}
ORDER_WAIT_MS = 100  # behind the input's fill: long enough that a misplaced call reads NaN
BUSY_WAIT_MS = 300  # on the other stream: far longer than one call on these shapes

_SPIN_SRC = r"""
extern "C" __global__ void cufftconv_test_spin(unsigned long long ns) {
  // Busy-wait on the global nanosecond timer, so the wait does not depend on the clock rate.
  unsigned long long t0, t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  do {
    __nanosleep(1000);
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  } while (t - t0 < ns);
}
"""


def _cp():
    import cupy

    return cupy


def _torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    return torch


def _jax():
    jax = pytest.importorskip("jax")
    try:
        dev = jax.devices("gpu")[0]
    except RuntimeError:
        pytest.skip("JAX without a GPU backend")
    return jax, dev


def _spin(stream, ms: float) -> None:
    """Enqueue a ``ms`` millisecond GPU busy-wait on ``stream`` (a CuPy stream)."""
    cp = _cp()
    kern = cp.RawKernel(_SPIN_SRC, "cufftconv_test_spin")
    kern((1,), (1,), (np.uint64(int(ms * 1e6)),), stream=stream)


def _torch_side(s):
    """Torch stream ``s`` as a CuPy stream, for _spin."""
    from cufftconv.interop.streams import _external_stream

    return _external_stream(s.cuda_stream, s.device.index)


def _host(a) -> np.ndarray:
    if type(a).__module__.startswith("torch"):
        return a.detach().float().cpu().numpy().astype(np.float64)
    if hasattr(a, "get"):
        return a.get().astype(np.float64)
    return np.asarray(a).astype(np.float64)


def _ref(u, k) -> np.ndarray:
    return reference.fftconv_direct(_host(u), _host(k))


def _check(y, u, k, dtype: str) -> None:
    err = rel_err(_host(y), _ref(u, k))
    assert err <= TOL[dtype], f"{dtype}: rel. error {err:.3e} > {TOL[dtype]}"


def _np_data(rng):
    u = rng.standard_normal(SHAPE).astype(np.float32)
    k = (rng.standard_normal(K_SHAPE) / np.sqrt(L)).astype(np.float32)
    return u, k


def _call(api: str, plan, u, k, out=None):
    if api == "plan":
        return plan(u, out=out)
    return cufftconv.fftconv(u, k, out=out)


# --------------------------------------------------------------------------- ordering


@pytest.mark.parametrize("api", ["function", "plan"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_torch_stream_ordering(rng, dtype, api):
    torch = _torch()
    tdt = getattr(torch, dtype)
    un, kn = _np_data(rng)
    src = torch.from_numpy(un).to("cuda", tdt)
    k = torch.from_numpy(kn).cuda()
    u = torch.full(SHAPE, float("nan"), dtype=tdt, device="cuda")
    plan = cufftconv.FFTConv(SHAPE, k=k, dtype=dtype)
    assert plan.route == ROUTE[dtype]
    _call(api, plan, src, k)  # warm-up: plans and kernels exist before the timed part
    torch.cuda.synchronize()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        _spin(_torch_side(s), ORDER_WAIT_MS)
        u.copy_(src)
        y = _call(api, plan, u, k)
    s.synchronize()
    assert isinstance(y, torch.Tensor) and y.dtype == tdt and y.device == u.device
    _check(y, src, k, dtype)


@pytest.mark.parametrize("api", ["function", "plan"])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_cupy_stream_ordering(rng, dtype, api):
    cp = _cp()
    un, kn = _np_data(rng)
    src, k = cp.asarray(un.astype(dtype)), cp.asarray(kn)
    u = cp.full(SHAPE, np.nan, dtype=dtype)
    plan = cufftconv.FFTConv(SHAPE, k=k, dtype=dtype)
    assert plan.route == ROUTE[dtype]
    _call(api, plan, src, k)
    cp.cuda.Device().synchronize()
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        _spin(s, ORDER_WAIT_MS)
        u[...] = src
        y = _call(api, plan, u, k)
    s.synchronize()
    assert isinstance(y, cp.ndarray) and y.dtype == dtype
    _check(y, src, k, dtype)


@pytest.mark.parametrize("entry", ["cufftconv", "cufftconv.jax"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_jax_arrays(rng, dtype, entry):
    jax, dev = _jax()
    jnp = jax.numpy
    if entry == "cufftconv.jax":
        from cufftconv.jax import fftconv
    else:
        fftconv = cufftconv.fftconv
    un, kn = _np_data(rng)
    u0 = jax.device_put(un, dev)
    k = jax.device_put(kn, dev)
    u = (u0 * 2.0).astype(getattr(jnp, dtype))  # dispatched asynchronously, not waited for
    y = fftconv(u, k)
    assert isinstance(y, jax.Array) and dev in y.devices() and y.dtype == u.dtype
    _check(np.asarray(y.astype(jnp.float32)), np.asarray(u.astype(jnp.float32)), kn, dtype)


# --------------------------------------------------------------------------- no device sync


def _busy_then_call(start_busy, call, busy_done, sync_b) -> float:
    """Make stream A busy, run ``call`` on stream B; return the call's host time (s)."""
    start_busy()
    t0 = time.perf_counter()
    call()
    elapsed = time.perf_counter() - t0
    assert not busy_done(), (
        f"stream A finished while the call ran ({elapsed * 1e3:.1f} ms): the call waited for "
        "another stream's work (a device-wide synchronisation)"
    )
    sync_b()
    assert not busy_done(), "the call's work on stream B was ordered after stream A's"
    return elapsed


@pytest.mark.parametrize("api", ["function", "plan"])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_torch_no_device_sync(rng, dtype, api):
    torch = _torch()
    tdt = getattr(torch, dtype)
    un, kn = _np_data(rng)
    u = torch.from_numpy(un).to("cuda", tdt)
    k = torch.from_numpy(kn).cuda()
    plan = cufftconv.FFTConv(SHAPE, k=k, dtype=dtype)
    y = torch.empty(plan.out_shape, dtype=tdt, device="cuda")
    a, b = torch.cuda.Stream(), torch.cuda.Stream()
    b.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(b):
        for _ in range(2):  # warm-up on B: plans, kernels, pooled temporaries for this stream
            _call(api, plan, u, k, out=y)
    torch.cuda.synchronize()
    y.fill_(float("nan"))
    torch.cuda.synchronize()

    def call():
        with torch.cuda.stream(b):
            _call(api, plan, u, k, out=y)

    _busy_then_call(lambda: _spin(_torch_side(a), BUSY_WAIT_MS), call, a.query, b.synchronize)
    torch.cuda.synchronize()
    _check(y, u, k, dtype)


@pytest.mark.parametrize("api", ["function", "plan"])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_cupy_no_device_sync(rng, dtype, api):
    cp = _cp()
    un, kn = _np_data(rng)
    u, k = cp.asarray(un.astype(dtype)), cp.asarray(kn)
    plan = cufftconv.FFTConv(SHAPE, k=k, dtype=dtype)
    y = cp.empty(plan.out_shape, dtype=dtype)
    a, b = cp.cuda.Stream(non_blocking=True), cp.cuda.Stream(non_blocking=True)
    cp.cuda.Device().synchronize()
    with b:
        for _ in range(2):
            _call(api, plan, u, k, out=y)
        y.fill(np.nan)
    cp.cuda.Device().synchronize()

    def call():
        with b:
            _call(api, plan, u, k, out=y)

    _busy_then_call(lambda: _spin(a, BUSY_WAIT_MS), call, lambda: a.done, b.synchronize)
    cp.cuda.Device().synchronize()
    _check(y, u, k, dtype)


# --------------------------------------------------------------------------- CUDA graphs


def _async_allocator(dtype: str):
    """The cuFFT route allocates temporaries: stream-ordered allocations (cudaMallocAsync)
    become nodes of the graph. Blocks of CuPy's default pool would go back to the pool after
    capture while the graph still writes them. The fused route allocates nothing with out=."""
    cp = _cp()
    if dtype == "float16":
        return contextlib.nullcontext()
    return cp.cuda.using_allocator(cp.cuda.MemoryAsyncPool().malloc)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_cupy_graph_capture(rng, dtype):
    cp = _cp()
    un, kn = _np_data(rng)
    k = cp.asarray(kn)
    u = cp.asarray(un.astype(dtype))
    plan = cufftconv.FFTConv(SHAPE, k=k, dtype=dtype)
    assert plan.route == ROUTE[dtype]
    y = cp.empty(plan.out_shape, dtype=dtype)
    s = cp.cuda.Stream(non_blocking=True)
    with s, _async_allocator(dtype):
        plan(u, out=y)  # warm-up: the first call compiles and makes cuFFT plans
        s.synchronize()
        s.begin_capture()
        plan(u, out=y)
        graph = s.end_capture()
    for _ in range(3):
        new = rng.standard_normal(SHAPE).astype(dtype)
        with s:
            u.set(new, stream=s)
            y.fill(np.nan)
        graph.launch(stream=s)
        s.synchronize()
        _check(y, new, kn, dtype)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_torch_graph_plan_call(rng, dtype):
    """A plain FFTConv plan call on torch tensors (cufftconv.torch's graphs are covered in
    test_grad_gpu.py, where CuPy allocates through PyTorch's graph pool). The plain plan's
    cuFFT route allocates from CuPy, so it needs CuPy's async pool and relaxed capture."""
    torch = _torch()
    tdt = getattr(torch, dtype)
    un, kn = _np_data(rng)
    k = torch.from_numpy(kn).cuda()
    u = torch.from_numpy(un).to("cuda", tdt)
    plan = cufftconv.FFTConv(SHAPE, k=k, dtype=dtype)
    y = torch.empty(plan.out_shape, dtype=tdt, device="cuda")
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with _async_allocator(dtype):
        with torch.cuda.stream(s):
            for _ in range(2):
                plan(u, out=y)
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        # CuPy's async pool reads a pool attribute in malloc, which the default "global"
        # capture mode forbids (cudaErrorStreamCaptureUnsupported); "relaxed" allows it.
        mode = "global" if dtype == "float16" else "relaxed"
        with torch.cuda.graph(graph, capture_error_mode=mode):
            plan(u, out=y)
    for _ in range(3):
        new = torch.randn(SHAPE, device="cuda").to(tdt)
        u.copy_(new)
        y.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        _check(y, new, k, dtype)


# --------------------------------------------------------------------------- long route
# The long-sequence path forks its launch groups onto side streams and joins them back with
# events: the same guarantees must hold across that fork.
# causal, FFT size 131072 ("long-monarch"); 80 pairs: two launch groups of at most 64 (64 MiB
# of workspace each), so two side streams.
LONG_SHAPE = (10, 16, 1 << 16)


def _long_data(rng):
    u = rng.standard_normal(LONG_SHAPE).astype(np.float32)
    k = (rng.standard_normal(LONG_SHAPE[1:]) / np.sqrt(LONG_SHAPE[-1])).astype(np.float32)
    return u, k


@pytest.mark.parametrize("api", ["function", "plan"])
def test_long_route_torch_stream(rng, api):
    """Ordering behind a busy input fill, and no wait for another busy stream."""
    torch = _torch()
    un, kn = _long_data(rng)
    src = torch.from_numpy(un).to("cuda", torch.float16)
    k = torch.from_numpy(kn).cuda()
    u = torch.full(LONG_SHAPE, float("nan"), dtype=torch.float16, device="cuda")
    plan = cufftconv.FFTConv(LONG_SHAPE, k=k, dtype="float16")
    assert plan.route == "long-monarch"
    y = torch.empty(plan.out_shape, dtype=torch.float16, device="cuda")
    _call(api, plan, src, k, out=y)  # warm-up
    torch.cuda.synchronize()
    a, s = torch.cuda.Stream(), torch.cuda.Stream()
    y.fill_(float("nan"))
    torch.cuda.synchronize()

    def call():
        with torch.cuda.stream(s):
            _spin(_torch_side(s), ORDER_WAIT_MS)
            u.copy_(src)
            _call(api, plan, u, k, out=y)

    _busy_then_call(lambda: _spin(_torch_side(a), BUSY_WAIT_MS), call, a.query, s.synchronize)
    torch.cuda.synchronize()
    _check(y, src, k, "float16")


def test_long_route_cupy_stream_and_graph(rng):
    cp = _cp()
    un, kn = _long_data(rng)
    src, k = cp.asarray(un.astype(np.float16)), cp.asarray(kn)
    u = cp.full(LONG_SHAPE, np.nan, dtype=np.float16)
    plan = cufftconv.FFTConv(LONG_SHAPE, k=k, dtype="float16")
    assert plan.route == "long-monarch"
    y = cp.empty(plan.out_shape, dtype=np.float16)
    a, s = cp.cuda.Stream(non_blocking=True), cp.cuda.Stream(non_blocking=True)
    with s:
        plan(src, out=y)  # warm-up
    cp.cuda.Device().synchronize()
    y.fill(np.nan)
    cp.cuda.Device().synchronize()

    def call():
        with s:
            _spin(s, ORDER_WAIT_MS)
            u[...] = src
            plan(u, out=y)

    _busy_then_call(lambda: _spin(a, BUSY_WAIT_MS), call, lambda: a.done, s.synchronize)
    cp.cuda.Device().synchronize()
    _check(y, src, k, "float16")
    # Graph capture: the per-call workspace is a stream-ordered allocation (async pool), and
    # the side-stream fork/join is captured as graph dependencies.
    g = cp.cuda.Stream(non_blocking=True)
    with g, cp.cuda.using_allocator(cp.cuda.MemoryAsyncPool().malloc):
        plan(u, out=y)
        g.synchronize()
        g.begin_capture()
        plan(u, out=y)
        graph = g.end_capture()
    for _ in range(3):
        new = rng.standard_normal(LONG_SHAPE).astype(np.float16)
        with g:
            u.set(new, stream=g)
            y.fill(np.nan)
        graph.launch(stream=g)
        g.synchronize()
        _check(y, new, kn, "float16")
