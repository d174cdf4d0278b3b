"""NumPy mirror of a planned row pass for the long path on the twiddle-folded 4096 stages (not built).

At FFT 1M the long path (``kernels/long_conv.cu``, ``cufftconv/long.py``) splits N = N1 * N2
with N2 = 4096: its row pass transforms each workspace row (complex fp32, natural n2 order),
multiplies by the row's filter slice and transforms back, in fp32 radix-16 stages (188 of ~383 ms
at 1M circular). The plan (benchmarks/NOTES_long.md, "Sketch"): run those rows through the
folded stages of ``kernels/twiddle_fold.cu`` instead. This script checks the two pieces of index
and scale bookkeeping that plan needs, in float64:

1. The filter gather: the long filter ``kf`` (H, N1, N2) holds at (r, s) the frequency
   ``digit_rev(N1)[r] + N1 * digit_rev(N2)[s]`` (``long.freq_index``); the folded stages want,
   per row r, the value of frequency ``k1 + N1 * f'`` at each of their spectrum positions pos,
   f' = ``fused.freq_index(4096)[pos]``. So ``kfold[h, r, pos] = kf[h, r, s_of[f'(pos)]]`` with
   ``s_of`` the inverse of ``digit_rev(N2)``: one gather at plan time.
2. The scale: the folded stages compute DFT / 64 forward (three stages of 1/4), multiply by the
   filter times 2^-6 and compute IDFT_unnormalised / 64 back; with the row scaled by 2^-ex into
   fp16 range and the filter slice stored as fp16 times 2^-ef, the long row pass's result
   IDFT_unnormalised(DFT(x) kf) is the folded result times 2^(ex + ef + 6 + 12).

    python benchmarks/fold_proto/long_rows_mirror.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from cufftconv import fused, long


def long_row_pass(x: np.ndarray, kf_row: np.ndarray) -> np.ndarray:
    """The long kernel's row pass on one row: the spectrum in digit-reversed order times the
    filter slice (same order), unnormalised inverse (kf already holds 1/N)."""
    n2 = x.size
    spec = np.fft.fft(x)[long.digit_rev(n2)]
    prod = np.empty(n2, dtype=complex)
    prod[long.digit_rev(n2)] = spec * kf_row
    return np.fft.ifft(prod) * n2


def folded_row_pass(x: np.ndarray, kfold_row: np.ndarray, ex: int, ef: int) -> np.ndarray:
    """The folded stages' arithmetic on one row (exact DFTs stand in for F1..F3 / I3..I1,
    whose composition test_twiddle_fold_host.py checks): 2^-ex in, DFT / 64, times the fp16
    filter at 2^-ef and 2^-6, IDFT_unnormalised / 64, then the output scale."""
    pos_freq = fused.freq_index(4096)
    xs = x * 2.0**-ex
    spec = np.fft.fft(xs)[pos_freq] / 64  # kernel order
    prod = spec * (kfold_row * 2.0**-ef) * 2.0**-6
    nat = np.empty(4096, dtype=complex)
    nat[pos_freq] = prod
    out = np.fft.ifft(nat) * 4096 / 64
    return out * 2.0 ** (ex + ef + 6 + 12)


def main() -> None:
    rng = np.random.default_rng(0)
    n = 1 << 20
    n1, n2, _ = long.split(n)
    assert n2 == 4096, "1M splits into rows of 4096 points"
    h = 2
    k = rng.standard_normal((h, 3000))
    spec = np.fft.fft(k, n) / n  # (H, n), the 1/N the long filter holds
    kf = spec[:, long.freq_index(n)]  # (H, N1, N2): long.FusedLong.filter_spectrum's layout
    s_of = np.argsort(long.digit_rev(n2))  # column position of row frequency k2
    kfold = kf[:, :, s_of[fused.freq_index(4096)]]  # the gather, (H, N1, 4096) kernel order
    for hh, r in ((0, 0), (1, 5), (1, n1 - 1)):
        k1 = long.digit_rev(n1)[r]
        want = spec[hh, k1 + n1 * fused.freq_index(4096)]
        assert np.allclose(kfold[hh, r], want), "filter gather"
        x = rng.standard_normal(n2) + 1j * rng.standard_normal(n2)
        ex = int(np.ceil(np.log2(np.abs(x).max()))) - 8  # (2^7, 2^8] as the kernel scales
        ef = int(np.ceil(np.log2(np.abs(kfold[hh, r]).max())))  # max |K| 2^-ef <= 1
        got = folded_row_pass(x, kfold[hh, r], ex, ef)
        ref = long_row_pass(x, kf[hh, r])
        assert np.allclose(got, ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max()), "scale"
    print("long rows mirror: filter gather and output scale 2^(ex + ef + 18) OK")


if __name__ == "__main__":
    main()
