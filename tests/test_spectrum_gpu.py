"""GPU tests of the fused family's filter spectrum (``FusedConv.filter_spectrum``, one rfft and
``kernels/spectrum.cu``) against the same layout built in float64 with NumPy: every size, the
reversed filter of the backward, float32 and float64 k, a zero row and rows far from unit scale.
"""

from __future__ import annotations

import numpy as np
import pytest

cp = pytest.importorskip("cupy")

pytestmark = pytest.mark.gpu  # conftest skips it without a GPU

from cufftconv import fused


def _want(k: np.ndarray, n: int, shift: int | None) -> np.ndarray:
    kk = np.fft.fft(k.astype(np.float64), n=n, axis=-1)
    if shift is not None:  # r[m] = k[(shift - m) mod n]
        f = np.arange(n)
        kk = np.exp(-2j * np.pi * ((f * shift) % n) / n) * np.conj(kk)
    kk = kk[:, fused.freq_index(n)]
    mag = np.abs(kk).max(axis=1)
    e = np.where(mag > 0, np.ceil(np.log2(np.where(mag > 0, mag, 1))), 0)
    out = np.zeros((k.shape[0], 2 * n + 8))
    out[:, 0 : 2 * n : 2] = (kk * np.exp2(-e)[:, None]).real
    out[:, 1 : 2 * n : 2] = (kk * np.exp2(-e)[:, None]).imag
    out[:, 2 * n] = e
    return out


@pytest.mark.parametrize("n", fused.SUPPORTED_N)
@pytest.mark.parametrize("shift", [None, 0, 37])
def test_matches_numpy(rng, n, shift):
    H, Lk = 5, max(1, n // 3 + 1)
    k = rng.standard_normal((H, Lk)).astype(np.float32)
    k[1] = 0.0  # a zero row: exponent 0, zeros
    k[2] *= 1e-20
    k[3] *= 1e20
    conv = fused.FusedConv(n, "float16", pregate=False, postgate=False)
    got = cp.asnumpy(conv.filter_spectrum(cp.asarray(k), reverse_shift=shift)).astype(np.float64)
    want = _want(k, n, shift)
    assert np.array_equal(got[:, 2 * n :], want[:, 2 * n :])  # exponent and zero padding
    # the values are fp16 in [-1, 1]: within fp16 rounding of the float64 ones
    np.testing.assert_allclose(got[:, : 2 * n], want[:, : 2 * n], rtol=0, atol=2 ** -11)


def test_float64_filter_and_chunks(rng, monkeypatch):
    n = 4096
    k = rng.standard_normal((300, 1000))
    monkeypatch.setattr(fused, "SPECTRUM_CHUNK_BYTES", 16 * n * 7)  # 7 channels at a time
    conv = fused.FusedConv(n, "bfloat16", pregate=True, postgate=False)
    got = cp.asnumpy(conv.filter_spectrum(cp.asarray(k), reverse_shift=5)).astype(np.float64)
    np.testing.assert_allclose(got, _want(k, n, 5), rtol=0, atol=2 ** -11)


@pytest.mark.parametrize("n", [256, 2048, fused.DIRECT_MAX_N, 16384])
@pytest.mark.parametrize("k_dtype", ["float16", "bfloat16", "float32", "float64"])
def test_launcher_matches_filter_spectra(rng, n, k_dtype):
    """SpectrumLauncher (the fast paths' raw launch: filter_spectra_direct up to DIRECT_MAX_N,
    else padding, rfft and ordering) writes bitwise what FusedConv.filter_spectra gives for
    k's first k_used taps in float32, both spectra of a backward call, the output pool poisoned."""
    from cufftconv.dtypes import from_compute, to_compute

    H, Lk, k_used, shift = 7, n // 2 + 3, n // 2 - 5, 41
    k = from_compute(cp.asarray(rng.standard_normal((H, Lk)).astype(np.float32)), k_dtype, cp)
    sl = fused.SpectrumLauncher(n, H, Lk, k_used, k_dtype, (shift, None))
    offs, total = fused._layout(sl.ws_sizes)
    ws = cp.full(total // 2 + 8, np.nan, dtype=cp.float16)
    base = ws.data.ptr
    sl(cp.cuda.get_current_stream(), k.data.ptr, base, tuple(base + o for o in offs[2:]))
    conv = fused.FusedConv(n, "float16", pregate=False, postgate=False)
    kc = to_compute(k[:, :k_used], k_dtype, "float32", cp)
    want = [cp.asnumpy(a) for a in conv.filter_spectra(kc, (shift, None))]
    raw = cp.asnumpy(ws).view(np.uint8)
    for o, w in zip(offs[2:], want):
        got = raw[o : o + w.nbytes].view(np.float16).reshape(w.shape)
        assert np.array_equal(got.view(np.uint16), w.view(np.uint16))
