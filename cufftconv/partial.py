"""Partial convolutions (filter much shorter than the sequence): overlap-save blocks.

A linear convolution with a short filter (Lk <= L / 4) does not need an FFT of the whole
sequence. Output block j (``hop`` outputs) depends on one window of ``n`` inputs, where n is a
small power of two (about 4 Lk) and ``hop = n - Lk + 1``; the window's circular convolution
of size n gives those outputs exactly (overlap-save). Every window runs through the fused
on-chip kernel family (:mod:`cufftconv.fused`) as one "sequence", read in place through a
strided view of u (windows overlap by Lk - 1), so the work grows like L log Lk, no
sequence-length buffer exists (the filter spectrum is (H, n)), and any L streams through.

This module holds the block arithmetic (pure, host-side); :mod:`cufftconv.backends.partial`
runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import fused

MIN_RATIO = 4  # Lk <= L / MIN_RATIO
BLOCK_FACTOR = 4  # n = next power of two >= BLOCK_FACTOR * Lk (overlap (Lk - 1) / n <= 1/4)
ALIGN = 8  # windows start on 8-element (16-byte) boundaries where the hop allows


def _pow2_at_least(x: int) -> int:
    return 1 << max(0, int(x) - 1).bit_length()


def block_fft_size(Lk: int) -> int | None:
    """FFT size of one block for a filter of length Lk, or None when no fused size fits.

    BLOCK_FACTOR * Lk rounded up to a power of two (at least the fused table's smallest), or
    2 * Lk when that is too large for the table; a window must hold Lk - 1 inputs of history
    and at least Lk new outputs.
    """
    sizes = fused.SUPPORTED_N
    for want in (BLOCK_FACTOR * Lk, 2 * Lk):
        n = max(sizes[0], _pow2_at_least(want))
        if n in sizes:
            return n
    return None


@dataclass(frozen=True)
class Blocks:
    """Consecutive output blocks handled by one kernel launch.

    Block i (0 <= i < count) writes outputs ``[t0 + i*hop, t0 + i*hop + lout)`` from the input
    window starting at ``w0 + i*hop`` of valid length ``lw`` (zero beyond), taking the
    window's circular-convolution outputs ``[out_offset, out_offset + lout)``.
    """

    t0: int
    w0: int
    count: int
    lw: int
    out_offset: int
    lout: int


def hop_size(n: int, Lk: int, align: int = ALIGN) -> int:
    """New outputs per block of FFT size n: n - Lk + 1, less the slack that lets every window
    start on an ``align``-element boundary, rounded down to a multiple of ``align`` (so the
    fused kernel's 16-byte vector loads and stores apply); plain n - Lk + 1 when too short."""
    hop = (n - Lk + 1 - (align - 1)) // align * align
    return hop if hop >= align else n - Lk + 1


def plan_blocks(
    L: int, Lk: int, offset: int, Lout: int, n: int, align: int = ALIGN
) -> list[Blocks]:
    """Cover outputs y[t] = c[t + offset], t < Lout, of the linear convolution c of an
    L-long input with an Lk-long filter, by blocks of FFT size n.

    Block j writes outputs [j hop, j hop + hop) from the window of n inputs that starts at or
    up to ``align - 1`` before m0 - (Lk - 1) (m0 = offset + j hop), clipped to [0, L).
    Consecutive blocks with the same window length, crop offset and output count form one
    group (one launch): all interior blocks, since hop is a multiple of ``align``. Blocks
    whose window holds no input are not listed: their outputs are zero.
    """
    hop = hop_size(n, Lk, align)
    if hop < 1:
        raise ValueError(f"block FFT size {n} is too small for a filter of length {Lk}")
    step = align if hop % align == 0 else 1
    groups: list[Blocks] = []
    for j in range(-(-Lout // hop)):
        t0 = j * hop
        m0 = offset + t0
        w0 = m0 - (Lk - 1)
        ws = w0 - w0 % step if w0 >= 0 else 0
        # Valid inputs in the window; past n + w0 - ws they would wrap onto outputs we keep.
        lw = min(L - ws, n, n + w0 - ws)
        if lw <= 0:
            continue  # no input reaches these outputs
        lout = min(hop, Lout - t0)
        g = groups[-1] if groups else None
        if (
            g is not None
            and (g.lw, g.out_offset, g.lout) == (lw, m0 - ws, lout)
            and g.t0 + g.count * hop == t0
            and g.w0 + g.count * hop == ws
        ):
            groups[-1] = Blocks(g.t0, g.w0, g.count + 1, lw, g.out_offset, lout)
        else:
            groups.append(Blocks(t0, ws, 1, lw, m0 - ws, lout))
    return groups


def covered(groups: list[Blocks], hop: int) -> list[tuple[int, int]]:
    """Output ranges [start, stop) the groups write (for tests and the zero fill)."""
    out = []
    for g in groups:
        for i in range(g.count):
            out.append((g.t0 + i * hop, g.t0 + i * hop + g.lout))
    return sorted(out)


__all__ = [
    "ALIGN",
    "BLOCK_FACTOR",
    "MIN_RATIO",
    "Blocks",
    "block_fft_size",
    "covered",
    "hop_size",
    "plan_blocks",
]
