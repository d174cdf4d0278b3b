"""The Monarch (FlashFFTConv) FFT convolution in NumPy float64: the maths the GPU kernels run.

Every step here is one the kernels take: the four-step FFT as small dense DFT matmuls
with pointwise twiddles, the output kept in "Monarch order" (no transposes), the filter
spectrum stored in that same order, two-for-one packing and the real-FFT trick to halve
the work on real data, and pruned first/last stages for zero-padded (causal) inputs.
It is the float64 ground truth for the GPU tests and the CPU fallback path.

Conventions (N = N1 * N2, w_N = exp(-2*pi*i/N)):

* input index ``n = N2*n1 + n2``: ``x.reshape(..., N1, N2)`` is the N1 x N2 view;
* stage: ``A = F_N1 @ X``, ``A *= T`` with ``T[k1, n2] = w_N**(k1*n2)``, then an
  N2-point Monarch FFT of every row (recursing on the remaining factors);
* position ``j = k1*N2 + j2`` of the result holds frequency ``k1 + N1*perm_N2[j2]``
  (see :func:`monarch_order`).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt

from . import freqmask

__all__ = [
    "MODES",
    "PACKINGS",
    "conv_complex",
    "conv_real_fft",
    "conv_two_for_one",
    "dft_matrix",
    "factorize",
    "fft_size",
    "fftconv",
    "fftconv_direct",
    "filter_spectrum",
    "filter_spectrum_rfft",
    "irfft_monarch",
    "monarch_fft",
    "monarch_ifft",
    "monarch_order",
    "rfft_monarch",
    "rfft_unpack",
    "twiddle_matrix",
    "two_for_one_split",
]

Mode = Literal["causal", "full", "same", "valid", "circular"]
Packing = Literal["auto", "two_for_one", "real_fft", "complex"]
MODES: tuple[str, ...] = ("causal", "full", "same", "valid", "circular")
PACKINGS: tuple[str, ...] = ("auto", "two_for_one", "real_fft", "complex")
Factors = tuple[int, ...]

_MAX_RADIX = 64  # largest radix built from several primes (non powers of two)
_DIRECT_MAX = 512  # larger radices (big primes) run as Bluestein instead of an n x n matrix
_DIRECT_SUM_MAX = 64  # fftconv_direct sums directly when min(L, Lk) is this small


# --------------------------------------------------------------------------- factorization


def factorize(n: int, *, radix: int = 16, max_order: int | None = None) -> Factors:
    """Radices ``(N1, N2, ...)`` of an n-point Monarch FFT, outermost first.

    Powers of two use ``radix`` (16 by default) with one smaller last radix (2, 4 or 8)
    where ``log2(n)`` is not a multiple of ``log2(radix)``; ``max_order`` caps the number of
    stages by spreading the bits evenly over larger radices (at most 64). Other n are split
    into radices of at most 64 built from their prime factors; a prime above 64 is its own
    radix (a plain DFT, run as Bluestein when large).

    Example:
        >>> factorize(4096), factorize(32768), factorize(1 << 20)
        ((16, 16, 16), (16, 16, 16, 8), (16, 16, 16, 16, 16))
        >>> factorize(1024, max_order=2), factorize(1 << 20, max_order=4)
        ((32, 32), (32, 32, 32, 32))
        >>> factorize(1000), factorize(97)
        ((50, 20), (97,))
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"FFT size must be >= 1, got {n}")
    if radix < 2 or radix > _MAX_RADIX or radix & (radix - 1):
        raise ValueError(f"radix must be a power of two in [2, {_MAX_RADIX}], got {radix}")
    if max_order is not None and max_order < 1:
        raise ValueError(f"max_order must be >= 1, got {max_order}")
    if n == 1:
        return (1,)
    if n & (n - 1) == 0:
        return _pow2_factors(n.bit_length() - 1, radix.bit_length() - 1, max_order)
    return _general_factors(n)


def _pow2_factors(bits: int, radix_bits: int, max_order: int | None) -> Factors:
    parts = [radix_bits] * (bits // radix_bits)
    if bits % radix_bits:
        parts.append(bits % radix_bits)
    if max_order is not None and len(parts) > max_order:
        max_bits = _MAX_RADIX.bit_length() - 1
        if bits > max_bits * max_order:
            raise ValueError(f"2^{bits} needs more than {max_order} radices of at most 64")
        q, r = divmod(bits, max_order)
        parts = [q + 1] * r + [q] * (max_order - r)
    return tuple(1 << p for p in parts)


def _prime_factors(n: int) -> list[int]:
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1 if p == 2 else 2
    if n > 1:
        out.append(n)
    return out


def _general_factors(n: int) -> Factors:
    # First-fit decreasing: few stages, each radix <= 64 unless it is a big prime.
    bins: list[int] = []
    for p in sorted(_prime_factors(n), reverse=True):
        for i, b in enumerate(bins):
            if b * p <= _MAX_RADIX:
                bins[i] = b * p
                break
        else:
            bins.append(p)
    return tuple(bins)


def _check_factors(n: int, factors: tuple[int, ...] | list[int] | None) -> Factors:
    if factors is None:
        return factorize(n)
    f = tuple(int(r) for r in factors)
    if not f or any(r < 1 for r in f) or math.prod(f) != n:
        raise ValueError(f"factors {tuple(factors)} do not multiply to the FFT size {n}")
    return f


def fft_size(L: int, Lk: int, mode: str = "causal") -> int:
    """FFT size ``fftconv`` uses: the smallest power of two >= the linear length needed.

    causal: ``L + min(Lk, L) - 1``; full/same/valid: ``L + Lk - 1``; circular: ``L`` itself
    (any integer, factorized by :func:`factorize`).

    Example:
        >>> fft_size(1000, 1000), fft_size(1000, 5000, "causal"), fft_size(1000, 5000, "full")
        (2048, 2048, 8192)
        >>> fft_size(1000, 7, "circular")
        1000
    """
    if L < 1 or Lk < 1:
        raise ValueError(f"L and Lk must be >= 1, got L={L}, Lk={Lk}")
    if mode == "circular":
        return int(L)
    if mode == "causal":
        need = L + min(Lk, L) - 1
    elif mode in ("full", "same", "valid"):
        need = L + Lk - 1
    else:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return 1 << (int(need) - 1).bit_length()


# ------------------------------------------------------------------------ DFT building blocks


@lru_cache(maxsize=64)
def _dft(n: int, inverse: bool) -> np.ndarray:
    # Exponents reduced mod n in integers, so large angles lose no precision.
    e = np.outer(np.arange(n), np.arange(n)) % n
    f = np.exp((2j if inverse else -2j) * np.pi * e / n)
    if inverse:
        f /= n
    f.flags.writeable = False
    return f


@lru_cache(maxsize=64)
def _twiddle(n1: int, n2: int, inverse: bool) -> np.ndarray:
    e = np.outer(np.arange(n1), np.arange(n2))  # k1*n2 < n1*n2: no reduction needed
    t = np.exp((2j if inverse else -2j) * np.pi * e / (n1 * n2))
    t.flags.writeable = False
    return t


def dft_matrix(n: int, *, inverse: bool = False) -> np.ndarray:
    """The (n, n) complex128 DFT matrix ``F[j, k] = w_n**(j*k)``, or its inverse.

    ``inverse=True`` gives ``conj(F) / n``, the exact matrix inverse (the 1/n included).

    Example:
        >>> F = dft_matrix(16)
        >>> x = np.arange(16.0)
        >>> bool(np.allclose(F @ x, np.fft.fft(x)))
        True
        >>> bool(np.allclose(dft_matrix(16, inverse=True) @ F, np.eye(16)))
        True
    """
    return _dft(int(n), bool(inverse)).copy()


def twiddle_matrix(n1: int, n2: int, *, inverse: bool = False) -> np.ndarray:
    """The (n1, n2) twiddles ``T[k1, n2] = w_N**(k1*n2)``, N = n1*n2 (conjugate if inverse).

    Example:
        >>> T = twiddle_matrix(4, 8)
        >>> bool(np.isclose(T[3, 5], np.exp(-2j * np.pi * 15 / 32)))
        True
    """
    return _twiddle(int(n1), int(n2), bool(inverse)).copy()


def _pad(x: np.ndarray, n: int) -> np.ndarray:
    m = x.shape[-1]
    if m == n:
        return x
    if m > n:
        return x[..., :n]
    out = np.zeros(x.shape[:-1] + (n,), dtype=x.dtype)
    out[..., :m] = x
    return out


@lru_cache(maxsize=16)
def _bluestein_plan(p: int) -> tuple[int, np.ndarray, np.ndarray]:
    # w^(nk) = c[n] c[k] conj(c[k-n]) with c[j] = w^(j^2/2): a DFT is a chirp convolution,
    # done here with a power-of-two Monarch FFT of size m >= 2p - 1.
    m = 1 << (2 * p - 2).bit_length()
    j = np.arange(p, dtype=np.int64)
    chirp = np.exp(-1j * np.pi * ((j * j) % (2 * p)) / p)
    b = np.zeros(m, dtype=np.complex128)
    b[:p] = np.conj(chirp)
    b[m - p + 1 :] = np.conj(chirp[1:][::-1])
    bspec = monarch_fft(b)
    chirp.flags.writeable = False
    bspec.flags.writeable = False
    return m, chirp, bspec


def _bluestein(x: np.ndarray, p: int, inverse: bool) -> np.ndarray:
    """DFT of size p along the last axis of x (..., <= p), natural order, any p."""
    if inverse:
        return np.conj(_bluestein(np.conj(x), p, False)) / p
    m, chirp, bspec = _bluestein_plan(p)
    a = x * chirp[: x.shape[-1]]
    y = monarch_ifft(monarch_fft(a, n=m) * bspec, out_len=p)
    return y * chirp


def _dft_stage(x: np.ndarray, n: int, rows_out: int, inverse: bool) -> np.ndarray:
    """``F_n[:rows_out, :rows_in] @ x`` along axis -2; x (..., rows_in, m), rows_in <= n."""
    rows_in = x.shape[-2]
    if n <= _DIRECT_MAX:
        # The pruned matmul: only the columns (rows) of F that meet nonzero (kept) data.
        return np.matmul(_dft(n, inverse)[:rows_out, :rows_in], x)
    xt = np.swapaxes(x, -1, -2)
    return np.swapaxes(_bluestein(xt, n, inverse)[..., :rows_out], -1, -2)


def _dft_last(x: np.ndarray, n: int, n_out: int, inverse: bool) -> np.ndarray:
    """``x @ F_n[:n_out, :len_in].T`` along the last axis; x (..., len_in), len_in <= n."""
    batch, len_in = x.shape[:-1], x.shape[-1]
    if n <= _DIRECT_MAX:
        f = _dft(n, inverse)[:n_out, :len_in]
        return (x.reshape(-1, len_in) @ f.T).reshape(batch + (n_out,))
    return _bluestein(x, n, inverse)[..., :n_out]


# --------------------------------------------------------------------------- Monarch FFT


def monarch_order(n: int, factors: tuple[int, ...] | None = None) -> np.ndarray:
    """Frequency held by each position of a Monarch-order spectrum.

    ``monarch_fft(x)[..., j] == np.fft.fft(x)[..., perm[j]]``. Position 0 is always
    frequency 0.

    Example:
        >>> monarch_order(8, (2, 4)).tolist()
        [0, 2, 4, 6, 1, 3, 5, 7]
    """
    f = _check_factors(n, factors)
    perm = np.arange(f[-1])
    for r in reversed(f[:-1]):
        # Position k1*N2 + j2 holds frequency k1 + N1*perm_N2[j2].
        perm = (np.arange(r)[:, None] + r * perm[None, :]).ravel()
    return perm


def monarch_fft(
    x: npt.ArrayLike,
    factors: tuple[int, ...] | None = None,
    *,
    n: int | None = None,
    prune: bool = True,
) -> np.ndarray:
    """n-point FFT along the last axis by the four-step Monarch recursion, in Monarch order.

    Args:
        x: (..., Lx) real or complex; zero padded to ``n`` (default ``Lx``).
        factors: radices, outermost first (default :func:`factorize` ``(n)``).
        n: FFT size, ``>= Lx``.
        prune: skip the zero rows of the first stage (``F_N1[:, :ceil(Lx/N2)]``, half of
            F_N1 for a causal, half-zero input) instead of padding and running all of it.

    Returns:
        (..., n) complex128 with ``out[..., j] == fft(x, n)[..., monarch_order(n)[j]]``.

    Example:
        >>> x = np.random.default_rng(0).standard_normal((3, 256))
        >>> X = monarch_fft(x)  # factors (16, 16)
        >>> bool(np.allclose(X, np.fft.fft(x)[:, monarch_order(256)]))
        True
    """
    x = np.asarray(x)
    n = x.shape[-1] if n is None else int(n)
    if x.shape[-1] > n:
        raise ValueError(f"input length {x.shape[-1]} exceeds the FFT size {n}")
    f = _check_factors(n, factors)
    return _fwd(x.astype(np.complex128), f, n, prune)


def _fwd(x: np.ndarray, f: Factors, n: int, prune: bool) -> np.ndarray:
    batch = x.shape[:-1]
    if not prune:
        x = _pad(x, n)
    if len(f) == 1:
        return _dft_last(x, n, n, inverse=False)
    n1, n2 = f[0], n // f[0]
    rows = -(-x.shape[-1] // n2)  # rows n1 >= rows of the N1 x N2 view are all zero
    xv = _pad(x, rows * n2).reshape(batch + (rows, n2))
    a = _dft_stage(xv, n1, n1, inverse=False) * _twiddle(n1, n2, False)
    return _fwd(a, f[1:], n2, prune).reshape(batch + (n,))


def monarch_ifft(
    X: npt.ArrayLike,
    factors: tuple[int, ...] | None = None,
    *,
    out_len: int | None = None,
    prune: bool = True,
) -> np.ndarray:
    """Inverse of :func:`monarch_fft` (the 1/n included), taking X in Monarch order.

    Args:
        X: (..., n) spectrum in Monarch order.
        factors: the radices X was made with (default :func:`factorize` ``(n)``).
        out_len: keep only the first ``out_len`` outputs (default n).
        prune: compute only the rows ``n1 < ceil(out_len/N2)`` of the last stage (half of
            them when a causal conv keeps half the outputs) instead of all then slicing.

    Returns:
        (..., out_len) complex128.

    Example:
        >>> x = np.random.default_rng(0).standard_normal(1024)
        >>> bool(np.allclose(monarch_ifft(monarch_fft(x)), x))
        True
    """
    X = np.asarray(X, dtype=np.complex128)
    n = X.shape[-1]
    out_len = n if out_len is None else int(out_len)
    if not 0 < out_len <= n:
        raise ValueError(f"out_len must be in [1, {n}], got {out_len}")
    return _inv(X, _check_factors(n, factors), n, out_len, prune)


def _inv(X: np.ndarray, f: Factors, n: int, out_len: int, prune: bool) -> np.ndarray:
    batch = X.shape[:-1]
    if len(f) == 1:
        return _dft_last(X, n, out_len if prune else n, inverse=True)[..., :out_len]
    n1, n2 = f[0], n // f[0]
    a = _inv(X.reshape(batch + (n1, n2)), f[1:], n2, n2, prune) * _twiddle(n1, n2, True)
    rows = -(-out_len // n2) if prune else n1
    x = _dft_stage(a, n1, rows, inverse=True)
    return x.reshape(batch + (rows * n2,))[..., :out_len]


# ------------------------------------------------------------------ real data: packing tricks


@lru_cache(maxsize=64)
def _pairing(m: int, factors: Factors) -> tuple[np.ndarray, np.ndarray]:
    # Position of frequency (-f mod m) for each position j (f = perm[j]), and w_2m^f.
    perm = monarch_order(m, factors)
    pos = np.empty_like(perm)
    pos[perm] = np.arange(m)
    pair = pos[(-perm) % m]
    w = np.exp(-1j * np.pi * perm / m)
    pair.flags.writeable = False
    w.flags.writeable = False
    return pair, w


def rfft_monarch(
    x: npt.ArrayLike,
    factors: tuple[int, ...] | None = None,
    *,
    n: int | None = None,
    prune: bool = True,
) -> np.ndarray:
    """Real n-point FFT as an n/2-point complex Monarch FFT plus the pairing step.

    ``z = x[0::2] + i*x[1::2]``, ``Z = FFT_{n/2}(z)``; then with ``Zc = conj(Z[n/2 - f])``:
    ``X[f] = (Z + Zc)/2 + w_n**f * (Z - Zc)/(2i)``. The result is *packed*: position j > 0
    holds ``X[perm[j]]`` (``perm = monarch_order(n//2, factors)``); position 0 holds
    ``X[0] + i*X[n/2]`` (both real for real x). See :func:`rfft_unpack`.

    Args:
        x: (..., Lx) real, zero padded to n (default Lx, which must then be even).
        factors: radices of the n/2-point complex FFT.
        n: even FFT size >= Lx.
        prune: pruned first stage (see :func:`monarch_fft`).

    Returns:
        (..., n/2) complex128, packed.

    Example:
        >>> x = np.random.default_rng(0).standard_normal(64)
        >>> bool(np.allclose(rfft_unpack(rfft_monarch(x)), np.fft.rfft(x)))
        True
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1] if n is None else int(n)
    if n % 2 or x.shape[-1] > n:
        raise ValueError(f"rfft_monarch needs an even n >= the input length, got n={n}")
    m = n // 2
    f = _check_factors(m, factors)
    xe = _pad(x, x.shape[-1] + x.shape[-1] % 2)
    z = xe[..., 0::2] + 1j * xe[..., 1::2]
    Z = monarch_fft(z, f, n=m, prune=prune)
    pair, w = _pairing(m, f)
    Zc = np.conj(Z[..., pair])
    X = 0.5 * (Z + Zc) - 0.5j * w * (Z - Zc)
    e0, o0 = Z[..., 0].real, Z[..., 0].imag
    X[..., 0] = (e0 + o0) + 1j * (e0 - o0)
    return X


def irfft_monarch(
    X: npt.ArrayLike,
    factors: tuple[int, ...] | None = None,
    *,
    out_len: int | None = None,
    prune: bool = True,
) -> np.ndarray:
    """Inverse of :func:`rfft_monarch`: packed (..., n/2) spectrum -> real (..., out_len).

    Unpairing: ``E = (X[f] + conj X[n/2-f]) / 2``, ``O = (X[f] - conj X[n/2-f]) w_n**-f / 2``,
    ``z = IFFT_{n/2}(E + iO)``, ``x[2m] = Re z[m]``, ``x[2m+1] = Im z[m]``. Only the first
    ``ceil(out_len/2)`` values of z are computed (pruned last stage when ``prune``).

    Example:
        >>> x = np.random.default_rng(0).standard_normal(96)
        >>> bool(np.allclose(irfft_monarch(rfft_monarch(x)), x))
        True
    """
    X = np.asarray(X, dtype=np.complex128)
    m = X.shape[-1]
    n = 2 * m
    out_len = n if out_len is None else int(out_len)
    if not 0 < out_len <= n:
        raise ValueError(f"out_len must be in [1, {n}], got {out_len}")
    f = _check_factors(m, factors)
    pair, w = _pairing(m, f)
    Xc = np.conj(X[..., pair])
    Z = 0.5 * (X + Xc) + 0.5j * np.conj(w) * (X - Xc)
    x0, xm = X[..., 0].real, X[..., 0].imag
    Z[..., 0] = 0.5 * (x0 + xm) + 0.5j * (x0 - xm)
    z = monarch_ifft(Z, f, out_len=-(-out_len // 2), prune=prune)
    out = np.empty(z.shape[:-1] + (2 * z.shape[-1],), dtype=np.float64)
    out[..., 0::2] = z.real
    out[..., 1::2] = z.imag
    return out[..., :out_len]


def rfft_unpack(Xp: npt.ArrayLike, factors: tuple[int, ...] | None = None) -> np.ndarray:
    """Packed Monarch-order real spectrum (..., n/2) -> natural ``np.fft.rfft`` order (..., n/2+1).

    Example:
        >>> x = np.random.default_rng(1).standard_normal((2, 40))
        >>> bool(np.allclose(rfft_unpack(rfft_monarch(x)), np.fft.rfft(x)))
        True
    """
    Xp = np.asarray(Xp, dtype=np.complex128)
    m = Xp.shape[-1]
    out = np.empty(Xp.shape[:-1] + (m + 1,), dtype=np.complex128)
    out[..., monarch_order(m, factors)] = Xp
    out[..., 0] = Xp[..., 0].real
    out[..., m] = Xp[..., 0].imag
    return out


def two_for_one_split(
    Z: npt.ArrayLike, factors: tuple[int, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Spectra of a and b from ``Z = FFT(a + i*b)`` (a, b real), all in Monarch order.

    ``A = (Z[f] + conj Z[-f]) / 2``, ``B = (Z[f] - conj Z[-f]) / (2i)``. A convolution
    never needs this (see :func:`conv_two_for_one`); it shows what the packing holds.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a, b = rng.standard_normal((2, 32))
        >>> A, B = two_for_one_split(monarch_fft(a + 1j * b))
        >>> bool(np.allclose(A, np.fft.fft(a)[monarch_order(32)]))
        True
    """
    Z = np.asarray(Z, dtype=np.complex128)
    n = Z.shape[-1]
    pair, _ = _pairing(n, _check_factors(n, factors))
    Zc = np.conj(Z[..., pair])
    return 0.5 * (Z + Zc), -0.5j * (Z - Zc)


# ----------------------------------------------------------------- spectra and circular convs


def filter_spectrum(
    k: npt.ArrayLike,
    n: int,
    factors: tuple[int, ...] | None = None,
    *,
    prune: bool = True,
) -> np.ndarray:
    """Spectrum of the real filter k (..., Lk), zero padded to n, in Monarch order (..., n).

    Multiply it pointwise with ``monarch_fft(u, factors, n=n)`` and apply
    :func:`monarch_ifft` to get the circular convolution of period n.

    Example:
        >>> k = np.random.default_rng(0).standard_normal((4, 10))
        >>> filter_spectrum(k, 256).shape
        (4, 256)
    """
    k = np.asarray(k, dtype=np.float64)
    return monarch_fft(k, factors, n=n, prune=prune)


def filter_spectrum_rfft(
    k: npt.ArrayLike,
    n: int,
    factors: tuple[int, ...] | None = None,
    *,
    prune: bool = True,
) -> np.ndarray:
    """Packed half spectrum (..., n/2) of real k zero padded to even n, for :func:`conv_real_fft`.

    ``factors`` are those of the n/2-point complex FFT.

    Example:
        >>> filter_spectrum_rfft(np.ones(5), 64).shape
        (32,)
    """
    return rfft_monarch(k, factors, n=n, prune=prune)


def _mul_packed(X: np.ndarray, K: np.ndarray) -> np.ndarray:
    # Slot 0 holds two real values (DC, Nyquist): multiply them part by part.
    Y = X * K
    Y[..., 0] = X[..., 0].real * K[..., 0].real + 1j * (X[..., 0].imag * K[..., 0].imag)
    return Y


def conv_two_for_one(
    ua: npt.ArrayLike,
    ub: npt.ArrayLike,
    kspec: npt.ArrayLike,
    factors: tuple[int, ...] | None = None,
    *,
    out_len: int | None = None,
    prune: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Two real sequences sharing a real filter, convolved with one complex FFT pair.

    The circular conv (period n) of ``ua + i*ub`` with real k is ``ya + i*yb``: no pairing
    step at all.

    Args:
        ua, ub: (..., L) real, L <= n, zero padded to n.
        kspec: (..., n) from :func:`filter_spectrum` (broadcasts against ua, ub).
        factors: radices of the n-point FFT.
        out_len: keep the first out_len outputs (default n).
        prune: pruned first forward and last inverse stages.

    Returns:
        (ya, yb), each (..., out_len) float64.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> ua, ub, k = rng.standard_normal((3, 8))
        >>> ya, yb = conv_two_for_one(ua, ub, filter_spectrum(k, 16), out_len=8)
        >>> bool(np.allclose(ya, np.convolve(ua, k)[:8]))
        True
    """
    kspec = np.asarray(kspec, dtype=np.complex128)
    z = np.asarray(ua, dtype=np.float64) + 1j * np.asarray(ub, dtype=np.float64)
    Z = monarch_fft(z, factors, n=kspec.shape[-1], prune=prune)
    y = monarch_ifft(Z * kspec, factors, out_len=out_len, prune=prune)
    return y.real.copy(), y.imag.copy()


def conv_real_fft(
    u: npt.ArrayLike,
    kspec: npt.ArrayLike,
    factors: tuple[int, ...] | None = None,
    *,
    out_len: int | None = None,
    prune: bool = True,
) -> np.ndarray:
    """Circular conv (period n = 2 * kspec.shape[-1]) of real u with the real-FFT trick.

    Args:
        u: (..., L) real, L <= n.
        kspec: (..., n/2) packed, from :func:`filter_spectrum_rfft`.
        factors: radices of the n/2-point complex FFT.

    Returns:
        (..., out_len) float64.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> u, k = rng.standard_normal((2, 8))
        >>> y = conv_real_fft(u, filter_spectrum_rfft(k, 16), out_len=8)
        >>> bool(np.allclose(y, np.convolve(u, k)[:8]))
        True
    """
    kspec = np.asarray(kspec, dtype=np.complex128)
    U = rfft_monarch(u, factors, n=2 * kspec.shape[-1], prune=prune)
    return irfft_monarch(_mul_packed(U, kspec), factors, out_len=out_len, prune=prune)


def conv_complex(
    u: npt.ArrayLike,
    kspec: npt.ArrayLike,
    factors: tuple[int, ...] | None = None,
    *,
    out_len: int | None = None,
    prune: bool = True,
) -> np.ndarray:
    """Circular conv (period n = kspec.shape[-1]) of real u, one plain complex FFT each way.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> u, k = rng.standard_normal((2, 7))
        >>> y = conv_complex(u, filter_spectrum(k, 7))  # circular, n = 7 (prime)
        >>> ref = np.fft.ifft(np.fft.fft(u) * np.fft.fft(k)).real
        >>> bool(np.allclose(y, ref))
        True
    """
    kspec = np.asarray(kspec, dtype=np.complex128)
    U = monarch_fft(np.asarray(u, dtype=np.float64), factors, n=kspec.shape[-1], prune=prune)
    return monarch_ifft(U * kspec, factors, out_len=out_len, prune=prune).real.copy()


# ---------------------------------------------------------------------------- fftconv


def _out_slice(mode: str, L: int, Lk: int) -> tuple[int, int]:
    """[start, stop) of the wanted outputs within the linear (or circular) conv."""
    if mode in ("causal", "circular"):
        return 0, L
    if mode == "full":
        return 0, L + Lk - 1
    if mode == "same":
        return (Lk - 1) // 2, (Lk - 1) // 2 + L
    return min(L, Lk) - 1, max(L, Lk)  # valid


def fftconv(
    u: npt.ArrayLike,
    k: npt.ArrayLike,
    *,
    mode: str = "causal",
    pregate: npt.ArrayLike | None = None,
    postgate: npt.ArrayLike | None = None,
    packing: str = "auto",
    prune_causal: bool = True,
    factors: tuple[int, ...] | None = None,
    freq_mask: object = None,
) -> np.ndarray:
    """``y = postgate * conv(pregate * u, k)`` along the last axis, via Monarch FFTs (float64).

    Args:
        u: (..., L) real input; any real float dtype (computed in float64).
        k: (..., Lk) real filter; leading axes broadcast against u's.
        mode: "causal" (``y[t] = sum_{s<=min(t,Lk-1)} k[s] u[t-s]``, t < L), "full",
            "same", "valid" (``scipy.signal.fftconvolve`` semantics) or "circular"
            (period L, Lk <= L).
        pregate: u's shape; multiplies u first.
        postgate: the output's shape; multiplies the result.
        packing: "two_for_one" (pairs of sequences sharing a filter in one complex FFT),
            "real_fft" (n/2-point complex FFT plus pairing), "complex" (plain), or "auto":
            two_for_one when >= 2 sequences share a filter, else real_fft if n is even,
            else complex.
        prune_causal: skip the zero rows of the first forward stage and the unwanted rows
            of the last inverse stage (same result, less work).
        factors: radices of the complex FFT that runs (size n, or n/2 for real_fft);
            default :func:`factorize`.
        freq_mask: frequency-sparse convolution (see :mod:`cufftconv.freqmask`): 16 booleans
            (anything :func:`cufftconv.freqmask.from_mask` takes); the FFT size is then
            ``n = freqmask.fft_size(L, Lk, mode)`` and the filter spectrum (in Monarch order,
            or packed for real_fft) is multiplied by ``freq_mask[f % 16]`` of the frequency f
            each position holds. Same result as :func:`fftconv_direct` with that mask.

    Returns:
        float64 array of shape ``broadcast(u.shape[:-1], k.shape[:-1]) + (L_out,)``, L_out
        = L (causal, same, circular), L + Lk - 1 (full), |L - Lk| + 1 (valid).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> u, k = rng.standard_normal((2, 3, 100)), rng.standard_normal((3, 20))
        >>> y = fftconv(u, k)
        >>> y.shape, bool(np.allclose(y, fftconv_direct(u, k)))
        ((2, 3, 100), True)
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if packing not in PACKINGS:
        raise ValueError(f"packing must be one of {PACKINGS}, got {packing!r}")
    mask = None if freq_mask is None else freqmask.from_mask(freq_mask)  # type: ignore[arg-type]
    u = np.asarray(u, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    if pregate is not None:
        u = u * np.asarray(pregate, dtype=np.float64)
    L, Lk = u.shape[-1], k.shape[-1]
    batch = np.broadcast_shapes(u.shape[:-1], k.shape[:-1])
    start, stop = _out_slice(mode, L, Lk)
    if mode == "causal":
        k = k[..., :L]  # later taps never reach an output t < L
    if mode == "circular" and Lk > L:
        raise ValueError(f"circular mode needs Lk <= L, got Lk={Lk}, L={L}")
    if mask is not None:
        n = freqmask.fft_size(L, Lk, mode)  # a multiple of 16: even, no real_fft fix-up
    elif mode == "circular":
        n = L
    else:
        n = fft_size(L, k.shape[-1], mode)

    nd = len(batch)
    k_al = k.reshape((1,) * (nd - (k.ndim - 1)) + k.shape)
    shared = [i for i in range(nd) if k_al.shape[i] == 1 and batch[i] > 1]
    n_shared = math.prod(batch[i] for i in shared)

    if packing == "auto":
        if n_shared >= 2:
            packing = "two_for_one"
        else:
            packing = "real_fft" if n % 2 == 0 else "complex"
    if packing == "real_fft" and n % 2:
        if mode == "circular":
            raise ValueError(f"packing='real_fft' needs an even FFT size; circular L={L} is odd")
        n = 2  # n == 1: a linear conv may use any larger power of two

    prune = bool(prune_causal)
    if packing == "two_for_one":
        others = [i for i in range(nd) if i not in shared]
        order = shared + others
        n_other = math.prod(batch[i] for i in others)
        ut = np.broadcast_to(u, batch + (L,)).transpose(order + [nd])
        ut = ut.reshape(n_shared, n_other, L)
        kt = k_al.transpose(order + [nd]).reshape(n_other, k.shape[-1])
        kspec = filter_spectrum(kt, n, factors, prune=prune)
        if mask is not None:
            kspec = kspec * _monarch_mask(mask, n, factors)
        half = (n_shared + 1) // 2
        if n_shared % 2:
            # An odd count: the last sequence rides with a zero partner.
            ut = np.concatenate([ut, np.zeros((1, n_other, L))])
        ya, yb = conv_two_for_one(ut[:half], ut[half:], kspec, factors, out_len=stop, prune=prune)
        y = np.concatenate([ya, yb])[:n_shared]
        y = y.reshape([batch[i] for i in order] + [stop])
        y = y.transpose([int(i) for i in np.argsort(order)] + [nd])
    elif packing == "real_fft":
        kspec = filter_spectrum_rfft(k, n, factors, prune=prune)
        if mask is not None:
            kspec = _mask_packed(kspec, mask, factors)
        y = conv_real_fft(u, kspec, factors, out_len=stop, prune=prune)
    else:
        kspec = filter_spectrum(k, n, factors, prune=prune)
        if mask is not None:
            kspec = kspec * _monarch_mask(mask, n, factors)
        y = conv_complex(u, kspec, factors, out_len=stop, prune=prune)

    y = np.broadcast_to(y, batch + (stop,))[..., start:stop]
    if postgate is not None:
        y = y * np.asarray(postgate, dtype=np.float64)
    return np.ascontiguousarray(y, dtype=np.float64)


def _monarch_mask(mask: freqmask.Mask, n: int, factors: Factors | None) -> np.ndarray:
    """(n,) 0/1 weights of a Monarch-order n-point spectrum: position j holds perm[j]."""
    return np.asarray(mask, dtype=np.float64)[monarch_order(n, factors) % freqmask.GROUPS]


def _mask_packed(kspec: np.ndarray, mask: freqmask.Mask, factors: Factors | None) -> np.ndarray:
    """Mask a packed real spectrum (..., n/2) from :func:`filter_spectrum_rfft`: position
    j > 0 holds frequency perm[j] (its mirror n - perm[j] is in the same kept class), position
    0 holds DC (real part) and n/2 (imaginary part)."""
    m = kspec.shape[-1]
    weights = np.asarray(mask, dtype=np.float64)
    out = kspec * weights[monarch_order(m, factors) % freqmask.GROUPS]
    dc, nyq = kspec[..., 0].real, kspec[..., 0].imag
    out[..., 0] = weights[0] * dc + 1j * (weights[m % freqmask.GROUPS] * nyq)
    return out


def fftconv_direct(
    u: npt.ArrayLike,
    k: npt.ArrayLike,
    *,
    mode: str = "causal",
    pregate: npt.ArrayLike | None = None,
    postgate: npt.ArrayLike | None = None,
    freq_mask: object = None,
) -> np.ndarray:
    """Ground truth for :func:`fftconv`, independent of the Monarch code.

    A direct sum when ``min(L, Lk)`` is small, else ``np.fft.rfft``/``irfft`` of size
    ``L + Lk - 1``; circular mode folds the linear result with period L.

    With ``freq_mask`` (16 booleans, or anything :func:`cufftconv.freqmask.from_mask` takes;
    an all-True mask is the dense convolution): the frequency-sparse convolution, computed
    literally with complex ``np.fft`` of size ``N = freqmask.fft_size(L, Lk, mode)``:
    ``y = crop(ifft(fft(pregate * u, N) * fft(k, N) * M).real) * postgate`` with
    ``M[f] = freq_mask[f % 16]``, k cut to its first L taps in causal mode, and crop the
    mode's output window (offset, Lout) of the dense convolution (for circular, N = L).

    Example:
        >>> fftconv_direct(np.array([1.0, 2, 3]), np.array([1.0, 1]), mode="full").tolist()
        [1.0, 3.0, 5.0, 3.0]
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    u = np.asarray(u, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    if pregate is not None:
        u = u * np.asarray(pregate, dtype=np.float64)
    L, Lk = u.shape[-1], k.shape[-1]
    if mode == "circular" and Lk > L:
        raise ValueError(f"circular mode needs Lk <= L, got Lk={Lk}, L={L}")
    start, stop = _out_slice(mode, L, Lk)
    if mode == "causal":
        k = k[..., :L]
    mask = None if freq_mask is None else freqmask.from_mask(freq_mask)  # type: ignore[arg-type]
    if mask is not None:
        n = freqmask.fft_size(L, Lk, mode)
        weights = np.asarray(mask, dtype=np.float64)[np.arange(n) % freqmask.GROUPS]
        y = np.fft.ifft(np.fft.fft(u, n) * np.fft.fft(k, n) * weights, n).real[..., start:stop]
        if postgate is not None:
            y = y * np.asarray(postgate, dtype=np.float64)
        return np.ascontiguousarray(y, dtype=np.float64)
    full = _linear_conv(u, k)
    if mode == "circular":
        y = full[..., :L].copy()
        y[..., : full.shape[-1] - L] += full[..., L:]
    else:
        y = full[..., start:stop]
    if postgate is not None:
        y = y * np.asarray(postgate, dtype=np.float64)
    return np.ascontiguousarray(y)


def _linear_conv(u: np.ndarray, k: np.ndarray) -> np.ndarray:
    batch = np.broadcast_shapes(u.shape[:-1], k.shape[:-1])
    L, Lk = u.shape[-1], k.shape[-1]
    n = L + Lk - 1
    if min(L, Lk) <= _DIRECT_SUM_MAX:
        # Slide the shorter one: min(L, Lk) vectorized multiply-adds.
        a, b = (u, k) if Lk <= L else (k, u)
        out = np.zeros(batch + (n,))
        for s in range(b.shape[-1]):
            out[..., s : s + a.shape[-1]] += b[..., s : s + 1] * a
        return out
    return np.fft.irfft(np.fft.rfft(u, n) * np.fft.rfft(k, n), n)
