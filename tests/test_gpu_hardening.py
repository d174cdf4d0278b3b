"""GPU robustness: concurrent first use, inputs never written, bad data, out-of-memory."""

import hashlib
import threading

import numpy as np
import pytest
from helpers import rel_err

import cufftconv
from cufftconv import reference

pytestmark = pytest.mark.gpu


def _cp():
    import cupy

    return cupy


def _digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(a.get().tobytes())
    return h.hexdigest()


def test_sixteen_threads_first_use():
    """16 threads hit kernels nobody compiled yet; each gets the right answer."""
    cp = _cp()
    cufftconv.clear_plan_cache()
    rng = np.random.default_rng()
    # Odd configurations (postgate only, 512/2048) so that earlier tests have not compiled them.
    cases = []
    for i in range(16):
        L = (512, 2048)[i % 2]
        u = rng.standard_normal((2, 3, L)).astype(np.float16)
        k = rng.standard_normal((3, L)).astype(np.float32)
        g = rng.standard_normal((2, 3, L)).astype(np.float16)
        cases.append((u, k, g))
    results = [None] * 16
    errors = []
    barrier = threading.Barrier(16)

    def work(i):
        try:
            u, k, g = cases[i]
            with cp.cuda.Device(0):
                barrier.wait()
                y = cufftconv.fftconv(cp.asarray(u), cp.asarray(k), mode="circular",
                                      postgate=cp.asarray(g))
                results[i] = y.get()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for (u, k, g), y in zip(cases, results):
        ref = reference.fftconv_direct(u, k, mode="circular", postgate=g)
        assert rel_err(y, ref) <= 1e-3


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_inputs_never_written(dtype):
    cp = _cp()
    rng = np.random.default_rng()
    u = cp.asarray(rng.standard_normal((3, 4, 1500)).astype(dtype))
    k = cp.asarray(rng.standard_normal((4, 1500)).astype(np.float32))
    pre = cp.asarray(rng.standard_normal((3, 4, 1500)).astype(dtype))
    post = cp.asarray(rng.standard_normal((3, 4, 1500)).astype(dtype))
    before = _digest(u, k, pre, post)
    plan = cufftconv.FFTConv(u.shape, k=k, dtype=dtype, pregate=True, postgate=True)
    for _ in range(3):
        plan(u, pregate=pre, postgate=post)
        cufftconv.fftconv(u, k, mode="full")
        cufftconv.fftconv(u[:, :, ::2], k, mode="same")
    cp.cuda.Device().synchronize()
    assert _digest(u, k, pre, post) == before


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_nan_in_input_propagates(dtype):
    """A NaN in one sequence shows in that sequence's output only; no crash, no silent zeros."""
    cp = _cp()
    rng = np.random.default_rng()
    u = rng.standard_normal((4, 2, 1024)).astype(dtype)
    u[1, 0, 100] = np.nan
    k = rng.standard_normal((2, 1024)).astype(np.float32)
    y = cufftconv.fftconv(cp.asarray(u), cp.asarray(k)).get()
    bad = np.isnan(y).any(axis=-1)
    assert bad[1, 0], "the NaN vanished"
    # The fused path packs batches (0, 1) of a channel into one complex sequence, so the NaN
    # may reach its partner; every other sequence must stay clean.
    allowed = np.zeros_like(bad)
    allowed[0:2, 0] = True
    assert not bad[~allowed].any()
    ok = ~np.isnan(y).any(axis=-1)
    ref = reference.fftconv_direct(np.nan_to_num(u.astype(np.float64)), k)
    assert rel_err(y[ok], ref[ok]) <= 1e-3


def test_out_of_memory_is_a_memory_error():
    cp = _cp()
    # A broadcast view: 4 bytes of storage that claim 2**36 elements, so the cuFFT path's
    # workspace cannot fit in any GPU's memory.
    u = cp.broadcast_to(cp.ones(1, dtype=cp.float32), (2**18, 2**18))
    k = cp.ones(3, dtype=cp.float32)
    with pytest.raises(MemoryError, match=r"not enough GPU memory for u of shape \(262144, 262144\)"):
        cufftconv.fftconv(u, k)
