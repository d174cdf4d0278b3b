"""The long-sequence kernels' index algebra, checked on the host with a NumPy mirror.

The mirror runs the same in-place mixed-radix stages as ``kernels/long_conv.cu`` (decimation in
frequency forward, the mirrored decimation in time inverse) and the same three passes, so the
permutations in :mod:`cufftconv.long` and the twiddle signs are checked without a GPU.
"""

import numpy as np
import pytest

from cufftconv import long as lc
from cufftconv import reference


def _stage(x: np.ndarray, r: int, m: int, sign: int, dit: bool) -> np.ndarray:
    """One radix-r stage on blocks of size m along the last axis (the kernel's ``stage``)."""
    n = x.shape[-1]
    s = m // r
    y = x.reshape(x.shape[:-1] + (n // m, r, s))  # (..., block, i, j): element j + i*s
    j = np.arange(s)
    q = np.arange(r)
    tw = np.exp(sign * 2j * np.pi * np.outer(q, j) / m)  # w_m^(sign q j)
    dft = np.exp(sign * 2j * np.pi * np.outer(q, q) / r)
    if dit:
        y = y * tw
        y = np.einsum("iq,...qj->...ij", dft, y)
    else:
        y = np.einsum("qi,...ij->...qj", dft, y)
        y = y * tw
    return y.reshape(x.shape)


def _fwd(x: np.ndarray) -> np.ndarray:
    m = x.shape[-1]
    for r in lc.radices(x.shape[-1]):
        x = _stage(x, r, m, -1, False)
        m //= r
    return x


def _inv(x: np.ndarray) -> np.ndarray:
    sizes = []
    m = x.shape[-1]
    for r in lc.radices(m):
        sizes.append((r, m))
        m //= r
    for r, m in reversed(sizes):
        x = _stage(x, r, m, 1, True)
    return x


@pytest.mark.parametrize("m", [2, 4, 8, 16, 32, 128, 256, 512, 4096, 8192, 16384])
def test_digit_reversed_order(m, rng):
    x = rng.standard_normal(m) + 1j * rng.standard_normal(m)
    got = _fwd(x)
    want = np.fft.fft(x)[lc.digit_rev(m)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * np.abs(want).max())
    back = _inv(got) / m
    np.testing.assert_allclose(back, x, rtol=0, atol=1e-12 * m)


def _three_pass(z: np.ndarray, kspec: np.ndarray, n: int) -> np.ndarray:
    """The kernels' passes on one complex sequence z (length n), filter in kernel order."""
    n1, n2, _ = lc.split(n)
    a = z.reshape(n1, n2).T.copy()  # columns as rows: (n2, n1)
    a = _fwd(a)  # position r holds k1 = digit_rev(n1)[r]
    k1 = lc.digit_rev(n1)
    a = a * np.exp(-2j * np.pi * np.outer(np.arange(n2), k1) / n)
    ws = a.T.copy()  # (r, n2)
    ws = _inv(_fwd(ws) * kspec)
    ws = ws * np.exp(2j * np.pi * np.outer(k1, np.arange(n2)) / n)
    y = _inv(ws.T.copy()).T  # (m1, n2)
    return y.reshape(n)


@pytest.mark.parametrize("n", [1 << 16, 1 << 17])
def test_three_pass_circular(n, rng):
    k = rng.standard_normal(n)
    u = rng.standard_normal((2, n))
    spec = np.fft.fft(k)[lc.freq_index(n)] / n
    y = _three_pass(u[0] + 1j * u[1], spec, n)
    want = reference.fftconv(u, k, mode="circular")
    np.testing.assert_allclose(y.real, want[0], atol=1e-9 * np.abs(want).max())
    np.testing.assert_allclose(y.imag, want[1], atol=1e-9 * np.abs(want).max())


def test_split_table():
    for n in lc.SUPPORTED_N:
        for r in lc.ROW_CHOICES:
            n1, n2, c = lc.split(n, r)
            assert n1 * n2 == n and n2 <= r and c % 8 == 0 and n2 % c == 0
            assert n1 * c == max(lc.COL_POINTS, 8 * n1)
            assert lc.freq_index(n, r).shape == (n1, n2) if n <= 1 << 20 else True
    with pytest.raises(ValueError, match="max_row"):
        lc.split(1 << 22, 4096)
    assert len(set(lc.all_name_expressions())) == len(lc.all_name_expressions())


def _pidx(x):
    return x + (x >> lc.PAD_LOG)


def test_stage_address_steps():
    """Layout::step: inside every instantiated stage, the padded address of element i of a
    butterfly is the first element's plus a constant (one address register, immediate offsets)."""
    layouts = set()
    for n in lc.SUPPORTED_N:
        for r in lc.ROW_CHOICES:
            n1, n2, c = lc.split(n, r)
            layouts.add((n1, c, True))  # column tiles: element x of column t at x * C + t
            layouts.add((n2, lc.rows_per_block(n2), False))  # rows: t * N2 + x
    for size, t, interleaved in sorted(layouts):
        m = size
        for r in lc.radices(size):
            s = m // r
            col, b = np.meshgrid(np.arange(t), np.arange(size // r), indexing="ij")
            base = (b // s) * m + b % s
            for i in range(r):
                x = base + i * s
                d = i * s * t if interleaved else i * s
                if interleaved:
                    got = _pidx(x * t + col) - _pidx(base * t + col)
                else:
                    got = _pidx(col * size + x) - _pidx(col * size + base)
                assert np.all(got == _pidx(d)), (size, t, interleaved, r, m, i)
            m //= r


def _dft_kernel(x: np.ndarray, sign: int, zin: bool = False, hout: bool = False) -> np.ndarray:
    """NumPy mirror of long_conv.cu's dft<R, SIGN, ZIN, HOUT>: radix-2 decimation in frequency
    in place, then the bit-reversal; ZIN takes x[R/2:] as zero (the first level copies), HOUT
    leaves the last level's odd positions unset (NaN here), which only outputs q >= R/2 read."""
    r = x.size
    x = x.astype(np.complex128).copy()
    if zin:
        x[r // 2 :] = np.nan  # must never be read
    span = r
    while span >= 2:
        for blk in range(0, r, span):
            for j in range(span // 2):
                a, b = x[blk + j], x[blk + j + span // 2]
                copy = zin and span == r
                x[blk + j] = a if copy else a + b
                if hout and span == 2:
                    x[blk + j + 1] = np.nan
                    continue
                d = a if copy else a - b
                x[blk + j + span // 2] = d * np.exp(sign * 2j * np.pi * j / span)
        span //= 2
    bits = r.bit_length() - 1
    rev = [int(format(p, f"0{bits}b")[::-1], 2) for p in range(r)]
    out = np.empty_like(x)
    out[rev] = x
    return out


@pytest.mark.parametrize("r", [2, 4, 8, 16])
@pytest.mark.parametrize("sign", [-1, 1])
def test_kernel_dft_and_its_half_forms(r, sign, rng):
    x = rng.standard_normal(r) + 1j * rng.standard_normal(r)
    want = np.fft.fft(x) if sign < 0 else np.fft.ifft(x) * r
    np.testing.assert_allclose(_dft_kernel(x, sign), want, atol=1e-12)
    if r == 16:  # the outermost stages' causal forms (HALF = 1 forward, HALF = 2 inverse)
        z = x.copy()
        z[r // 2 :] = 0
        zwant = np.fft.fft(z) if sign < 0 else np.fft.ifft(z) * r
        np.testing.assert_allclose(_dft_kernel(x, sign, zin=True), zwant, atol=1e-12)
        np.testing.assert_allclose(
            _dft_kernel(x, sign, hout=True)[: r // 2], want[: r // 2], atol=1e-12
        )
