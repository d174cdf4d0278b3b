"""The backward pass on the host (NumPy float64 path; CI runs these, no GPU or PyTorch needed).

y = postgate * conv(pregate * u, k) is linear in each operand, so for every operand X the
adjoint identity <dy, y(X -> d)> = <dX, d> holds exactly for a random direction d; the
forward here is the direct-sum reference, independent of any FFT.
"""

import numpy as np
import pytest
from helpers import rel_err

import cufftconv
from cufftconv import grad, reference
from cufftconv.dispatch import Route
from cufftconv.validation import MODES, build_spec

# (u shape, k shape): odd and prime L, Lk > L, L = 1, k broadcasting in every way, u
# broadcast by k.
SHAPES = [
    ((2, 3, 16), (3, 16)),
    ((2, 3, 13), (3, 5)),
    ((1, 2, 7), (2, 11)),
    ((4, 1), (4, 3)),
    ((1, 1), (1,)),
    ((3, 4, 17), (1, 4, 3)),
    ((2, 5, 12), (12,)),
    ((2, 3, 31), (2, 1, 31)),
    ((2, 1, 9), (3, 4)),
    ((23,), (19,)),
]


def _fwd(u, k, mode, pre=None, post=None):
    return reference.fftconv_direct(u, k, mode=mode, pregate=pre, postgate=post)


def _operands(rng, us, ks, mode, gated):
    u, k = rng.standard_normal(us), rng.standard_normal(ks)
    out_shape = _fwd(u, k, mode).shape
    pre = rng.standard_normal(us) if gated else None
    post = rng.standard_normal(out_shape) if gated else None
    return u, k, pre, post, out_shape


def _skip_circular(mode, us, ks):
    if mode == "circular" and ks[-1] > us[-1]:
        pytest.skip("circular needs Lk <= L")


@pytest.mark.parametrize("us,ks", SHAPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("gated", [False, True])
def test_adjoint_identity(rng, us, ks, mode, gated):
    _skip_circular(mode, us, ks)
    u, k, pre, post, out_shape = _operands(rng, us, ks, mode, gated)
    dy = rng.standard_normal(out_shape)
    grads = cufftconv.grad.fftconv_bwd(dy, u, k, mode=mode, pregate=pre, postgate=post)
    ops = [u, k, pre, post]
    for i, (op, g) in enumerate(zip(ops, grads)):
        if op is None:
            assert g is None
            continue
        assert isinstance(g, np.ndarray) and g.shape == op.shape and g.dtype == np.float64
        d = rng.standard_normal(op.shape)
        args = list(ops)
        args[i] = d
        lhs = float(np.sum(dy * _fwd(args[0], args[1], mode, args[2], args[3])))
        rhs = float(np.sum(g * d))
        assert abs(lhs - rhs) <= 1e-11 * (np.linalg.norm(dy) * np.linalg.norm(g) + 1), (i, lhs, rhs)


@pytest.mark.parametrize("mode", MODES)
def test_finite_differences(rng, mode):
    """A nonlinear loss: float64 central differences along a random direction per operand."""
    us, ks = (2, 3, 11), (3, 6)
    u, k, pre, post, out_shape = _operands(rng, us, ks, mode, True)
    w = rng.standard_normal(out_shape)

    def loss(u, k, pre, post):
        return 0.5 * float(np.sum(w * _fwd(u, k, mode, pre, post) ** 2))

    dy = w * _fwd(u, k, mode, pre, post)
    grads = cufftconv.grad.fftconv_bwd(dy, u, k, mode=mode, pregate=pre, postgate=post)
    ops, h = [u, k, pre, post], 1e-4
    for i, g in enumerate(grads):
        d = rng.standard_normal(ops[i].shape)
        plus, minus = list(ops), list(ops)
        plus[i], minus[i] = ops[i] + h * d, ops[i] - h * d
        fd = (loss(*plus) - loss(*minus)) / (2 * h)
        assert abs(fd - float(np.sum(g * d))) <= 1e-7 * (abs(fd) + 1), (i, fd, np.sum(g * d))


def test_dense_jacobian(rng):
    """Every entry: du and dk equal J^T dy with J built column by column from the forward."""
    u, k = rng.standard_normal((2, 7)), rng.standard_normal((2, 4))
    for mode in MODES:
        y = _fwd(u, k, mode)
        dy = rng.standard_normal(y.shape)
        du, dk, _, _ = cufftconv.grad.fftconv_bwd(dy, u, k, mode=mode)
        for which, x, g in ((0, u, du), (1, k, dk)):
            jt_dy = np.empty(x.size)
            for j in range(x.size):
                e = np.zeros(x.size)
                e[j] = 1.0
                args = [u, k]
                args[which] = e.reshape(x.shape)
                jt_dy[j] = np.sum(dy * _fwd(args[0], args[1], mode))
            np.testing.assert_allclose(g.ravel(), jt_dy, rtol=1e-11, atol=1e-11)


def test_against_library_forward(rng):
    """The adjoint of cufftconv.fftconv itself (the path users run), not only the reference."""
    for mode in MODES:
        u, k = rng.standard_normal((2, 3, 40)), rng.standard_normal((3, 9))
        pre = rng.standard_normal(u.shape)
        y = cufftconv.fftconv(u, k, mode=mode, pregate=pre)
        dy = rng.standard_normal(y.shape)
        du, dk, dpre, _ = cufftconv.grad.fftconv_bwd(dy, u, k, mode=mode, pregate=pre)
        d = rng.standard_normal(k.shape)
        lhs = np.sum(dy * cufftconv.fftconv(u, d, mode=mode, pregate=pre))
        assert abs(lhs - np.sum(dk * d)) <= 1e-10 * abs(lhs) + 1e-10
        # Euler: y is linear in u, so <dy, y> = <du, u> = <dk, k> = <dpre, pre>.
        e = np.sum(dy * y)
        for g, x in ((du, u), (dk, k), (dpre, pre)):
            assert abs(np.sum(g * x) - e) <= 1e-10 * abs(e) + 1e-10


def test_causal_long_filter_tail_is_zero(rng):
    u, k = rng.standard_normal((2, 3, 10)), rng.standard_normal((3, 25))
    _, dk, _, _ = cufftconv.grad.fftconv_bwd(rng.standard_normal((2, 3, 10)), u, k)
    assert dk.shape == (3, 25)
    assert np.all(dk[:, 10:] == 0) and np.any(dk[:, :10] != 0)


def test_dtypes_and_precision(rng):
    """Each gradient in its operand's dtype; the values those of float64 on the same inputs."""
    B, H, L, Lk = 2, 3, 50, 20
    u = rng.standard_normal((B, H, L)).astype(np.float16)
    k = rng.standard_normal((H, Lk)).astype(np.float32)
    pre = rng.standard_normal((B, H, L)).astype(np.float16)
    post = rng.standard_normal((B, H, L)).astype(np.float32)
    dy = rng.standard_normal((B, H, L)).astype(np.float16)
    grads = cufftconv.grad.fftconv_bwd(dy, u, k, pregate=pre, postgate=post)
    ref = cufftconv.grad.fftconv_bwd(
        *(a.astype(np.float64) for a in (dy, u, k)),
        pregate=pre.astype(np.float64), postgate=post.astype(np.float64),
    )
    for g, r, dt in zip(grads, ref, ("float16", "float32", "float16", "float32")):
        assert g.dtype == np.dtype(dt)
        assert rel_err(g, r) <= (1e-3 if dt == "float16" else 1e-6)


def test_strided_inputs_not_modified(rng):
    base = rng.standard_normal((3, 40, 2))
    u = base.transpose(2, 0, 1)  # (2, 3, 40), non-contiguous
    k = rng.standard_normal((40, 3)).T[:, ::2]  # (3, 20), strided
    dy = rng.standard_normal((2, 3, 40))
    before = [a.copy() for a in (u, k, dy)]
    grads = cufftconv.grad.fftconv_bwd(dy, u, k, mode="same")
    ref = cufftconv.grad.fftconv_bwd(*(np.ascontiguousarray(a) for a in (dy, u, k)), mode="same")
    for g, r in zip(grads[:2], ref[:2]):
        np.testing.assert_array_equal(g, r)
    for a, b in zip((u, k, dy), before):
        np.testing.assert_array_equal(a, b)


def test_host_fast_len():
    for n in [1, 2, 7, 97, 1000, 1025, 4097, 65537]:
        m = grad._fast_len(n)
        assert m >= n
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        assert r == 1
        assert all(not _smooth(j) for j in range(n, m))


def _smooth(j):
    for p in (2, 3, 5):
        while j % p == 0:
            j //= p
    return j == 1


def test_fused_executor_can_register(rng, monkeypatch):
    """A backward row registered ahead of the exact ones is chosen for the specs it accepts."""
    monkeypatch.setattr(grad, "_BWD_TABLE", list(grad._BWD_TABLE))
    calls = []

    class Fake(grad.HostBwdExecutor):
        def run_bwd(self, *args, **kw):
            calls.append(kw["needs"])
            return super().run_bwd(*args, **kw)

    route = Route(
        "fake-fused",
        "test row",
        lambda spec, dev: None if spec.mode == "causal" else "causal only",
        lambda spec, dev: Fake(spec),
    )
    grad.register_bwd(route, before="cufft")
    try:
        names = [r.name for r in grad.bwd_routes()]
        assert names.index("fake-fused") == names.index("cufft") - 1
        spec = build_spec((2, 3, 8), (3, 8), mode="full", dtype="float32", k_dtype="float32")
        assert grad.choose_bwd(spec, None).name != "fake-fused"
        u, k = rng.standard_normal((2, 3, 8)), rng.standard_normal((3, 8))
        du, _, _, _ = cufftconv.grad.fftconv_bwd(np.ones((2, 3, 8)), u, k)
        assert calls == [(True, True, True, True)] and du.shape == u.shape
        # The internal entry computes only what is asked for.
        res = grad._fftconv_bwd(
            np.ones((2, 3, 8)), u, k, mode="causal", pregate=None, postgate=None,
            needs=(False, True, False, False),
        )
        assert res[0] is None and res[1].shape == k.shape
    finally:
        grad.clear_bwd_cache()


# --------------------------------------------------------------------------- bad input


def _arr(*shape, dtype=np.float32):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize(
    "kwargs,exc,pattern",
    [
        ({"dy": _arr(2, 3, 15)}, ValueError, r"dy: got shape \(2, 3, 15\).*output's shape \(2, 3, 16\)"),
        ({"dy": _arr(2, 3, 16, dtype=np.float64)}, TypeError, r"dy: got dtype float64.*u's dtype float32"),
        ({"dy": [[1.0]]}, TypeError, r"dy: got a Python list"),
        ({"dy": None}, TypeError, r"dy: got an object of type builtins.NoneType"),
        ({"mode": "fulll"}, ValueError, r"mode: got 'fulll'"),
        ({"k": _arr(4, 5)}, ValueError, r"k: leading axes \(4,\)"),
        ({"k": _arr(3, 20), "mode": "circular"}, ValueError, r"k: length Lk=20 .*circular"),
        ({"pregate": _arr(2, 3, 15)}, ValueError, r"pregate: got shape \(2, 3, 15\)"),
        ({"postgate": _arr(2, 3, 15)}, ValueError, r"postgate: got shape \(2, 3, 15\)"),
        ({"u": _arr(2, 3, 16).astype(np.int32)}, TypeError, r"u: dtype int32 is not supported"),
        ({"k": _arr(3, 4).astype(np.complex64)}, TypeError, r"k: dtype complex64"),
        ({"u": np.ones((), np.float32)}, ValueError, r"u: got a 0-d array"),
    ],
)
def test_bad_input(kwargs, exc, pattern):
    args = {"dy": _arr(2, 3, 16), "u": _arr(2, 3, 16), "k": _arr(3, 4), "mode": "causal"}
    args.update(kwargs)
    dy, u, k = args.pop("dy"), args.pop("u"), args.pop("k")
    with pytest.raises(exc, match=pattern):
        cufftconv.grad.fftconv_bwd(dy, u, k, **args)


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        cufftconv.grad.fftconv_bwd(_arr(2, 8), _arr(2, 8), _arr(8), "causal")


def test_spec_checked_before_work(monkeypatch):
    """Validation happens before an executor is built or any data is imported."""
    def boom(*a, **k):
        raise AssertionError("executor built before validation")

    monkeypatch.setattr(grad, "_executor", boom)
    with pytest.raises(ValueError, match="dy:"):
        cufftconv.grad.fftconv_bwd(_arr(2, 9), _arr(2, 8), _arr(8))
