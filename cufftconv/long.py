"""Long FFT convolutions, FFT sizes 65536 and up: three passes through a chunked workspace.

A sequence of FFT size N = N1 * N2 no longer fits on chip, so the transform is split (see
``kernels/long_conv.cu``): a column pass (DFT over N1 with the twiddle), a row pass that keeps
each row of N2 points on chip through forward DFT, filter multiply and inverse DFT, and an
inverse column pass that applies the postgate and crops. Two sequences of a channel travel as
one complex sequence. All arithmetic is fp32; the one intermediate is a complex fp32 workspace
for a chunk of pairs, small enough to stay in L2 between passes when ``chunk_bytes`` allows.
"""

from __future__ import annotations

import threading
from functools import cache

import numpy as np

from .cache import OnceCache
from .kernel_io import FamilyConv, hermitian_order, ordered_spectra
from .sources import inline_source

MIN_N = 1 << 16
MAX_N = 1 << 24
SUPPORTED_N: tuple[int, ...] = tuple(1 << e for e in range(16, 25))
DTYPES = ("float16", "bfloat16")
KERNEL_FILE = "long_conv.cu"
COL_POINTS = 8192  # points per column tile (N1 * C): 64 KiB of complex fp32
# Longest row kept on chip, largest first: 16384 (128 KiB of complex fp32, one 512-thread block
# per SM; from FFT 4M up) measured 10-14 % faster than 8192 at 4M on an H200 (the column tiles
# get 32 columns and a radix-16 innermost stage); 8192 (3 blocks of 256 per SM) is the choice
# where the 16K row's shared memory does not fit (99 KB parts). See row_limit.
ROW_CHOICES = (16384, 8192)
MAX_ROW = ROW_CHOICES[0]
# Launch groups: a workspace of CHUNK_BYTES per group, STREAMS groups in flight on side streams
# (the groups' passes overlap). Measured on an H200 with benchmarks/long_dev.py (2026-11-22,
# results/h200-2026-11-22-long-*sweep*.log): 24 MiB groups cost 2-3 ms of host time per call
# (3 launches per group) and left frequency-sparse calls host-bound; 64 MiB groups take ~1 ms,
# are within -5..+3 % of 24 MiB on dense calls and the fastest or within 2 % on 75 %-sparse ones.
# After the afternoon's leaner passes, 3 groups in flight beat 2 at 64K by 7 % (1M: within 1 %;
# results/h200-2026-11-22-long-streams-sweep-ef29012.log).
CHUNK_BYTES = 64 << 20
STREAMS = 3

_DT_CODE = {"float16": 0, "bfloat16": 1}
_LOCK = threading.Lock()  # the side streams
_MODULES: OnceCache[dict] = OnceCache()  # (device, arch, configuration) -> kernels
_ORDER: OnceCache[tuple] = OnceCache()  # (device, n, max_row) -> hermitian_order(freq_index) there


def _check_n(n: int) -> None:
    if n not in SUPPORTED_N:
        raise ValueError(
            f"FFT size {n} not supported by the long kernels (supported: {SUPPORTED_N})"
        )


def _check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")


def split(n: int, max_row: int = MAX_ROW) -> tuple[int, int, int]:
    """(N1, N2, C): column DFT size, row DFT size (at most ``max_row``), columns per tile."""
    _check_n(n)
    if max_row not in ROW_CHOICES:
        raise ValueError(f"max_row must be one of {ROW_CHOICES}, got {max_row!r}")
    n2 = min(n // 256, max_row)
    n1 = n // n2
    return n1, n2, max(8, COL_POINTS // n1)  # tiles load 8 columns at a time


def rows_per_block(n2: int) -> int:
    return 1 if n2 >= 4096 else 4096 // n2


def threads(kind: str, n: int, max_row: int = MAX_ROW) -> int:
    return 512 if kind == "rows" and split(n, max_row)[1] >= 16384 else 256


PAD_LOG = 4  # kernels/long_conv.cu: one float2 of shared-memory padding every 2**PAD_LOG


def _padded(m: int) -> int:
    return m + (m >> PAD_LOG)


def shared_bytes(n: int, max_row: int = MAX_ROW) -> dict[str, int]:
    """Dynamic shared memory (bytes) of each pass's block."""
    n1, n2, c = split(n, max_row)
    points = n2 * rows_per_block(n2)
    staged = points * 8 if points <= 4096 else 0  # filter rows staged with the data (RowCfg)
    return {"cols": _padded(n1 * c) * 8, "rows": _padded(points) * 8 + staged}


def max_shared_bytes(n: int, max_row: int = MAX_ROW) -> int:
    return max(shared_bytes(n, max_row).values())


def min_shared_bytes(n: int) -> int:
    """Shared memory per block of the leanest row choice: what a device must offer at all."""
    return min(max_shared_bytes(n, r) for r in ROW_CHOICES)


def row_limit(n: int, smem_per_block: int | None) -> int:
    """The longest row choice whose kernels fit ``smem_per_block`` bytes (None: the first);
    the leanest when none fits (dispatch has then routed the call elsewhere)."""
    for r in ROW_CHOICES:
        if smem_per_block is None or max_shared_bytes(n, r) <= smem_per_block:
            return r
    return ROW_CHOICES[-1]


# ------------------------------------------------------------------------------------------------
# Digit-reversed order of the in-place transforms
# ------------------------------------------------------------------------------------------------
def radices(m: int) -> tuple[int, ...]:
    """Stage radices of the kernel's size-m transform: 16 while it divides, then 2, 4 or 8."""
    out = []
    while m > 1:
        r = min(16, m)
        out.append(r)
        m //= r
    return tuple(out)


@cache
def digit_rev(m: int) -> np.ndarray:
    """Frequency held at each position after the kernel's forward transform of size m."""
    f = np.zeros(m, dtype=np.int64)
    s = np.arange(m, dtype=np.int64)
    mult, size = 1, m
    for r in radices(m):
        sub = size // r
        f += (s // sub) * mult
        s %= sub
        mult *= r
        size = sub
    return f


@cache
def freq_index(n: int, max_row: int = MAX_ROW) -> np.ndarray:
    """Frequency at (row position r, column position s) of the row pass: (N1, N2) int64."""
    n1, n2, _ = split(n, max_row)
    return digit_rev(n1)[:, None] + n1 * digit_rev(n2)[None, :]


# ------------------------------------------------------------------------------------------------
# Compilation
# ------------------------------------------------------------------------------------------------
def _flag(b: bool) -> str:
    return "true" if b else "false"


def name_expressions(
    n: int, dtype: str, pregate: bool, postgate: bool, max_row: int = MAX_ROW
) -> dict[str, str]:
    """The three instantiations a LongConv(n, dtype, pregate, postgate, max_row) launches."""
    _check_dtype(dtype)
    n1, n2, c = split(n, max_row)
    dt = _DT_CODE[dtype]
    return {
        "cols_fwd": f"long_cols_fwd<{n1}, {n2}, {c}, {dt}, {_flag(pregate)}>",
        "rows": f"long_rows<{n1}, {n2}>",
        "cols_inv": f"long_cols_inv<{n1}, {n2}, {c}, {dt}, {_flag(postgate)}>",
    }


def all_name_expressions() -> list[str]:
    names: dict[str, None] = {}
    for n in SUPPORTED_N:
        for dt in DTYPES:
            for gate in (False, True):
                for r in ROW_CHOICES:
                    names.update(dict.fromkeys(name_expressions(n, dt, gate, gate, r).values()))
    return list(names)


def kernel_source() -> str:
    return inline_source(KERNEL_FILE)


def compile_options(arch: str | None = None) -> tuple[str, ...]:
    opts: tuple[str, ...] = ("--std=c++17",)
    return opts + ((f"--gpu-architecture={arch}",) if arch is not None else ())


def _cupy():
    import cupy

    return cupy


def _build(n: int, dtype: str, pregate: bool, postgate: bool, max_row: int) -> dict:
    names = name_expressions(n, dtype, pregate, postgate, max_row)
    mod = _cupy().RawModule(
        code=kernel_source(), options=compile_options(), name_expressions=list(names.values())
    )
    smem = shared_bytes(n, max_row)
    kernels: dict = {"module": mod}
    for role, name in names.items():
        kern = mod.get_function(name)
        need = smem["rows" if role == "rows" else "cols"]
        if need > 48 * 1024:
            kern.max_dynamic_shared_size_bytes = need
        kernels[role] = (kern, need)
    return kernels


def _get_kernels(n: int, dtype: str, pregate: bool, postgate: bool, max_row: int) -> dict:
    """{role: (RawKernel, shared bytes)} for one configuration, compiled once per device/arch."""
    dev = _cupy().cuda.Device()
    key = (dev.id, dev.compute_capability, n, dtype, pregate, postgate, max_row)
    return _MODULES.get(key, lambda: _build(n, dtype, pregate, postgate, max_row))


def _gpu_order(n: int, max_row: int) -> tuple:
    cp = _cupy()
    return _ORDER.get(
        (cp.cuda.Device().id, n, max_row),
        lambda: tuple(cp.asarray(a) for a in hermitian_order(freq_index(n, max_row), n)),
    )


# ------------------------------------------------------------------------------------------------
# Runtime
# ------------------------------------------------------------------------------------------------
class LongConv(FamilyConv):
    """Long forward convolution for one (FFT size, dtype, gating) configuration.

    ``freq_mask`` (frequency-sparse, :mod:`cufftconv.freqmask`): rows of the (N1, N2) workspace
    hold one frequency class each (row r: class r // (N1 / 16)), so a zeroed class is never
    stored by the column pass, never run by the row pass and read as zeros by the inverse
    column pass.
    """

    def __init__(
        self,
        n: int,
        dtype: str,
        *,
        pregate: bool,
        postgate: bool,
        freq_mask: tuple[bool, ...] | None = None,
        max_row: int | None = None,
    ) -> None:
        _check_n(n)
        _check_dtype(dtype)
        self._configure(n, dtype, pregate, postgate, freq_mask)
        if max_row is None:  # the longest row whose kernels fit the current device, if any
            from .device import device_info, gpu_available

            smem = (
                device_info(_cupy().cuda.Device().id).smem_per_block_optin
                if gpu_available()
                else None
            )
            max_row = row_limit(n, smem)
        self.max_row = max_row
        self.n1, self.n2, self.c = split(n, max_row)
        self.rows = rows_per_block(self.n2)
        mask = self.freq_mask or (True,) * 16
        self.keep = sum(1 << j for j, kept in enumerate(mask) if kept)
        # row groups the row pass runs: those of the kept classes
        self.row_groups = sum(mask) * (self.n1 // 16) // self.rows

    def filter_spectrum(self, k):
        """Spectrum of k (H, Lk) zero padded to n, divided by n, in the row pass's order:
        complex64 (H, N1, N2)."""
        cp = _cupy()
        k = self.check_filter(cp.asarray(k))
        h, n = k.shape[0], self.n
        out = cp.empty((h, self.n1, self.n2), dtype=cp.complex64)
        flat = out.reshape(h, n)
        for h0, h1, kk in ordered_spectra(k, n, _gpu_order(n, self.max_row), cp):
            flat[h0:h1] = kk * (1.0 / n)
        if self.freq_mask is not None:  # row r holds class r // (N1 / 16) (freq_index)
            rows = np.asarray(self.freq_mask, dtype=np.float32).repeat(self.n1 // 16)
            out *= cp.asarray(rows)[None, :, None]
        return out

    def chunk_pairs(self, npairs: int, chunk_bytes: int | None = None) -> int:
        """Pairs per launch group: ``chunk_bytes`` (default CHUNK_BYTES) of workspace each."""
        budget = CHUNK_BYTES if chunk_bytes is None else int(chunk_bytes)
        return max(1, min(npairs, budget // (8 * self.n)))

    def __call__(
        self,
        u,
        kf,
        y,
        *,
        L: int,
        out_offset: int,
        Lout: int,
        pregate=None,
        postgate=None,
        chunk_bytes: int | None = None,
        streams: int | None = None,
        only_pass: int | None = None,
    ) -> None:
        """y[b,h,t] = post * sum_s kpad[h,s] (pre*u)pad[b,h,(t + out_offset - s) mod n], t < Lout."""
        cp = _cupy()
        n = self.n
        op = self.check_operands(
            u, y, L=L, out_offset=out_offset, Lout=Lout, pregate=pregate, postgate=postgate
        )
        b, h, L, out_offset, Lout = op.B, op.H, op.L, op.out_offset, op.Lout
        (usb, ush), (ysb, ysh) = op.u_strides, op.y_strides
        (psb, psh), (qsb, qsh) = op.pre_strides, op.post_strides
        if (
            not isinstance(kf, cp.ndarray)
            or kf.dtype != cp.complex64
            or kf.shape != (h, self.n1, self.n2)
        ):
            raise ValueError(
                f"kf must be the complex64 (H, {self.n1}, {self.n2}) output of filter_spectrum"
            )
        if not kf.flags.c_contiguous:
            raise ValueError("kf must be C-contiguous")
        if op.empty:
            return
        ks = _get_kernels(n, self.dtype, self.pregate, self.postgate, self.max_row)
        npairs = ((b + 1) // 2) * h
        chunk = self.chunk_pairs(npairs, chunk_bytes)
        groups = [(p0, min(chunk, npairs - p0)) for p0 in range(0, npairs, chunk)]
        lanes = min(len(groups), STREAMS if streams is None else max(1, int(streams)))
        ws = cp.empty((lanes, chunk, n), dtype=cp.complex64)
        pre = pregate if pregate is not None else u
        post = postgate if postgate is not None else y
        i32, i64, keep = np.int32, np.int64, np.uint32(self.keep)
        (fwd, s_cols), (rows, s_rows), (inv, _) = ks["cols_fwd"], ks["rows"], ks["cols_inv"]
        t_rows = threads("rows", n, self.max_row)

        def launches(p0: int, m: int, w) -> list[tuple]:
            tiles = (m, self.n2 // self.c)
            return [
                (
                    fwd,
                    tiles,
                    (256,),
                    (u, pre, w, usb, ush, psb, psh, i32(b), i32(h), i32(L), i64(p0), keep),
                    s_cols,
                ),
                (rows, (m, self.row_groups), (t_rows,), (w, kf, i32(b), i64(p0), keep), s_rows),
                (
                    inv,
                    tiles,
                    (256,),
                    (
                        w,
                        post,
                        y,
                        ysb,
                        ysh,
                        qsb,
                        qsh,
                        i32(b),
                        i32(h),
                        i32(out_offset),
                        i32(Lout),
                        i64(p0),
                        keep,
                    ),
                    s_cols,
                ),
            ]

        if only_pass is not None:  # benchmarks/long_dev.py --breakdown: one pass, one group
            kern, grid, block, args, smem = launches(0, chunk, ws[0])[only_pass]
            kern(grid, block, args, shared_mem=smem)
            return
        caller = cp.cuda.get_current_stream()
        if lanes == 1:
            for p0, m in groups:
                for kern, grid, block, args, smem in launches(p0, m, ws[0]):
                    kern(grid, block, args, shared_mem=smem)
            return
        # Groups round-robin over side streams, each with its own workspace: one group's
        # passes overlap the others' instead of draining the GPU between small launches.
        side = _side_streams(lanes)
        start = caller.record()
        for st in side:
            st.wait_event(start)
        for i, (p0, m) in enumerate(groups):
            with side[i % lanes]:
                for kern, grid, block, args, smem in launches(p0, m, ws[i % lanes]):
                    kern(grid, block, args, shared_mem=smem)
        for st in side:
            caller.wait_event(st.record())


_SIDE: dict[int, list] = {}


def _side_streams(count: int) -> list:
    """``count`` non-blocking streams of the current device, created once."""
    cp = _cupy()
    dev = cp.cuda.Device().id
    with _LOCK:
        have = _SIDE.setdefault(dev, [])
        while len(have) < count:
            have.append(cp.cuda.Stream(non_blocking=True))
        return have[:count]


__all__ = [
    "DTYPES",
    "MAX_N",
    "MIN_N",
    "SUPPORTED_N",
    "LongConv",
    "all_name_expressions",
    "digit_rev",
    "freq_index",
    "kernel_source",
    "max_shared_bytes",
    "min_shared_bytes",
    "name_expressions",
    "row_limit",
    "shared_bytes",
    "split",
]
