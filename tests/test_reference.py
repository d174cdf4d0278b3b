"""Tests of ``cufftconv.reference``: the NumPy Monarch FFT convolution vs numpy.fft and SciPy.

No GPU needed. Inputs are fresh random normals (never zeros) each run: parametrized tests
use conftest's ``rng`` (seed printed on failure), hypothesis tests draw a seed. Errors are
``||y - y_ref|| / ||y_ref||``.
"""

from __future__ import annotations

import doctest
import itertools
import math

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from cufftconv import reference as ref

TOL = 1e-12
SEEDS = st.integers(0, 2**63 - 1)


# ----------------------------------------------------------------------------- helpers


def assert_close(y: np.ndarray, y_ref: np.ndarray, tol: float = TOL, what: str = "") -> None:
    y, y_ref = np.asarray(y), np.asarray(y_ref)
    assert y.shape == y_ref.shape, f"{what}: shape {y.shape} != {y_ref.shape}"
    den = np.linalg.norm(y_ref)
    assert den > 0, f"{what}: reference is all zeros"
    err = np.linalg.norm(y - y_ref) / den
    assert err <= tol, f"{what}: relative error {err:.3e} > {tol:.0e}"


def crandn(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def scipy_conv(
    u: np.ndarray,
    k: np.ndarray,
    mode: str,
    pregate: np.ndarray | None = None,
    postgate: np.ndarray | None = None,
) -> np.ndarray:
    """The contract, written with scipy.signal.fftconvolve on explicitly broadcast inputs."""
    if pregate is not None:
        u = u * pregate
    L, Lk = u.shape[-1], k.shape[-1]
    batch = np.broadcast_shapes(u.shape[:-1], k.shape[:-1])
    # Broadcast first: scipy's "same" would otherwise crop broadcast axes to u's shape.
    uu = np.broadcast_to(u, batch + (L,))
    kk = np.broadcast_to(k, batch + (Lk,))
    if mode in ("full", "same", "valid"):
        y = scipy.signal.fftconvolve(uu, kk, mode=mode, axes=-1)
    else:
        full = scipy.signal.fftconvolve(uu, kk, mode="full", axes=-1)
        y = full[..., :L].copy()
        if mode == "circular":
            y[..., : Lk - 1] += full[..., L:]
    if postgate is not None:
        y = y * postgate
    return y


def out_len(mode: str, L: int, Lk: int) -> int:
    return {"full": L + Lk - 1, "valid": abs(L - Lk) + 1}.get(mode, L)


def circular_np(u: np.ndarray, k: np.ndarray, n: int) -> np.ndarray:
    return np.fft.irfft(np.fft.rfft(u, n) * np.fft.rfft(k, n), n)


def unpermute(X: np.ndarray, n: int, factors: tuple[int, ...] | None = None) -> np.ndarray:
    out = np.empty_like(X)
    out[..., ref.monarch_order(n, factors)] = X
    return out


def test_doctests() -> None:
    res = doctest.testmod(ref, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 20
    assert res.failed == 0


# ------------------------------------------------------------------------ factorization


@pytest.mark.parametrize("e", range(25))
def test_factorize_pow2_table(e: int) -> None:
    n = 1 << e
    f = ref.factorize(n)
    assert math.prod(f) == n
    expected = (16,) * (e // 4) + ((1 << (e % 4),) if e % 4 else ())
    assert f == (expected or (1,))
    assert all(r == 16 for r in f[:-1]) and f[-1] in (1, 2, 4, 8, 16)


@pytest.mark.parametrize(
    ("n", "kw", "expected"),
    [
        (256, {}, (16, 16)),
        (1024, {}, (16, 16, 4)),
        (1024, {"radix": 32}, (32, 32)),
        (1024, {"max_order": 2}, (32, 32)),
        (4096, {}, (16, 16, 16)),
        (4096, {"max_order": 2}, (64, 64)),
        (8192, {}, (16, 16, 16, 2)),
        (16384, {}, (16, 16, 16, 4)),
        (32768, {}, (16, 16, 16, 8)),
        (32768, {"radix": 32}, (32, 32, 32)),
        (32768, {"max_order": 3}, (32, 32, 32)),
        (1 << 16, {}, (16, 16, 16, 16)),
        (1 << 20, {}, (16, 16, 16, 16, 16)),
        (1 << 20, {"max_order": 4}, (32, 32, 32, 32)),
        (1 << 18, {"max_order": 3}, (64, 64, 64)),
        (1 << 17, {"max_order": 4}, (32, 16, 16, 16)),
        (1 << 23, {"max_order": 4}, (64, 64, 64, 32)),
        (1 << 24, {"max_order": 4}, (64, 64, 64, 64)),
        (6, {}, (6,)),
        (97, {}, (97,)),
        (1000, {}, (50, 20)),
        (2 * 1031, {}, (1031, 2)),
    ],
)
def test_factorize_examples(n: int, kw: dict, expected: tuple[int, ...]) -> None:
    assert ref.factorize(n, **kw) == expected


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300_000))
def test_factorize_any_n(n: int) -> None:
    f = ref.factorize(n)
    assert math.prod(f) == n
    for r in f:
        is_prime = r > 1 and all(r % p for p in range(2, math.isqrt(r) + 1))
        assert r <= 64 or is_prime, f"{n}: radix {r} is neither <= 64 nor prime"


@pytest.mark.parametrize(
    ("args", "kw"),
    [
        ((0,), {}),
        ((-4,), {}),
        ((64,), {"radix": 3}),
        ((64,), {"radix": 128}),
        ((1 << 20,), {"max_order": 3}),
        ((64,), {"max_order": 0}),
    ],
)
def test_factorize_rejects(args: tuple, kw: dict) -> None:
    with pytest.raises(ValueError):
        ref.factorize(*args, **kw)


@pytest.mark.parametrize("factors", [(3, 5), (16, 2), (0, 16), ()])
def test_bad_factors_rejected(factors: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        ref.monarch_fft(np.ones(16), factors)


@pytest.mark.parametrize(
    ("L", "Lk", "mode", "n"),
    [
        (1, 1, "causal", 1),
        (1, 5, "causal", 1),
        (2, 1, "causal", 2),
        (1000, 1000, "causal", 2048),
        (1024, 1024, "causal", 2048),
        (1000, 5000, "causal", 2048),
        (1000, 5000, "full", 8192),
        (1000, 5000, "same", 8192),
        (1000, 5000, "valid", 8192),
        (513, 1, "full", 1024),
        (1000, 7, "circular", 1000),
        (97, 97, "circular", 97),
        ((1 << 19) + 1, 1 << 19, "causal", 1 << 20),
    ],
)
def test_fft_size(L: int, Lk: int, mode: str, n: int) -> None:
    assert ref.fft_size(L, Lk, mode) == n


def test_fft_size_rejects() -> None:
    with pytest.raises(ValueError):
        ref.fft_size(0, 3)
    with pytest.raises(ValueError):
        ref.fft_size(3, 3, "bogus")


# ---------------------------------------------------------------------- DFT building blocks


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 12, 16, 17, 32, 64])
def test_dft_matrix(n: int, rng: np.random.Generator) -> None:
    F = ref.dft_matrix(n)
    Fi = ref.dft_matrix(n, inverse=True)
    assert F.shape == (n, n) and F.dtype == np.complex128
    assert_close(F, np.fft.fft(np.eye(n), axis=0), 1e-14, "F")
    assert_close(Fi, np.fft.ifft(np.eye(n), axis=0), 1e-14, "F^-1")
    assert_close(Fi @ F, np.eye(n), 1e-14, "F^-1 F")
    x = crandn(rng, (n,))
    assert_close(F @ x, np.fft.fft(x), TOL, "F x")


@pytest.mark.parametrize(("n1", "n2"), [(1, 1), (2, 8), (16, 16), (4, 3), (16, 4096)])
def test_twiddle_matrix(n1: int, n2: int) -> None:
    T = ref.twiddle_matrix(n1, n2)
    k1, m2 = np.meshgrid(np.arange(n1), np.arange(n2), indexing="ij")
    expected = np.exp(-2j * np.pi * k1 * m2 / (n1 * n2))
    assert T.shape == (n1, n2)
    assert_close(T, expected, 1e-13, "T")
    assert_close(ref.twiddle_matrix(n1, n2, inverse=True), np.conj(expected), 1e-13, "conj T")


def test_matrices_are_copies() -> None:
    F = ref.dft_matrix(16)
    F[:] = 0
    assert ref.dft_matrix(16)[1, 1] != 0


@pytest.mark.parametrize(
    ("n", "factors"),
    [(8, (2, 4)), (8, (4, 2)), (256, None), (1024, (4, 16, 16)), (60, (3, 4, 5)), (97, None)],
)
def test_monarch_order_is_a_permutation(n: int, factors: tuple[int, ...] | None) -> None:
    perm = ref.monarch_order(n, factors)
    assert perm[0] == 0
    assert np.array_equal(np.sort(perm), np.arange(n))
    if factors is not None and len(factors) == 2:
        n1, n2 = factors  # position k1*N2 + k2 holds k1 + N1*k2
        expected = (np.arange(n1)[:, None] + n1 * np.arange(n2)[None, :]).ravel()
        assert np.array_equal(perm, expected)


# --------------------------------------------------------------------------- Monarch FFT


def check_fft(x: np.ndarray, factors: tuple[int, ...] | None = None) -> None:
    n = x.shape[-1]
    X = ref.monarch_fft(x, factors)
    assert X.dtype == np.complex128 and X.shape == x.shape
    assert_close(X, np.fft.fft(x)[..., ref.monarch_order(n, factors)], TOL, f"fft n={n}")
    assert_close(ref.monarch_ifft(X, factors), x, TOL, f"ifft(fft) n={n}")


@pytest.mark.parametrize("e", range(4, 21))
def test_monarch_fft_pow2(e: int, rng: np.random.Generator) -> None:
    n = 1 << e
    check_fft(crandn(rng, (3, n) if n <= 1 << 14 else (n,)))


ANY_N = [1, 2, 3, 5, 6, 7, 12, 15, 17, 30, 45, 97, 100, 210, 243, 360, 1000, 1009, 1155]
ANY_N += [2 * 521, 4099, 3 * 4099, 10007]  # radices above 512 run as Bluestein


@pytest.mark.parametrize("n", ANY_N)
def test_monarch_fft_any_n(n: int, rng: np.random.Generator) -> None:
    check_fft(crandn(rng, (2, n)))


@pytest.mark.parametrize(
    ("n", "factors"),
    [
        (1024, (32, 32)),
        (1024, (16, 16, 4)),
        (1024, (4, 16, 16)),
        (1024, (2,) * 10),
        (4096, (64, 64)),
        (32768, (32, 32, 32)),
        (32768, (16, 16, 16, 8)),
        (32768, (8, 64, 64)),
        (12, (3, 4)),
        (12, (4, 3)),
        (60, (3, 4, 5)),
        (64, (1, 64, 1)),
        (2048, (1024, 2)),
        (600, (600,)),
        (2 * 1031, (2, 1031)),
    ],
)
def test_monarch_fft_explicit_factors(
    n: int, factors: tuple[int, ...], rng: np.random.Generator
) -> None:
    check_fft(crandn(rng, (2, n)), factors)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 3000),
    batch=st.sampled_from([(), (1,), (3,), (2, 2)]),
    real=st.booleans(),
    seed=SEEDS,
)
def test_monarch_fft_hypothesis(n: int, batch: tuple[int, ...], real: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(batch + (n,)) if real else crandn(rng, batch + (n,))
    check_fft(x)


# -------------------------------------------------------------------------------- pruning


@settings(max_examples=60, deadline=None)
@given(e=st.integers(0, 14), frac=st.floats(0, 1), out_frac=st.floats(0, 1), seed=SEEDS)
def test_pruning_equals_unpruned(e: int, frac: float, out_frac: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 1 << e
    lx = max(1, round(frac * n))
    keep = max(1, round(out_frac * n))
    x = crandn(rng, (2, lx))
    X = ref.monarch_fft(x, n=n)
    Xu = ref.monarch_fft(x, n=n, prune=False)
    assert_close(X, Xu, 1e-14, "pruned fwd vs unpruned")
    assert_close(X, np.fft.fft(x, n)[..., ref.monarch_order(n)], TOL, "pruned fwd vs fft")
    y = ref.monarch_ifft(X, out_len=keep)
    yu = ref.monarch_ifft(X, out_len=keep, prune=False)
    assert_close(y, yu, 1e-14, "pruned inv vs unpruned")
    assert_close(y, np.fft.ifft(np.fft.fft(x, n))[..., :keep], TOL, "pruned inv vs ifft")


@pytest.mark.parametrize("n", [256, 1024, 4096, 32768, 1 << 16])
def test_causal_pruning_halves_first_and_last_stage(
    n: int, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int, int, bool]] = []
    orig = ref._dft_stage

    def spy(x: np.ndarray, m: int, rows_out: int, inverse: bool) -> np.ndarray:
        calls.append((m, x.shape[-2], rows_out, inverse))
        return orig(x, m, rows_out, inverse)

    monkeypatch.setattr(ref, "_dft_stage", spy)
    n1 = ref.factorize(n)[0]
    x = rng.standard_normal((2, n // 2))  # causal: second half of the padded input is zero
    X = ref.monarch_fft(x, n=n)
    assert calls[0] == (n1, n1 // 2, n1, False), "first forward stage reads half of F_N1"
    calls.clear()
    y = ref.monarch_ifft(X, out_len=n // 2).real
    assert calls[-1] == (n1, n1, n1 // 2, True), "last inverse stage computes half the rows"
    assert_close(y, x, TOL, "round trip")
    calls.clear()
    Xu = ref.monarch_fft(x, n=n, prune=False)
    assert calls[0] == (n1, n1, n1, False), "unpruned first stage reads all of F_N1"
    assert_close(X, Xu, 1e-14, "pruned == unpruned")


# ------------------------------------------------------------------ real-data packing tricks


REAL_SIZES = [2, 4, 6, 8, 10, 16, 30, 64, 100, 256, 1000, 2 * 1009, 4096, 1 << 16]


@pytest.mark.parametrize("n", REAL_SIZES)
def test_rfft_monarch_vs_numpy(n: int, rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, n))
    Xp = ref.rfft_monarch(x)
    assert Xp.shape == (3, n // 2)
    assert_close(ref.rfft_unpack(Xp), np.fft.rfft(x), TOL, "rfft")
    assert_close(ref.irfft_monarch(Xp), x, TOL, "irfft(rfft)")


@pytest.mark.parametrize("n", REAL_SIZES)
def test_irfft_monarch_vs_numpy(n: int, rng: np.random.Generator) -> None:
    # Pack numpy's half spectrum of a random real signal, then invert it with the trick.
    y = rng.standard_normal((2, n))
    X = np.fft.rfft(y)
    m = n // 2
    Xp = X[..., ref.monarch_order(m)].copy()
    Xp[..., 0] = X[..., 0].real + 1j * X[..., m].real
    assert_close(ref.irfft_monarch(Xp), y, TOL, "irfft")
    keep = max(1, n // 3)
    assert_close(ref.irfft_monarch(Xp, out_len=keep), y[..., :keep], TOL, "irfft out_len")
    assert_close(ref.irfft_monarch(Xp, out_len=keep, prune=False), y[..., :keep], TOL, "no prune")


@settings(max_examples=50, deadline=None)
@given(m=st.integers(1, 1500), frac=st.floats(0, 1), prune=st.booleans(), seed=SEEDS)
def test_rfft_monarch_padded_hypothesis(m: int, frac: float, prune: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 2 * m
    x = rng.standard_normal(max(1, round(frac * n)))
    Xp = ref.rfft_monarch(x, n=n, prune=prune)
    assert_close(ref.rfft_unpack(Xp), np.fft.rfft(x, n), TOL, "padded rfft")
    assert_close(ref.irfft_monarch(Xp, out_len=x.size, prune=prune), x, TOL, "round trip")


@pytest.mark.parametrize("factors", [(8, 8, 8), (512,), (2, 256), (4, 128)])
def test_rfft_monarch_explicit_factors(factors: tuple[int, ...], rng: np.random.Generator) -> None:
    x = rng.standard_normal(1024)
    Xp = ref.rfft_monarch(x, factors)
    assert_close(ref.rfft_unpack(Xp, factors), np.fft.rfft(x), TOL, "rfft")
    assert_close(ref.irfft_monarch(Xp, factors), x, TOL, "irfft")


def test_rfft_monarch_rejects_odd() -> None:
    with pytest.raises(ValueError):
        ref.rfft_monarch(np.ones(7))
    with pytest.raises(ValueError):
        ref.rfft_monarch(np.ones(9), n=8)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 30, 97, 256, 1000, 4096])
def test_two_for_one_split_vs_rfft(n: int, rng: np.random.Generator) -> None:
    a, b = rng.standard_normal((2, 3, n))
    A, B = ref.two_for_one_split(ref.monarch_fft(a + 1j * b))
    h = n // 2 + 1
    assert_close(unpermute(A, n)[..., :h], np.fft.rfft(a), TOL, "a")
    assert_close(unpermute(B, n)[..., :h], np.fft.rfft(b), TOL, "b")


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 2000),
    la=st.floats(0, 1),
    lk=st.floats(0, 1),
    keep=st.floats(0, 1),
    prune=st.booleans(),
    seed=SEEDS,
)
def test_circular_convs_hypothesis(
    n: int, la: float, lk: float, keep: float, prune: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    L, Lk, keep_n = (max(1, round(f * n)) for f in (la, lk, keep))
    ua, ub = rng.standard_normal((2, 2, 3, L))
    k = rng.standard_normal((3, Lk))
    kspec = ref.filter_spectrum(k, n, prune=prune)
    assert_close(kspec, np.fft.fft(k, n)[..., ref.monarch_order(n)], TOL, "filter spectrum")
    ya, yb = ref.conv_two_for_one(ua, ub, kspec, out_len=keep_n, prune=prune)
    assert_close(ya, circular_np(ua, k, n)[..., :keep_n], TOL, "two-for-one a")
    assert_close(yb, circular_np(ub, k, n)[..., :keep_n], TOL, "two-for-one b")
    yc = ref.conv_complex(ua, kspec, out_len=keep_n, prune=prune)
    assert_close(yc, circular_np(ua, k, n)[..., :keep_n], TOL, "complex")
    if n % 2 == 0:
        kspec_r = ref.filter_spectrum_rfft(k, n, prune=prune)
        yr = ref.conv_real_fft(ua, kspec_r, out_len=keep_n, prune=prune)
        assert_close(yr, circular_np(ua, k, n)[..., :keep_n], TOL, "real fft")


# ------------------------------------------------------------------------------ fftconv

SHAPES = [
    ((2, 3), (3,)),  # (B, H, L) with (H, Lk)
    ((2, 3), (1,)),
    ((2, 3), ()),
    ((), ()),
    ((4,), (2, 4)),  # k has more leading axes than u
    ((), (3,)),
    ((3, 1), (1, 4)),
    ((2, 1, 3), (5, 1)),  # six sequences share each of five filters
    ((5,), (5,)),  # nothing shared
    ((4, 2, 3), (4, 1, 1)),  # shared axes after an unshared one
]
GRID_LENGTHS = [(1, 1), (1, 6), (7, 3), (129, 151), (151, 129), (1134, 37), (97, 97), (64, 64)]


def run_case(
    rng: np.random.Generator,
    ushape: tuple[int, ...],
    kshape: tuple[int, ...],
    L: int,
    Lk: int,
    mode: str,
    packing: str,
    prune: bool,
    gated: bool,
) -> None:
    if mode == "circular" and Lk > L:
        with pytest.raises(ValueError):
            ref.fftconv(np.ones(ushape + (L,)), np.ones(kshape + (Lk,)), mode=mode)
        return
    u = rng.standard_normal(ushape + (L,))
    k = rng.standard_normal(kshape + (Lk,))
    batch = np.broadcast_shapes(ushape, kshape)
    pre = post = None
    if gated:
        pre = rng.standard_normal(u.shape)
        post = rng.standard_normal(batch + (out_len(mode, L, Lk),))
    kw = {"mode": mode, "pregate": pre, "postgate": post}
    if packing == "real_fft" and mode == "circular" and L % 2:
        with pytest.raises(ValueError):
            ref.fftconv(u, k, packing=packing, **kw)
        return
    y = ref.fftconv(u, k, packing=packing, prune_causal=prune, **kw)
    what = f"{mode} {packing} prune={prune} u{u.shape} k{k.shape}"
    assert y.dtype == np.float64
    assert_close(y, scipy_conv(u, k, mode, pre, post), TOL, what + " vs scipy")
    assert_close(y, ref.fftconv_direct(u, k, **kw), TOL, what + " vs direct")


@pytest.mark.parametrize("gated", [False, True], ids=["plain", "gated"])
@pytest.mark.parametrize("prune", [True, False], ids=["prune", "noprune"])
@pytest.mark.parametrize("packing", ref.PACKINGS)
@pytest.mark.parametrize("mode", ref.MODES)
def test_fftconv_grid(
    mode: str, packing: str, prune: bool, gated: bool, rng: np.random.Generator
) -> None:
    for L, Lk in GRID_LENGTHS:
        run_case(rng, (2, 3), (3,), L, Lk, mode, packing, prune, gated)


@pytest.mark.parametrize("packing", ref.PACKINGS)
@pytest.mark.parametrize(("ushape", "kshape"), SHAPES, ids=[f"u{a}-k{b}" for a, b in SHAPES])
def test_fftconv_broadcasting(
    ushape: tuple[int, ...], kshape: tuple[int, ...], packing: str, rng: np.random.Generator
) -> None:
    for mode, (L, Lk) in itertools.product(ref.MODES, [(50, 13), (13, 50), (30, 30)]):
        run_case(rng, ushape, kshape, L, Lk, mode, packing, True, mode != "valid")


@settings(max_examples=150, deadline=None)
@given(
    mode=st.sampled_from(ref.MODES),
    packing=st.sampled_from(ref.PACKINGS),
    prune=st.booleans(),
    gated=st.booleans(),
    shapes=st.sampled_from(SHAPES),
    L=st.integers(1, 2500),
    Lk=st.integers(1, 2500),
    seed=SEEDS,
)
def test_fftconv_hypothesis(
    mode: str,
    packing: str,
    prune: bool,
    gated: bool,
    shapes: tuple[tuple[int, ...], tuple[int, ...]],
    L: int,
    Lk: int,
    seed: int,
) -> None:
    if mode == "circular":
        Lk = 1 + Lk % L
    run_case(np.random.default_rng(seed), *shapes, L, Lk, mode, packing, prune, gated)


PRIMES = [2, 3, 5, 7, 11, 13, 97, 127, 521, 1031, 4099]


@pytest.mark.parametrize("L", PRIMES + [9, 15, 105, 2 * 97, 3 * 521])
@pytest.mark.parametrize("packing", ["auto", "two_for_one", "complex"])
def test_fftconv_circular_odd_and_prime(L: int, packing: str, rng: np.random.Generator) -> None:
    for Lk in {1, max(1, L // 3), L}:
        run_case(rng, (2, 2), (2,), L, Lk, "circular", packing, True, True)
        run_case(rng, (3,), (), L, Lk, "circular", packing, True, False)


@pytest.mark.parametrize("mode", ["causal", "full", "same", "valid"])
@pytest.mark.parametrize("L", [2, 3, 97, 521, 1031])
def test_fftconv_prime_lengths_linear(L: int, mode: str, rng: np.random.Generator) -> None:
    for Lk in (1, 5, L - 1 or 1, L, L + 7, 3 * L + 1):
        run_case(rng, (2, 3), (3,), L, Lk, mode, "auto", True, False)
        run_case(rng, (), (), L, Lk, mode, "auto", True, True)


@pytest.mark.parametrize(
    ("L", "Lk", "mode", "packing"),
    [
        ((1 << 19) + 12345, (1 << 19) - 12345, "causal", "real_fft"),  # 2^20 real
        (1 << 19, 1000, "full", "complex"),  # one 2^20-point complex FFT each way
    ],
)
def test_fftconv_long(L: int, Lk: int, mode: str, packing: str, rng: np.random.Generator) -> None:
    assert ref.fft_size(L, Lk, mode) == 1 << 20
    u, k = rng.standard_normal(L), rng.standard_normal(Lk)
    y = ref.fftconv(u, k, mode=mode, packing=packing)
    assert_close(y, ref.fftconv_direct(u, k, mode=mode), TOL, "long conv")


@pytest.mark.parametrize(
    ("L", "Lk", "mode", "packing", "factors"),
    [
        (512, 512, "causal", "complex", (32, 32)),
        (512, 512, "causal", "two_for_one", (4, 16, 16)),
        (512, 512, "causal", "complex", (2,) * 10),
        (512, 512, "causal", "real_fft", (8, 8, 8)),
        (300, 200, "full", "complex", (8, 64)),
        (60, 60, "circular", "complex", (3, 4, 5)),
        (60, 60, "circular", "real_fft", (5, 6)),
    ],
)
def test_fftconv_explicit_factors(
    L: int, Lk: int, mode: str, packing: str, factors: tuple[int, ...], rng: np.random.Generator
) -> None:
    u, k = rng.standard_normal((2, 3, L)), rng.standard_normal((3, Lk))
    y = ref.fftconv(u, k, mode=mode, packing=packing, factors=factors)
    assert_close(y, scipy_conv(u, k, mode), TOL, "explicit factors")


@pytest.mark.parametrize(
    ("ushape", "kshape", "n", "chosen"),
    [
        ((2, 3), (3,), 256, "conv_two_for_one"),
        ((2, 1, 3), (5, 1), 256, "conv_two_for_one"),
        ((3,), (3,), 256, "conv_real_fft"),
        ((), (4,), 256, "conv_real_fft"),
        ((), (), 101, "conv_complex"),  # circular, odd L
        ((4,), (4,), 101, "conv_complex"),
    ],
)
def test_fftconv_auto_packing(
    ushape: tuple[int, ...],
    kshape: tuple[int, ...],
    n: int,
    chosen: str,
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    used: list[str] = []
    for name in ("conv_two_for_one", "conv_real_fft", "conv_complex"):
        fn = getattr(ref, name)
        monkeypatch.setattr(
            ref, name, lambda *a, _n=name, _f=fn, **kw: (used.append(_n), _f(*a, **kw))[1]
        )
    mode = "circular" if n % 2 else "causal"
    L = n if mode == "circular" else 100
    u, k = rng.standard_normal(ushape + (L,)), rng.standard_normal(kshape + (40,))
    y = ref.fftconv(u, k, mode=mode)
    assert used == [chosen]
    assert_close(y, scipy_conv(u, k, mode), TOL, "auto")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.longdouble])
def test_fftconv_input_dtypes(dtype: type, rng: np.random.Generator) -> None:
    u = rng.standard_normal((2, 3, 200)).astype(dtype)
    k = rng.standard_normal((3, 50)).astype(dtype)
    y = ref.fftconv(u, k)
    assert y.dtype == np.float64
    u64, k64 = u.astype(np.float64), k.astype(np.float64)
    assert_close(y, scipy_conv(u64, k64, "causal"), TOL, str(dtype))


def test_fftconv_causal_long_filter_uses_only_first_L_taps(rng: np.random.Generator) -> None:
    u, k = rng.standard_normal((2, 100)), rng.standard_normal((2, 1000))
    y = ref.fftconv(u, k)
    assert y.shape == (2, 100)
    assert_close(y, ref.fftconv(u, k[:, :100]), 1e-14, "k[:L]")
    k2 = k.copy()
    k2[:, 100:] = rng.standard_normal((2, 900))
    assert_close(ref.fftconv(u, k2), y, 1e-14, "taps past L ignored")


def test_fftconv_does_not_modify_inputs(rng: np.random.Generator) -> None:
    u, k = rng.standard_normal((4, 3, 64)), rng.standard_normal((3, 20))
    pre, post = rng.standard_normal(u.shape), rng.standard_normal(u.shape)
    copies = [a.copy() for a in (u, k, pre, post)]
    y = ref.fftconv(u, k, pregate=pre, postgate=post)
    for a, c in zip((u, k, pre, post), copies):
        assert np.array_equal(a, c)
    assert y.flags.c_contiguous and y.flags.writeable


@pytest.mark.parametrize(
    ("kw", "L", "Lk"),
    [
        ({"mode": "bogus"}, 10, 3),
        ({"packing": "bogus"}, 10, 3),
        ({"mode": "circular"}, 10, 11),
        ({"mode": "circular", "packing": "real_fft"}, 11, 3),
        ({"factors": (7, 7)}, 100, 100),
    ],
)
def test_fftconv_rejects(kw: dict, L: int, Lk: int) -> None:
    with pytest.raises(ValueError):
        ref.fftconv(np.ones(L), np.ones(Lk), **kw)


@pytest.mark.parametrize("kw", [{"mode": "bogus"}, {"mode": "circular"}])
def test_fftconv_direct_rejects(kw: dict) -> None:
    with pytest.raises(ValueError):
        ref.fftconv_direct(np.ones(10), np.ones(11), **kw)


@settings(max_examples=80, deadline=None)
@given(
    mode=st.sampled_from(ref.MODES),
    gated=st.booleans(),
    shapes=st.sampled_from(SHAPES),
    L=st.integers(1, 400),
    Lk=st.integers(1, 400),
    seed=SEEDS,
)
def test_fftconv_direct_vs_scipy(
    mode: str,
    gated: bool,
    shapes: tuple[tuple[int, ...], tuple[int, ...]],
    L: int,
    Lk: int,
    seed: int,
) -> None:
    # The ground truth itself: both its direct-sum and its rfft branch.
    rng = np.random.default_rng(seed)
    if mode == "circular":
        Lk = 1 + Lk % L
    ushape, kshape = shapes
    u, k = rng.standard_normal(ushape + (L,)), rng.standard_normal(kshape + (Lk,))
    batch = np.broadcast_shapes(ushape, kshape)
    pre = rng.standard_normal(u.shape) if gated else None
    post = rng.standard_normal(batch + (out_len(mode, L, Lk),)) if gated else None
    y = ref.fftconv_direct(u, k, mode=mode, pregate=pre, postgate=post)
    assert_close(y, scipy_conv(u, k, mode, pre, post), TOL, "direct vs scipy")


def test_fftconv_small_by_hand() -> None:
    u = np.array([1.0, 2.0, 3.0, 4.0])
    k = np.array([1.0, -1.0, 0.5])
    assert np.allclose(ref.fftconv(u, k), [1.0, 1.0, 1.5, 2.0])
    assert np.allclose(ref.fftconv(u, k, mode="full"), [1.0, 1.0, 1.5, 2.0, -2.5, 2.0])
    assert np.allclose(ref.fftconv(u, k, mode="same"), [1.0, 1.5, 2.0, -2.5])
    assert np.allclose(ref.fftconv(u, k, mode="valid"), [1.5, 2.0])
    assert np.allclose(ref.fftconv(u, k, mode="circular"), [1.0 - 2.5, 1.0 + 2.0, 1.5, 2.0])
