"""Host mirrors of ``kernels/spectrum.cu``'s per-channel transforms (``filter_spectra_direct``,
``dk_finish``): the same steps in NumPy float64 (bit-reversed radix-2 with the twiddle table,
the real / half-size split and its inverse, the window), against ``numpy.fft``. They pin the
index and sign conventions the kernels use; the kernels themselves run in the GPU tests
(``test_spectrum_gpu.py``, ``test_fused_bwd_gpu.py``).
"""

from __future__ import annotations

import numpy as np
import pytest

from cufftconv import fused


def _slot(m: np.ndarray, lg: int) -> np.ndarray:
    """fft_slot: bit reversal of lg bits."""
    out = np.zeros_like(m)
    for b in range(lg):
        out |= ((m >> b) & 1) << (lg - 1 - b)
    return out


def _block_fft(z: np.ndarray, inv: bool) -> np.ndarray:
    """block_fft on natural-order input (the kernel's callers write z[fft_slot(m)] = x[m])."""
    M = z.size
    lg = M.bit_length() - 1
    tw = np.exp(-2j * np.pi * np.arange(M // 2) / M)
    if inv:
        tw = np.conj(tw)
    w = np.empty_like(z)
    w[_slot(np.arange(M), lg)] = z
    for s in range(lg):
        hs = 1 << s
        b = np.arange(M // 2)
        j = b & (hs - 1)
        i0 = ((b >> s) << (s + 1)) | j
        i1 = i0 + hs
        t = w[i1] * tw[j << (lg - 1 - s)]
        w[i0], w[i1] = w[i0] + t, w[i0] - t
    return w


def _direct_rfft(x: np.ndarray, n: int) -> np.ndarray:
    """filter_spectra_direct's bins X[0 .. n/2] of the real row x (zero padded to n)."""
    M = n // 2
    xp = np.zeros(n)
    xp[: x.size] = x
    z = _block_fft(xp[0::2] + 1j * xp[1::2], inv=False)
    X = np.empty(M + 1, dtype=complex)
    X[0], X[M] = z[0].real + z[0].imag, z[0].real - z[0].imag
    f = np.arange(1, M // 2 + 1)
    a, b = z[f], z[M - f]
    e = 0.5 * (a + np.conj(b))
    o = (a - np.conj(b)) / 2j
    t = np.exp(-2j * np.pi * f / n) * o
    X[M - f] = np.conj(e - t)
    X[f] = e + t
    return X


def _direct_irfft(X: np.ndarray, n: int) -> np.ndarray:
    """dk_finish's unnormalised inverse real transform of the Hermitian bins X[0 .. n/2]."""
    M = n // 2
    m = np.arange(M)
    a, b = X[m], X[M - m]
    z = (a + np.conj(b)) + 1j * ((a - np.conj(b)) * np.exp(2j * np.pi * m / n))
    z = _block_fft(z, inv=True)
    out = np.empty(n)
    out[0::2], out[1::2] = z.real, z.imag
    return out


@pytest.mark.parametrize("n", [256, 512, 4096, 8192])
def test_direct_rfft_matches_numpy(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n // 3 + 1)
    np.testing.assert_allclose(_direct_rfft(x, n), np.fft.rfft(x, n), rtol=0, atol=1e-9)


@pytest.mark.parametrize("n", [256, 1024, 8192])
def test_direct_irfft_matches_numpy(n):
    rng = np.random.default_rng(n + 1)
    X = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    X[0], X[-1] = X[0].real, X[-1].real  # (dk_finish's bins are real there)
    np.testing.assert_allclose(_direct_irfft(X, n), np.fft.irfft(X, n) * n, rtol=0, atol=1e-9)


def test_dk_finish_mirror_matches_dk_from_product():
    """The whole dk_finish (split sum, Hermitian part, inverse, window) against
    fused.dk_from_product, the NumPy formula the GPU path was checked against before."""
    n, H, nsplit, Lk, off = 512, 3, 2, 300, 77
    rng = np.random.default_rng(5)
    acc = rng.standard_normal((nsplit, H, n)) + 1j * rng.standard_normal((nsplit, H, n))
    inv = fused._inverse_order(n)
    want = fused.dk_from_product(acc.sum(0), Lk, off, inv, np)
    P = acc.sum(0)[:, inv]  # natural frequency order
    f = np.arange(n // 2 + 1)
    X = (0.5 / n) * (P[:, f] + np.conj(P[:, (-f) % n]))
    start = (-off) % n
    got = np.stack([_direct_irfft(X[h], n)[(start + np.arange(Lk)) % n] for h in range(H)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_direct_smem_fits():
    assert fused.direct_smem(8192) <= 227 * 1024  # the kernels take M = n / 2 <= 4096
    assert fused.DIRECT_MAX_N in fused.SUPPORTED_N
