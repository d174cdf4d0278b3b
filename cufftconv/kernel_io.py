"""What the 16-bit kernel families (``fused`` and ``long``) share: operand checks and the
filter spectrum in a kernel's own frequency order.

Both take u ``(B, H, L)``, y ``(B, H, Lout)`` and optional gates as CuPy arrays of the storage
dtype (float16, or bfloat16 as uint16 bits) with a unit stride along the sequence, and compute
``y[b,h,t] = post * sum_s kpad[h,s] (pre*u)pad[b,h,(t + out_offset - s) mod n]`` for t < Lout.
A family whose kernel takes a two-level batch (``BATCH_DIMS = 2``) also accepts
``(B0, B1, H, L)`` operands, which it runs as B = B0 * B1 sequences in one launch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Operands:
    """A validated call: sizes and the element strides (batch, channel) of each array."""

    B: int
    H: int
    L: int
    out_offset: int
    Lout: int
    # element strides (batch, channel) of each array; (0, 0) for an absent gate
    u_strides: tuple[np.int64, np.int64]
    y_strides: tuple[np.int64, np.int64]
    pre_strides: tuple[np.int64, np.int64]
    post_strides: tuple[np.int64, np.int64]
    # two-level batch: sequence b is (b // BI, b % BI); element stride of the outer index
    BI: int = 1
    u_outer: int = 0
    y_outer: int = 0
    pre_outer: int = 0
    post_outer: int = 0

    @property
    def empty(self) -> bool:
        return self.B == 0 or self.H == 0 or self.Lout == 0


class FamilyConv:
    """Base of one kernel family's configuration: FFT size ``n``, dtype and gating."""

    n: int
    dtype: str
    pregate: bool
    postgate: bool
    BATCH_DIMS = 1  # leading batch axes the kernel takes (2: (B0, B1, H, L) operands too)

    freq_mask: tuple[bool, ...] | None = None

    def _configure(
        self, n: int, dtype: str, pregate: bool, postgate: bool, freq_mask: Any
    ) -> None:
        """Record the configuration (after the family has checked n and dtype); an all-kept
        frequency mask is stored as None (dense)."""
        self.n = int(n)
        self.dtype = dtype
        self.pregate = bool(pregate)
        self.postgate = bool(postgate)
        self.freq_mask = None if freq_mask is None or all(freq_mask) else tuple(freq_mask)

    @property
    def storage_dtype(self) -> np.dtype:
        return np.dtype(np.float16) if self.dtype == "float16" else np.dtype(np.uint16)

    def _check_io(self, name: str, a: Any, shape: tuple[int, ...]) -> tuple[np.int64, ...]:
        """Element strides of a's leading axes (all but the last), after the checks."""
        import cupy as cp

        if not isinstance(a, cp.ndarray):
            raise TypeError(f"{name} must be a cupy.ndarray")
        if a.dtype != self.storage_dtype:
            raise TypeError(
                f"{name} must have dtype {self.storage_dtype} for {self.dtype}, got {a.dtype}"
            )
        if a.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
        if a.size and a.shape[-1] > 1 and a.strides[-1] != a.itemsize:
            raise ValueError(f"{name}: last axis must be contiguous")
        return tuple(np.int64(s // a.itemsize) for s in a.strides[:-1])

    def check_operands(
        self, u: Any, y: Any, *, L: int, out_offset: int, Lout: int, pregate: Any, postgate: Any
    ) -> Operands:
        """Validate u, y and the gates against this configuration (raises ValueError /
        TypeError naming the argument)."""
        n = self.n
        four = self.BATCH_DIMS == 2 and getattr(u, "ndim", 0) == 4
        if getattr(u, "ndim", 0) != 3 and not four:
            allowed = "(B, H, L) or (B0, B1, H, L)" if self.BATCH_DIMS == 2 else "(B, H, L)"
            raise ValueError(f"u must have shape {allowed}, got {getattr(u, 'shape', None)}")
        lead, (h, lu) = tuple(u.shape[:-2]), u.shape[-2:]
        b = int(np.prod(lead))
        L, out_offset, Lout = int(L), int(out_offset), int(Lout)
        if lu != L or not 1 <= L <= n:
            raise ValueError(f"L={L} must equal u.shape[-1]={lu} and lie in [1, {n}]")
        if out_offset < 0 or Lout < 0 or out_offset + Lout > n:
            raise ValueError(f"need 0 <= out_offset and out_offset + Lout <= {n}")
        if (pregate is not None) != self.pregate or (postgate is not None) != self.postgate:
            raise ValueError(
                f"pregate/postgate presence must match the {type(self).__name__} configuration"
            )
        zero = (np.int64(0),) * (len(lead) + 1)
        s = {
            "u": self._check_io("u", u, (*lead, h, L)),
            "y": self._check_io("y", y, (*lead, h, Lout)),
            "pre": zero if pregate is None else self._check_io("pregate", pregate, (*lead, h, L)),
            "post": zero
            if postgate is None
            else self._check_io("postgate", postgate, (*lead, h, Lout)),
        }
        if not four:  # (B, H, L) is (1, B, H, L): no outer stride
            s = {name: (np.int64(0), *strides) for name, strides in s.items()}
        inner = int(lead[1]) if four else b
        # inner strides (batch axis, channel), then the outer batch axis's
        return Operands(
            b,
            h,
            L,
            out_offset,
            Lout,
            *(s[k][1:] for k in ("u", "y", "pre", "post")),
            max(inner, 1),
            *(s[k][0] for k in ("u", "y", "pre", "post")),
        )

    def check_filter(self, k: Any) -> Any:
        """k as (H, Lk) with 1 <= Lk <= n (raises ValueError naming its shape)."""
        if k.ndim != 2:
            raise ValueError(f"k must have shape (H, Lk), got {k.shape}")
        if not 1 <= k.shape[1] <= self.n:
            raise ValueError(f"filter length {k.shape[1]} must be in [1, {self.n}]")
        return k


def hermitian_order(freq: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For positions holding frequencies ``freq`` of a real signal's size-n spectrum: the rfft
    bin to read at each (int32) and whether to conjugate it (bins above n/2 mirror)."""
    freq = np.asarray(freq).reshape(-1)
    return np.where(freq <= n // 2, freq, n - freq).astype(np.int32), freq > n // 2


def ordered_spectra(
    k: Any, n: int, order: tuple[Any, Any], xp: Any, chunk_bytes: int = 256 << 20
) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(h0, h1, K)``: the size-n spectra of rows k[h0:h1] (zero padded), complex,
    at the positions of a kernel's order (``order``: :func:`hermitian_order` on ``xp``).

    A few channels at a time, so the rfft temporaries stay O(n), not O(H n). float64 k is
    transformed in float64, anything else in float32.
    """
    sel, conj = order
    real_t = xp.float64 if k.dtype == xp.float64 else xp.float32
    step = max(1, chunk_bytes // (16 * n))
    for h0 in range(0, k.shape[0], step):
        h1 = min(h0 + step, k.shape[0])
        kr = xp.fft.rfft(k[h0:h1].astype(real_t, copy=False), n=n, axis=-1)[:, sel]
        yield h0, h1, xp.where(conj[None, :], xp.conj(kr), kr)
