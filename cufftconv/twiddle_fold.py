"""The twiddle-folded forward kernels: FFT 4096, 8192 and 16384 (``kernels/twiddle_fold.cu``),
FFT 512, 1024 and 2048 on the same 4096-point core with G = 4096 / n sequences of one channel
interleaved (:data:`IL_SIZES`), and FFT 256 (``kernels/pair_fold.cuh``, 8 pairs of sequences as
the MMA columns), one program.

Same contract and filter spectrum as the Monarch kernel of :mod:`cufftconv.fused` (they take
``monarch_conv_fwd``'s parameter list), with every twiddle folded into the tensor cores' DFT
matrices: about a third of the Monarch kernel's instructions at 4096. They need sm_90
(``stmatrix``) and cover dense calls (two-level batches at 8192 / 16384, e.g. the partial
path's windows; one level at 4096), gated or not, whose rows are 16-byte granular
with B a multiple of :func:`batch_grain` (4 at 4096, 4 G interleaved, 2 otherwise), and frequency-sparse
calls at 4096 / 8192 (the SPARSE variant skips the masked classes' tiles);
:class:`cufftconv.fused.FusedConv` takes them for those and the Monarch kernel for the rest.
"""

from __future__ import annotations

import functools

from .cache import OnceCache
from .sources import inline_source

KERNEL_FILE = "twiddle_fold.cu"
KERNEL_NAME = "twiddle_fold_fwd"
PAIR_KERNEL_NAME = "pair_fold_fwd"  # FFT 256
SIZES: tuple[int, ...] = (256, 512, 1024, 2048, 4096, 8192, 16384)
# FFT n < 4096 on the 4096-point core: z[G m + p] = x_p[m] for G = 4096 / n sequences x_p of one
# channel, whose 4096-point circular convolution with the spectrum K[f mod n] (periodic: the
# filter upsampled by G) is each x_p's n-point one. The kernel reads the FFT-n spectrum.
IL_SIZES: tuple[int, ...] = (512, 1024, 2048)
# Interleaved calls that the Monarch kernel runs faster: FFT 512 with a gate (bench rows with
# the L2 flushed, one run, H200, 2026-11-23: gated 0.0974 vs 0.1097 ms; benchmarks/RESULTS.md).
IL_GATED_SLOWER: tuple[int, ...] = (512,)
SPARSE_SIZES: tuple[int, ...] = (4096, 8192)  # frequency-sparse masks: the SPARSE instantiations
DTYPES = ("float16", "bfloat16")
THREADS = 256  # twiddle_fold_fwd (16384: RX_THREADS)
RX_THREADS = 512  # 16384: one 16-warp block per SM
PAIR_WARPS, PAIR_BUFS = 12, 2  # pair_fold_fwd: warps per block, tile buffers per warp
PAIR_TILE = 8  # pairs per warp tile
MIN_CC = 90  # stmatrix
GRAIN = 8  # elements: L, out_offset, Lout and row strides must be multiples (16-byte chunks)
_PLANE = 16 * 35 * 16  # bytes of one padded 16-bit plane (tf::PLANE)
_MAT_BYTES = 2 * 35 * 16  # one 16x16 complex fp16 table matrix (tf::MAT_BYTES)
_PAIR_TILE_BYTES = 2 * 16 * 17 * 16  # one pair_fold tile buffer (pf::PairFold::BUF)
_SMEM_4096 = 2 * (4 * _PLANE) + 32 * _MAT_BYTES + 8 * 2 * 4  # work, staging, table, maxima
_SPARSE_LISTS = 80  # TwiddleFold::LST: the SPARSE variant's live-column and block lists
_DT_CODE = {"float16": 0, "bfloat16": 1}
# (device, arch, n, dtype, pre, post, half, sparse, gskip, two) -> (kernel, per SM)
_KERNELS: OnceCache = OnceCache()
GSKIP_SIZES: tuple[int, ...] = (8192, 16384)  # the GSKIP instantiations (dead_groups)
TWO_SIZES: tuple[int, ...] = (8192, 16384)  # two-level batches (BI < B): the TWO instantiations


def smem(n: int, sparse: bool = False) -> int:
    """Dynamic shared memory per block (TwiddleFold<N, DT>::SMEM: 4096 and the interleaved
    sizes work, staging, 32 matrices; 8192 / 16384 in place: 4 / 8 work planes and 64 / 128
    matrices; ``sparse`` adds its lists; PairFold::SMEM: 18 matrices and the warps' tile
    buffers)."""
    if n == 256:
        return 18 * _MAT_BYTES + PAIR_WARPS * PAIR_BUFS * _PAIR_TILE_BYTES
    lists = _SPARSE_LISTS if sparse else 0
    if n in (8192, 16384):  # in place, R = n / 4096: 2 R planes, 32 R matrices, R maxima per warp
        r = n // 4096
        return 2 * r * _PLANE + 32 * r * _MAT_BYTES + threads(n) // 32 * r * 4 + lists
    return _SMEM_4096 + lists


def threads(n: int) -> int:
    return 32 * PAIR_WARPS if n == 256 else RX_THREADS if n == 16384 else THREADS


def pairs_per_unit(n: int) -> int:
    """Pairs of (4096-point) sequences of one channel per work unit of twiddle_fold_fwd (4096
    and the interleaved sizes: 2, 8192 / 16384: 1)."""
    return 2 if n == 4096 or n in IL_SIZES else 1


def interleave(n: int) -> int:
    """G: sequences per 4096-point sequence (4096 / n for :data:`IL_SIZES`, else 1)."""
    return 4096 // n if n in IL_SIZES else 1


def batch_grain(n: int) -> int:
    """B must be a multiple of this (pairs of sequences; 4096: two pairs of one channel;
    interleaved sizes: two pairs of G sequences each)."""
    return 2 * pairs_per_unit(n) * interleave(n)


def kernel_source() -> str:
    """The kernel source with its local headers inlined."""
    return inline_source(KERNEL_FILE)


def compile_options(arch: str | None = None) -> tuple[str, ...]:
    """The fused family's NVRTC options (:func:`cufftconv.fused.compile_options`)."""
    from . import fused

    return fused.compile_options(arch)


def name_expression(
    n: int,
    dtype: str,
    pregate: bool = False,
    postgate: bool = False,
    half: bool = False,
    sparse: bool = False,
    gskip: bool = False,
    two: bool = False,
) -> str:
    """``half``: the causal variant (L and out_offset + Lout at most n / 2; see :func:`half`);
    ``sparse``: the frequency-sparse variant (:func:`live_word`; sizes :data:`SPARSE_SIZES`);
    ``gskip``: the dense variant that skips the groups a mask zeroes (:func:`dead_groups`;
    sizes :data:`GSKIP_SIZES`); ``two``: the dense variant for two-level batches (sizes
    :data:`TWO_SIZES`). The last template argument is 0 (dense), 1, 2 or 3 (those three)."""
    if n not in SIZES:
        raise ValueError(f"FFT size {n} has no twiddle-folded kernel (sizes: {SIZES})")
    if dtype not in _DT_CODE:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if sparse and n not in SPARSE_SIZES:
        raise ValueError(f"FFT size {n} has no frequency-sparse folded kernel ({SPARSE_SIZES})")
    if gskip and (sparse or n not in GSKIP_SIZES):
        raise ValueError(f"FFT size {n} has no group-skipping folded kernel ({GSKIP_SIZES})")
    if two and (sparse or gskip or n not in TWO_SIZES):
        raise ValueError(f"FFT size {n} has no two-level-batch folded kernel ({TWO_SIZES})")
    flags = ", ".join(str(bool(f)).lower() for f in (pregate, postgate, half))
    if n == 256:
        return f"{PAIR_KERNEL_NAME}<{_DT_CODE[dtype]}, {flags}, {PAIR_WARPS}, {PAIR_BUFS}>"
    mask = 1 if sparse else 2 if gskip else 3 if two else 0
    return f"{KERNEL_NAME}<{n}, {_DT_CODE[dtype]}, {flags}, {mask}>"


def all_name_expressions() -> list[str]:
    """Every instantiation :func:`eligible` can pick (FFT 256: the half variant only)."""
    return [
        name_expression(n, dt, pre, post, hf, sp, gs, tw)
        for n in SIZES
        for dt in DTYPES
        for pre in (False, True)
        for post in (False, True)
        for hf in ((True,) if n == 256 else (False, True))
        for sp, gs, tw in (
            [(False, False, False)]
            + ([(True, False, False)] if n in SPARSE_SIZES else [])
            + ([(False, True, False)] if n in GSKIP_SIZES else [])
            + ([(False, False, True)] if n in TWO_SIZES else [])
        )
    ]


def live_counts(n: int, freq_mask: tuple[bool, ...]) -> tuple[int, int]:
    """Live k1 per group (see :func:`live_word`)."""
    word = live_word(n, freq_mask) & 0xFFFFFFFF
    return (word & 0xFFFF).bit_count(), (word >> 16).bit_count()


def sparse_fits(n: int, freq_mask: tuple[bool, ...]) -> bool:
    """Whether the SPARSE variant takes ``freq_mask`` at size n: at most 8 live k1 per group
    (one column group of the tensor-core tiles; 4096: at most 8 kept classes, i.e. at least
    half the spectrum zeroed; 8192: at most 4 kept classes of each parity)."""
    return n in SPARSE_SIZES and max(live_counts(n, freq_mask)) <= 8


def use_sparse(n: int, freq_mask: tuple[bool, ...] | None) -> bool:
    """Whether a call takes the SPARSE instantiation; a mask it does not fit runs the dense one
    at 4096 (with the masked spectrum) and the Monarch kernel at 8192 (:func:`eligible`)."""
    return freq_mask is not None and sparse_fits(n, freq_mask)


@functools.lru_cache(maxsize=256)
def live_word(n: int, freq_mask: tuple[bool, ...]) -> int:
    """The SPARSE kernels' ``qlive`` argument: bit 16 g + k1 set when group g's tiles of first
    digit k1 hold kept frequencies (frequency f is kept iff ``freq_mask[f % 16]``). 4096: both
    groups (pairs) have f % 16 = k1; 8192: group g is the sub-transform of f = 2 f' + g, whose
    k1 = f' % 16, so f % 16 = (2 k1 + g) % 16. Returned as the signed 32-bit value."""
    if n not in SPARSE_SIZES:
        raise ValueError(f"FFT size {n} has no frequency-sparse folded kernel ({SPARSE_SIZES})")
    if len(freq_mask) != 16:
        raise ValueError(f"freq_mask must have 16 classes, got {len(freq_mask)}")
    word = 0
    for g in range(2):
        for k1 in range(16):
            f16 = k1 if n == 4096 else (2 * k1 + g) % 16
            if freq_mask[f16]:
                word |= 1 << (16 * g + k1)
    return word - (1 << 32) if word >= 1 << 31 else word


def dead_groups(n: int, freq_mask: tuple[bool, ...] | None) -> int:
    """The dense kernel's ``qlive`` argument at 8192 / 16384 (GSKIP): bit g set when
    ``freq_mask`` keeps no frequency of group g (the sub-transform of f = g + R f', R = n /
    4096, holding the classes f % 16 = g + R i): its stages are skipped. 0 elsewhere."""
    if freq_mask is None or n not in (8192, 16384):
        return 0
    r = n // 4096
    return sum(1 << g for g in range(r) if not any(freq_mask[g::r]))


def half(n: int, L: int, out_offset: int, Lout: int) -> bool:
    """Whether the input's upper half is zero and the output's dropped (causal calls): the
    kernel then skips them."""
    return L <= n // 2 and out_offset + Lout <= n // 2


# FFT 256: the pair-folded kernel runs only the causal (half) variant. Bench rows with the L2
# flushed against the Monarch kernel on an H200 (benchmarks/RESULTS.md, 2026-11-23): causal
# 0.0282 vs 0.0353 ms, but circular level (0.0400 vs 0.0403) and gated 7-10 % slower.


def eligible(
    n: int,
    *,
    freq_mask: tuple[bool, ...] | None = None,
    B: int,
    BI: int,
    L: int,
    out_offset: int,
    Lout: int,
    strides: tuple[int, ...],
    gated: bool = False,
) -> bool:
    """Whether a forward call fits the kernel (pointers' 16-byte alignment is checked per call)
    and the kernel is the faster one for it (``gated``: a pregate or postgate; see
    :data:`IL_GATED_SLOWER`).
    Frequency-sparse calls: 4096 always (the SPARSE variant, or the dense one on the masked
    spectrum where more than 8 k1 are live: at most half the spectrum zeroed), the interleaved
    sizes always (the dense kernel on the masked spectrum, as the Monarch kernel); 8192 where the
    SPARSE variant fits or the mask zeroes a whole group (:func:`dead_groups`: the dense
    variant skips it); else the Monarch kernel's tile skipping."""
    masked_ok = (
        freq_mask is None
        or n == 4096
        or n in IL_SIZES
        or (n == 8192 and sparse_fits(n, freq_mask))
        or dead_groups(n, freq_mask) != 0
    )
    return (
        n in SIZES
        and masked_ok
        and (BI == B or (n in TWO_SIZES and freq_mask is None))  # two-level: TWO
        and B > 0
        and B % batch_grain(n) == 0
        and all(v % GRAIN == 0 for v in (L, out_offset, Lout, *strides))
        and 0 < L <= n
        and out_offset + Lout <= n
        and (n != 256 or half(n, L, out_offset, Lout))
        and not (gated and n in IL_GATED_SLOWER)
    )


# The backward (kernels/fold_bwd.cuh): FFT 4096, 512 / 1024 / 2048 interleaved on the same core,
# and 8192 (the radix-2 kernel's stages, one block per SM); MODE 0 dk, 1 dk and du (no gates),
# 2 both gates and every gradient (outs = 7: du, dpregate, dpostgate; not at 8192).
BWD_KERNEL_NAME = "twiddle_fold_bwd"
BWD_SIZES: tuple[int, ...] = (512, 1024, 2048, 4096, 8192)
BWD_MODES = (0, 1, 2)
BWD_GATED_SIZES: tuple[int, ...] = (512, 1024, 2048, 4096)  # MODE 2
_BWD_KERNELS: OnceCache = OnceCache()  # (device, arch, n, dtype, half, mode) -> (kernel, per SM)


def bwd_name_expression(n: int, dtype: str, half: bool, mode: int) -> str:
    """``half``: u, dy (and the outputs) within positions < n / 2; ``mode``: :data:`BWD_MODES`."""
    if n not in BWD_SIZES:
        raise ValueError(f"n must be one of {BWD_SIZES}, got {n!r}")
    if dtype not in _DT_CODE:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if mode not in BWD_MODES or (mode == 2 and n not in BWD_GATED_SIZES):
        raise ValueError(f"mode must be one of {BWD_MODES} (2 at {BWD_GATED_SIZES}), got {mode!r}")
    return f"{BWD_KERNEL_NAME}<{n}, {_DT_CODE[dtype]}, {str(bool(half)).lower()}, {mode}>"


def all_bwd_name_expressions() -> list[str]:
    return [
        bwd_name_expression(n, dt, hf, m)
        for n in BWD_SIZES
        for dt in DTYPES
        for hf in (False, True)
        for m in BWD_MODES
        if m != 2 or n in BWD_GATED_SIZES
    ]


def bwd_mode(pregate: bool, postgate: bool, outs: int) -> int | None:
    """The folded backward's MODE for a call, or None where it has none (one gate alone, or
    gates without every gradient)."""
    if not pregate and not postgate and outs in (0, 1):
        return outs
    if pregate and postgate and outs == 7:
        return 2
    return None


def bwd_half(n: int, L: int, out_offset: int, Lout: int, mode: int) -> bool:
    """Whether the inputs (and, gated, the forward's window) lie within n / 2."""
    return L <= n // 2 and Lout <= n // 2 and (mode != 2 or out_offset + Lout <= n // 2)


def bwd_smem(n: int) -> int:
    """FoldBwd::SMEM: 4 work planes, 32 matrices, the maxima, the fp32 sums (4096 x 8 bytes);
    8192: 8 planes (both sides), 64 matrices, two sides' maxima, 8192 sums."""
    if n == 8192:
        return 8 * _PLANE + 64 * _MAT_BYTES + 2 * 8 * 2 * 4 + 8192 * 8
    return 4 * _PLANE + 32 * _MAT_BYTES + 8 * 2 * 4 + 4096 * 8


def bwd_eligible(
    n: int,
    *,
    pregate: bool,
    postgate: bool,
    outs: int,
    B: int,
    L: int,
    Lout: int,
    strides: tuple[int, ...],
    out_offset: int = 0,
) -> bool:
    """Whether a backward call fits the folded backward kernel (pointers' 16-byte alignment is
    checked per call): n in :data:`BWD_SIZES`, :func:`bwd_mode` not None, B a multiple of 2 G
    (:func:`bwd_grain`), L, Lout and the row strides of every operand multiples of 8 (gated:
    out_offset too)."""
    mode = bwd_mode(pregate, postgate, outs)
    return (
        n in BWD_SIZES
        and mode is not None
        and (mode != 2 or (out_offset % GRAIN == 0 and n in BWD_GATED_SIZES))
        and B > 0
        and B % bwd_grain(n) == 0
        and 0 < L <= n
        and 0 < Lout <= n
        and all(v % GRAIN == 0 for v in (L, Lout, *strides))
    )


def bwd_grain(n: int) -> int:
    """B must be a multiple of this for the folded backward: a unit is a pair of G sequences
    per side."""
    return 2 * interleave(n)


def bwd_kernel(n: int, dtype: str, half: bool, mode: int):
    """(RawKernel, blocks per SM) of the folded backward on the current device, or None where it
    cannot run (below sm_90, or too little shared memory)."""
    return _compiled(
        _BWD_KERNELS,
        (n, dtype, bool(half), mode),
        lambda: bwd_name_expression(n, dtype, half, mode),
        bwd_smem(n),
        THREADS,
    )


def units(B: int, H: int, n: int) -> int:
    """Blocks with work in a (B, H) call: one per unit (:func:`pairs_per_unit` pairs of one
    channel) of twiddle_fold_fwd, one per PAIR_WARPS tiles of PAIR_TILE pairs at 256."""
    pairs = (B // 2) * H
    if n == 256:
        return -(-pairs // (PAIR_TILE * PAIR_WARPS))
    return pairs // interleave(n) // pairs_per_unit(n)


def aligned(*ptrs: int) -> bool:
    """Whether every pointer (u, y and the gates a call passes) is 16-byte aligned."""
    return all(p % (2 * GRAIN) == 0 for p in ptrs)


def kernel(
    n: int,
    dtype: str,
    pregate: bool = False,
    postgate: bool = False,
    half: bool = False,
    sparse: bool = False,
    gskip: bool = False,
    two: bool = False,
):
    """(RawKernel, blocks per SM) on the current device, or None where it cannot run (below
    sm_90, or less shared memory per block than the kernel needs)."""
    flags = tuple(bool(f) for f in (pregate, postgate, half, sparse, gskip, two))
    return _compiled(
        _KERNELS,
        (n, dtype, *flags),
        lambda: name_expression(n, dtype, *flags),
        smem(n, sparse),
        threads(n),
    )


def _compiled(cache: OnceCache, key: tuple, name, nbytes: int, nthreads: int):
    """(RawKernel, blocks per SM) of the instantiation ``name()`` of this family's program,
    compiled once per (device, arch, key), or None below sm_90 or where the device's shared
    memory per block is below ``nbytes``."""
    import cupy as cp

    dev = cp.cuda.Device()
    cc = int(dev.compute_capability)
    if cc < MIN_CC:
        return None

    def build():
        from .fused import _blocks_per_sm

        if dev.attributes["MaxSharedMemoryPerBlockOptin"] < nbytes:
            return None
        nm = name()
        mod = cp.RawModule(
            code=kernel_source(), options=compile_options(None), name_expressions=[nm]
        )
        kern = mod.get_function(nm)
        kern.max_dynamic_shared_size_bytes = nbytes
        return kern, _blocks_per_sm(kern, nthreads, nbytes)

    return cache.get((dev.id, cc, *key), build)
