"""The NumPy path end to end (CI runs these; on a GPU machine host arrays go through the GPU)."""

import hashlib

import numpy as np
import pytest
from helpers import rel_err

import cufftconv
from cufftconv import reference
from cufftconv.validation import MODES

TOL = {"float16": 1e-3, "float32": 2e-5, "float64": 1e-11}


def _digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        if a is not None:
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("gated", [False, True])
def test_round_trip(rng, mode, dtype, gated):
    B, H, L, Lk = 2, 3, 131, 47
    u = rng.standard_normal((B, H, L)).astype(dtype)
    k = rng.standard_normal((H, Lk)).astype(np.float32)
    Lout = {"full": L + Lk - 1, "valid": L - Lk + 1}.get(mode, L)
    pre = rng.standard_normal((B, H, L)).astype(dtype) if gated else None
    post = rng.standard_normal((B, H, Lout)).astype(dtype) if gated else None
    before = _digest(u, k, pre, post)
    y = cufftconv.fftconv(u, k, mode=mode, pregate=pre, postgate=post)
    assert isinstance(y, np.ndarray) and y.dtype == np.dtype(dtype)
    assert y.shape == (B, H, Lout)
    ref = reference.fftconv_direct(u, k, mode=mode, pregate=pre, postgate=post)
    assert rel_err(y, ref) <= TOL[dtype]
    assert _digest(u, k, pre, post) == before, "inputs were written to"


@pytest.mark.parametrize("mode", ["causal", "full", "same", "valid"])
def test_filter_longer_than_signal(rng, mode):
    u = rng.standard_normal((3, 20))
    k = rng.standard_normal((3, 57))
    y = cufftconv.fftconv(u, k, mode=mode)
    assert rel_err(y, reference.fftconv_direct(u, k, mode=mode)) <= 1e-11


@pytest.mark.parametrize("L,Lk", [(1, 1), (1, 5), (2, 1), (97, 97), (1009, 13), (4096, 4096)])
def test_lengths(rng, L, Lk):
    u = rng.standard_normal((2, L))
    k = rng.standard_normal(Lk)
    for mode in MODES:
        if mode == "circular" and Lk > L:
            continue
        y = cufftconv.fftconv(u, k, mode=mode)
        assert rel_err(y, reference.fftconv_direct(u, k, mode=mode)) <= 1e-11, mode


def test_matches_scipy(rng):
    signal = pytest.importorskip("scipy.signal")
    u = rng.standard_normal((4, 1, 300))
    k = rng.standard_normal((4, 1, 71))
    for mode in ("full", "same", "valid"):
        y = cufftconv.fftconv(u, k, mode=mode)
        assert rel_err(y, signal.fftconvolve(u, k, mode=mode, axes=-1)) <= 1e-11


def test_broadcasting_filter_over_batch(rng):
    u = rng.standard_normal((1, 5, 64))
    k = rng.standard_normal((3, 5, 16))  # k broadcasts u's batch axis
    y = cufftconv.fftconv(u, k, mode="full")
    assert y.shape == (3, 5, 79)
    assert rel_err(y, reference.fftconv_direct(u, k, mode="full")) <= 1e-11


def test_non_contiguous_views(rng):
    base = rng.standard_normal((4, 6, 2 * 200))
    u = base[::2, ::-1, ::2]  # strided, reversed and sliced
    k = rng.standard_normal((40, 6)).T  # transposed filter
    y = cufftconv.fftconv(u, k)
    assert rel_err(y, reference.fftconv_direct(np.ascontiguousarray(u), np.ascontiguousarray(k))) \
        <= 1e-11


def test_out_argument(rng):
    u = rng.standard_normal((2, 3, 50)).astype(np.float32)
    k = rng.standard_normal((3, 10)).astype(np.float32)
    out = np.full((2, 3, 59), np.nan, np.float32)
    res = cufftconv.fftconv(u, k, mode="full", out=out)
    assert res is out and np.isfinite(out).all()
    assert rel_err(out, reference.fftconv_direct(u, k, mode="full")) <= 2e-5


def test_out_may_alias_u(rng):
    u = rng.standard_normal((2, 64))
    k = rng.standard_normal(9)
    ref = reference.fftconv_direct(u, k)
    cufftconv.fftconv(u, k, out=u)
    assert rel_err(u, ref) <= 1e-11


def test_plan_reuses_filter(rng):
    k = rng.standard_normal((3, 33)).astype(np.float32)
    with cufftconv.FFTConv((2, 3, 100), k=k, dtype="float32", mode="same",
                           pregate=True, postgate=True) as plan:
        assert plan.out_shape == (2, 3, 100)
        for _ in range(3):
            u, g1, g2 = (rng.standard_normal((2, 3, 100)).astype(np.float32) for _ in range(3))
            y = plan(u, pregate=g1, postgate=g2)
            ref = reference.fftconv_direct(u, k, mode="same", pregate=g1, postgate=g2)
            assert rel_err(y, ref) <= 2e-5


def test_plan_with_filter_per_call(rng):
    plan = cufftconv.FFTConv((3, 40), k_shape=(3, 40), dtype="float64", k_dtype="float64",
                             mode="circular", device="cpu" if not cufftconv.gpu_available()
                             else None)
    if plan.spec.device is not None:
        pytest.skip("host plan only")
    for _ in range(2):
        u, k = rng.standard_normal((3, 40)), rng.standard_normal((3, 40))
        y = plan(u, k)
        assert rel_err(y, reference.fftconv_direct(u, k, mode="circular")) <= 1e-11


def test_repr_and_route():
    plan = cufftconv.FFTConv((2, 8), k=np.ones(8, np.float32) * 0.5, dtype="float32")
    assert plan.route in {r.name for r in cufftconv.dispatch.routes()}
    assert "FFTConv(" in repr(plan)


def test_functional_plan_cache(rng):
    cufftconv.clear_plan_cache()
    u = rng.standard_normal((2, 64)).astype(np.float32)
    k = rng.standard_normal(64).astype(np.float32)
    a = cufftconv.fftconv(u, k)
    b = cufftconv.fftconv(u, k)
    assert np.array_equal(a, b), "same input must give bitwise the same output"
    from cufftconv import api

    assert len(api._plans) == 1


def test_no_gpu_uses_numpy_route():
    if cufftconv.gpu_available():
        pytest.skip("a GPU is present")
    plan = cufftconv.FFTConv((2, 8), k=np.ones(8, np.float32), dtype="float32")
    assert plan.route == "numpy-reference"


def test_error_bound_rule():
    from cufftconv.cli import error_bound

    assert error_bound("float16", 10_000) == 1e-3
    assert error_bound("bfloat16", 10_000) == 6e-3
    assert error_bound("float16", 6) == 2.5e-3  # two roundings cannot average out
    assert error_bound("float32", 6) == 2e-5  # exact paths keep their bound


def test_info_prints_both_tables(capsys):
    """`python -m cufftconv info` names every forward and backward row."""
    from cufftconv import cli, dispatch, grad

    assert cli.main(["info", "--lengths", "1000"]) == 0
    out = capsys.readouterr().out
    assert "Dispatch table" in out and "Backward table" in out
    for route in (*dispatch.routes(), *grad.bwd_routes()):
        assert route.name in out
