"""Frequency-sparse convolutions: which frequencies are kept, and which kernel blocks that skips.

A frequency-sparse convolution multiplies the filter spectrum by a mask that is periodic in
the frequency index with period ``GROUPS`` = 16: frequency f of the size-N FFT is kept iff
``mask[f % 16]``. Those residue classes are the blocks of every kernel's decomposition: in the
fused kernels (FFT sizes 4096..32768) each 256-point tile of the spectrum holds one class, and in
the long kernels each row of the (N1, N2) workspace does (N1 >= 256), so a zero class skips whole
tiles or rows (their matmuls, loads and stores), not single values.

The FFT size N is the power of two :func:`fft_size` gives (the dense size of the mode); the
result equals the dense convolution through an N-point FFT with the masked spectrum, checked
against :func:`cufftconv.reference.fftconv_direct` with the same mask. The mask must be
Hermitian-symmetric (``mask[r] == mask[(16 - r) % 16]``) so that a real filter stays real.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

GROUPS = 16
# Classes in the order freq_keep keeps them: by how many times 2 divides them, each with its
# mirror, so every prefix of even length (and of length 1) is Hermitian-symmetric. Keeping
# 16 / 2**j classes keeps exactly the frequencies f % 2**j == 0: the filter folded to period
# N / 2**j (k_s[t] = sum_i k[t + i N / 2**j] / 2**j). The kernels' first radix stages produce
# the low digits of f, so such masks also drop whole sub-transforms there, not only tiles.
KEEP_ORDER = (0, 8, 4, 12, 2, 14, 6, 10, 1, 15, 3, 13, 5, 11, 7, 9)

Mask = tuple[bool, ...]


def from_keep(freq_keep: float) -> Mask | None:
    """Mask keeping about ``freq_keep`` of the spectrum: m = round(16 * freq_keep) classes
    (at least 1; an odd m > 1 is rounded up to keep the mask symmetric), the first m of
    :data:`KEEP_ORDER`. None (dense) when all 16 are kept."""
    if isinstance(freq_keep, bool) or not isinstance(freq_keep, (int, float, np.floating)):
        raise TypeError(f"freq_keep: got {freq_keep!r}; allowed: a float in (0, 1]")
    keep = float(freq_keep)
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"freq_keep: got {freq_keep!r}; allowed: a float in (0, 1]")
    m = max(1, int(np.floor(GROUPS * keep + 0.5)))
    if m > 1 and m % 2:
        m += 1
    if m >= GROUPS:
        return None
    kept = set(KEEP_ORDER[:m])
    return tuple(r in kept for r in range(GROUPS))


def from_mask(freq_mask: Sequence[bool] | np.ndarray) -> Mask | None:
    """Validate an explicit mask of the 16 residue classes; None (dense) when all are kept."""
    try:
        arr = np.asarray(freq_mask)
    except Exception as exc:
        raise TypeError(f"freq_mask: got {type(freq_mask).__name__}; allowed: 16 booleans") from exc
    if arr.shape != (GROUPS,) or arr.dtype.kind not in "biu":
        raise ValueError(
            f"freq_mask: got shape {arr.shape} dtype {arr.dtype}; allowed: {GROUPS} booleans "
            f"(keep frequency f iff freq_mask[f % {GROUPS}])"
        )
    if arr.dtype.kind != "b" and not np.isin(arr, (0, 1)).all():
        raise ValueError("freq_mask: integer entries must be 0 or 1")
    mask = tuple(bool(v) for v in arr)
    if not any(mask):
        raise ValueError("freq_mask: keeps no frequency; at least one class must be True")
    bad = [r for r in range(GROUPS) if mask[r] != mask[(GROUPS - r) % GROUPS]]
    if bad:
        raise ValueError(
            f"freq_mask: not Hermitian-symmetric at classes {bad} (need freq_mask[r] == "
            f"freq_mask[(16 - r) % 16], so that the filter stays real)"
        )
    return None if all(mask) else mask


def resolve(freq_keep: float | None = None, freq_mask: object = None) -> Mask | None:
    """The mask from the keyword arguments (at most one may be given); None means dense."""
    if freq_keep is not None and freq_mask is not None:
        raise ValueError("give freq_keep or freq_mask, not both")
    if freq_keep is not None:
        return from_keep(freq_keep)
    if freq_mask is not None:
        return from_mask(freq_mask)  # type: ignore[arg-type]
    return None


def kept_fraction(mask: Mask | None) -> float:
    return 1.0 if mask is None else sum(mask) / GROUPS


def spectrum_mask(mask: Mask, n: int) -> np.ndarray:
    """Boolean (n,): which frequencies of a size-n FFT are kept (n a multiple of 16)."""
    if n % GROUPS:
        raise ValueError(f"a frequency mask needs an FFT size that is a multiple of {GROUPS}")
    return np.asarray(mask, dtype=bool)[np.arange(n) % GROUPS]


def fft_size(L: int, Lk: int, mode: str) -> int:
    """FFT size N of a frequency-sparse convolution: L for circular (a multiple of 16), else
    the power of two at least the linear length L + Lk - 1 (causal: L + min(Lk, L) - 1)."""
    if mode == "circular":
        if L % GROUPS:
            raise ValueError(
                f"freq_keep/freq_mask with mode='circular' need L to be a multiple of {GROUPS}, "
                f"got L={L}"
            )
        return L
    need = L + (min(Lk, L) if mode == "causal" else Lk) - 1
    return max(GROUPS, 1 << (need - 1).bit_length())


def zero_blocks(mask: Mask, freq: np.ndarray) -> np.ndarray:
    """For a kernel whose spectrum blocks hold frequencies ``freq`` (shape (blocks, size)):
    which blocks the mask zeroes entirely (those a kernel may skip)."""
    keep = np.asarray(mask, dtype=bool)[np.asarray(freq) % GROUPS]
    return ~keep.any(axis=-1)


__all__ = [
    "GROUPS",
    "KEEP_ORDER",
    "fft_size",
    "from_keep",
    "from_mask",
    "kept_fraction",
    "resolve",
    "spectrum_mask",
    "zero_blocks",
]
