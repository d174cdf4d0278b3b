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


def plan_blocks(L: int, Lk: int, offset: int, Lout: int, n: int) -> list[Blocks]:
    """Cover outputs y[t] = c[t + offset], t < Lout, of the linear convolution c of an
    L-long input with an Lk-long filter, by blocks of FFT size n.

    Interior blocks (whole window inside the input, whole hop of outputs) form one group; the
    few blocks at either end (window starting before 0 or running past L, or a short last
    hop) get a group each. Blocks whose window holds no input at all are not listed: their
    outputs are zero.
    """
    hop = n - Lk + 1
    if hop < 1:
        raise ValueError(f"block FFT size {n} is too small for a filter of length {Lk}")
    nblocks = -(-Lout // hop)
    groups: list[Blocks] = []
    run_start = None  # first block of the current interior run

    def flush(end: int) -> None:
        nonlocal run_start
        if run_start is not None:
            j0 = run_start
            m0 = offset + j0 * hop
            groups.append(Blocks(j0 * hop, m0 - (Lk - 1), end - j0, n, Lk - 1, hop))
            run_start = None

    for j in range(nblocks):
        t0 = j * hop
        m0 = offset + t0
        w0 = m0 - (Lk - 1)
        lout = min(hop, Lout - t0)
        if w0 >= 0 and w0 + n <= L and lout == hop:
            if run_start is None:
                run_start = j
            continue
        flush(j)
        ws = max(w0, 0)
        lw = min(L, w0 + n) - ws
        if lw <= 0:
            continue  # no input reaches these outputs
        groups.append(Blocks(t0, ws, 1, lw, m0 - ws, lout))
    flush(nblocks)
    return groups


def covered(groups: list[Blocks], hop: int) -> list[tuple[int, int]]:
    """Output ranges [start, stop) the groups write (for tests and the zero fill)."""
    out = []
    for g in groups:
        for i in range(g.count):
            out.append((g.t0 + i * hop, g.t0 + i * hop + g.lout))
    return sorted(out)


__all__ = ["BLOCK_FACTOR", "MIN_RATIO", "Blocks", "block_fft_size", "covered", "plan_blocks"]
