"""Fused tensor-core forward FFT convolution (FlashFFTConv method), FFT sizes 256..32768.

One kernel per call: load (pre * u), FFT, multiply by the filter spectrum, inverse FFT,
postgate, crop and store, with the data crossing HBM once. The CUDA source is
``kernels/monarch_conv.cu`` (one templated kernel family); this module compiles the
instantiations it needs through NVRTC (``cupy.RawModule``) and launches them.

Factorisation: N = R * 16**A with A = 2 (N < 4096) or 3 (N >= 4096) radix-16 stages on tensor
cores and one radix-R stage (R in 1, 2, 4, 8) in fp32. Two sequences (b, b+1) of one channel are
packed as the real and imaginary part of one complex sequence. The filter spectrum is kept in the
kernel's digit-reversed, fragment-major order, as fp16 normalised per channel by a power of two.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from . import twiddle_fold
from .cache import BuildCache, OnceCache
from .errors import KernelLaunchError, describe_arg, is_cuda_error, launch_error
from .kernel_io import FamilyConv
from .sources import inline_source, kernels_dir

SUPPORTED_N: tuple[int, ...] = tuple(1 << e for e in range(8, 16))
DTYPES = ("float16", "bfloat16")
KERNEL_FILE = "monarch_conv.cu"
KERNEL_NAME = "monarch_conv_fwd"
# Parameter names of monarch_conv_fwd, in order (for launch-failure messages).
ARG_NAMES = (
    "u",
    "pregate",
    "kf",
    "y",
    "postgate",
    "u_sb",
    "u_sh",
    "pre_sb",
    "pre_sh",
    "y_sb",
    "y_sh",
    "post_sb",
    "post_sh",
    "u_so",
    "pre_so",
    "y_so",
    "post_so",
    "B",
    "H",
    "L",
    "out_offset",
    "Lout",
    "BI",
    "tiles",
    "KC",
    "KZ",
    "qlive",
)
_ARG = {name: i for i, name in enumerate(ARG_NAMES)}
# monarch_conv_fwd's parameters as struct codes (cufftconv.launch.PackedLaunch): five
# pointers, eight strides and four outer strides, B H L out_offset Lout BI, the tile list, KC
# KZ qlive
FWD_ARG_FORMAT = "Q" * 5 + "q" * 12 + "i" * 6 + "Q" + "i" * 3
# (tiles, KC, KZ, qlive) of a dense call: no list, every tile kept, every sub-transform live
DENSE_TILES = (0, np.int32(1 << 30), np.int32(0), np.int32(0xFF))
# PAD bit 0: input zero on [N/2, N) (skips half of the first stage); bit 1: only outputs in
# [0, N/2) are kept (skips half of the last stage). PAD 4: a two-level batch (BI < B, the
# partial path's windows), without the half-size shortcuts (dropping them is always correct);
# the other variants index a one-level batch as b * stride, with no division.
PAD_VARIANTS = (0, 1, 2, 3, 4)
TWO_LEVEL_PAD = 4


def _pad(n: int, L: int, out_offset: int, Lout: int, B: int, BI: int) -> int:
    """The PAD variant of a launch (see PAD_VARIANTS)."""
    if BI != B:
        return TWO_LEVEL_PAD
    return int(L <= n // 2) | (int(out_offset + Lout <= n // 2) << 1)

_DT_CODE = {"float16": 0, "bfloat16": 1}
_MODULES: OnceCache[dict] = OnceCache()  # (device, arch, role, configuration) -> kernels
SPECTRUM_CHUNK_BYTES = 256 << 20  # filter_spectrum transforms this many bytes of k at a time
_DEV_FREQ: OnceCache = OnceCache()  # (device, n) -> freq_index(n) as int32 there
_SPECTRUM: OnceCache = OnceCache()  # (device, arch) -> the kernels/spectrum.cu functions
# cuFFT plans of the filter spectra and dk, per thread (a plan is not safe to run from two
# threads at once) and keyed by stream (its work area must not be shared by streams that run
# at the same time). Keyed by thread id, not held in a threading.local: PyTorch's autograd
# device threads run each backward under a fresh Python thread state, which would start
# every backward call with an empty cache (a new plan, about 0.2 ms, per call).
_PLANS: BuildCache = BuildCache(64)


# ------------------------------------------------------------------------------------------------
# Static configuration (mirrors mc::Cfg<N> in monarch_conv.cu)
# ------------------------------------------------------------------------------------------------
def _check_n(n: int) -> None:
    if n not in SUPPORTED_N:
        raise ValueError(
            f"FFT size {n} not supported by the fused kernels (supported: {SUPPORTED_N})"
        )


def _check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")


def factorisation(n: int) -> tuple[int, ...]:
    """Radices in execution order of the forward transform (fp32 radix first, if any)."""
    _check_n(n)
    a = 3 if n >= 4096 else 2
    r = n // 16**a
    return ((r,) if r > 1 else ()) + (16,) * a


def config(n: int) -> dict:
    """Launch geometry of the kernel for FFT size n."""
    _check_n(n)
    a = 3 if n >= 4096 else 2
    m = 16**a
    r = n // m
    p = (2 if r == 8 else 8 // r) if a == 2 else 1
    threads = 512 if n >= 16384 else 256
    raw_buffers = 2 if n <= 4096 else 1 if n <= 16384 else 0
    return {
        "A": a,
        "M": m,
        "R": r,
        "pairs_per_block": p,
        "threads": threads,
        "raw_buffers": raw_buffers,
    }


def _data_bytes(n: int) -> int:
    """One working buffer: the fp16 complex tiles of a block's pairs (mc::Cfg::DATA_BYTES)."""
    c = config(n)
    return c["pairs_per_block"] * c["R"] * 2 * c["M"] * 2


def _table_bytes(n: int) -> int:
    """The two twiddle tables, T0 and T1 (mc::Cfg::TBL_BYTES)."""
    return (64 + n // 64) * 8


def shared_bytes(n: int, dtype: str) -> int:
    """Dynamic shared memory (bytes) one block of the kernel needs."""
    _check_dtype(dtype)
    c = config(n)
    raw = c["raw_buffers"] * 2 * c["pairs_per_block"] * 2 * n * 2  # cp.async staging (u, pre)
    return _data_bytes(n) + raw + _table_bytes(n) + (c["threads"] // 32) * 4


def filter_row_halves(n: int) -> int:
    """Length (in fp16 values) of one channel of the filter spectrum: 2n values + exponent + pad."""
    return 2 * n + 8


# ------------------------------------------------------------------------------------------------
# Source and compilation
# ------------------------------------------------------------------------------------------------
@cache
def kernel_source() -> str:
    """The kernel source with the local ``#include "*.cuh"`` headers inlined."""
    return inline_source(KERNEL_FILE)


def compile_options(arch: str | None = None) -> tuple[str, ...]:
    """NVRTC options. ``arch`` like 'sm_90' or 'compute_90'; None leaves it to CuPy."""
    opts = ("--std=c++17", f"-I{kernels_dir()}")
    if arch is not None:
        opts = opts + (f"--gpu-architecture={arch}",)
    return opts


def _flag(b: bool) -> str:
    return "true" if b else "false"


@dataclass(frozen=True)
class KernelRole:
    """One kernel of the family (``template <N, DT, PRE, POST, PAD>``): its name, the FFT sizes
    and PAD variants it is instantiated for, and its shared memory per block."""

    name: str
    sizes: tuple[int, ...]
    pads: tuple[int, ...]
    smem: Callable[[int, str], int]

    def expression(self, n: int, dtype: str, pregate: bool, postgate: bool, pad: int) -> str:
        if n not in self.sizes:
            raise ValueError(f"FFT size {n} has no {self.name} kernel (sizes: {self.sizes})")
        _check_dtype(dtype)
        if pad not in self.pads:
            raise ValueError(f"pad must be one of {self.pads}")
        return f"{self.name}<{n}, {_DT_CODE[dtype]}, {_flag(pregate)}, {_flag(postgate)}, {pad}>"

    def expressions(self, n: int, dtype: str, pregate: bool, postgate: bool) -> list[str]:
        """Every instantiation one (n, dtype, pregate, postgate) configuration may launch."""
        return [self.expression(n, dtype, pregate, postgate, pad) for pad in self.pads]

    def all_expressions(self) -> list[str]:
        return [
            e
            for n in self.sizes
            for dt in DTYPES
            for pre in (False, True)
            for post in (False, True)
            for e in self.expressions(n, dt, pre, post)
        ]

    def kernels(self, n: int, dtype: str, pregate: bool, postgate: bool) -> dict:
        """:meth:`build`'s result, compiled once per (device, arch, role, configuration)."""
        dev = _cupy().cuda.Device()
        key = (dev.id, dev.compute_capability, self.name, n, dtype, pregate, postgate)
        return _MODULES.get(key, lambda: self.build(n, dtype, pregate, postgate))

    def build(self, n: int, dtype: str, pregate: bool, postgate: bool) -> dict:
        """{pad: (RawKernel, blocks per SM), "module": RawModule}: one NVRTC program."""
        cp = _cupy()
        names = self.expressions(n, dtype, pregate, postgate)
        mod = cp.RawModule(
            code=kernel_source(), options=compile_options(None), name_expressions=names
        )
        smem = self.smem(n, dtype)
        threads = config(n)["threads"]
        kernels: dict = {"module": mod}
        for pad, name in zip(self.pads, names):
            kern = mod.get_function(name)
            if smem > 48 * 1024:
                kern.max_dynamic_shared_size_bytes = smem
            kernels[pad] = (kern, _blocks_per_sm(kern, threads, smem))
        return kernels


def name_expression(n: int, dtype: str, pregate: bool, postgate: bool, pad: int) -> str:
    _check_n(n)
    return FORWARD.expression(n, dtype, pregate, postgate, pad)


def name_expressions(n: int, dtype: str, pregate: bool, postgate: bool) -> list[str]:
    """Every template instantiation a FusedConv(n, dtype, pregate, postgate) may launch."""
    _check_n(n)
    return FORWARD.expressions(n, dtype, pregate, postgate)


def all_name_expressions() -> list[str]:
    return FORWARD.all_expressions()


# ------------------------------------------------------------------------------------------------
# Filter spectrum order
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TileSchedule:
    """Frequency-sparse schedule of an A = 3 kernel (n >= 4096).

    Tile t = q * 16 + k0 of the spectrum holds the frequency class (q + R k0) mod 16.
    ``order`` lists the kept tiles (``kept`` of them), then the zeroed tiles of live
    sub-transforms (``zeroed``); tiles of dead sub-transforms (radix-R output digit q with no
    kept tile) are not listed: ``live`` has bit q set for the others.
    """

    order: np.ndarray
    kept: int
    zeroed: int
    live: int


def sparse_tiles(n: int, freq_mask: tuple[bool, ...] | None) -> TileSchedule | None:
    """The tile schedule for ``freq_mask`` at FFT size n, or None when every tile runs (dense,
    or n < 4096, whose tiles mix frequency classes)."""
    if freq_mask is None or all(freq_mask) or config(n)["A"] != 3:
        return None
    r = config(n)["R"]
    cls = freq_index(n).reshape(-1, 256)[:, 0] % 16
    kept = np.asarray(freq_mask, dtype=bool)[cls]
    q = np.arange(kept.size) // 16
    live_q = np.zeros(r, dtype=bool)
    live_q[q[kept]] = True
    zeroed = ~kept & live_q[q]
    order = np.concatenate([np.flatnonzero(kept), np.flatnonzero(zeroed)]).astype(np.int32)
    live = int(sum(1 << i for i in range(r) if live_q[i]))
    return TileSchedule(order, int(kept.sum()), int(zeroed.sum()), live)


@cache
def freq_index(n: int) -> np.ndarray:
    """Frequency held at each position of the kernel's spectrum order (a permutation of 0..n-1).

    Position = tile * 256 + lane * 8 + e. Tile = q (A = 2) or q * 16 + k0 (A = 3); in a tile,
    lane (g, t) and element e = 4 j + c hold row = g + 8 (c >> 1) and col = 8 j + 2 t + (c & 1)
    of the last forward radix-16 stage. Decimation in frequency gives
    freq = q + R * (k0 + 16 k1 + 256 k2) with (k1, k2) = (row, col) for A = 3 and
    freq = q + R * (row + 16 col) for A = 2.
    """
    c = config(n)
    r = c["R"]
    lane = np.arange(32)
    g, t = lane >> 2, lane & 3
    e = np.arange(8)
    j, ci = e >> 2, e & 3
    row = g[:, None] + 8 * (ci[None, :] >> 1)
    col = 8 * j[None, :] + 2 * t[:, None] + (ci[None, :] & 1)
    if c["A"] == 2:
        q = np.arange(r)[:, None, None]
        f = q + r * (row[None] + 16 * col[None])
    else:
        q = np.arange(r)[:, None, None, None]
        k0 = np.arange(16)[None, :, None, None]
        f = q + r * (k0 + 16 * row[None, None] + 256 * col[None, None])
    f = f.reshape(-1).astype(np.int64)
    assert f.size == n
    return f


# ------------------------------------------------------------------------------------------------
# Runtime
# ------------------------------------------------------------------------------------------------
def _cupy():
    import cupy

    return cupy


def _get_module(n: int, dtype: str, pregate: bool, postgate: bool):
    """The forward kernel's {pad: (RawKernel, blocks per SM)} (:meth:`KernelRole.kernels`)."""
    return FORWARD.kernels(n, dtype, pregate, postgate)


def precompile(configs, max_workers: int | None = None, role: KernelRole | None = None) -> None:
    """Compile (n, dtype, pregate, postgate) configurations of a kernel role (default: the
    forward, :data:`FORWARD`; :data:`BACKWARD` for ``monarch_bwd``) ahead of use, in parallel
    threads."""
    from concurrent.futures import ThreadPoolExecutor

    cp = _cupy()
    dev_id = cp.cuda.Device().id
    kr = FORWARD if role is None else role

    def one(cfg):
        with cp.cuda.Device(dev_id):
            kr.kernels(*cfg)

    with ThreadPoolExecutor(max_workers=max_workers) as ex:
        list(ex.map(one, list(configs)))


# k's dtype -> KType<KT> in kernels/spectrum.cu (the backward's fast path reads k and writes dk)
K_TYPE_CODE = {"float16": 0, "bfloat16": 1, "float32": 2, "float64": 3}
_SPECTRUM_NAMES = (
    "kernel_order_spectrum<false>",
    "kernel_order_spectrum<true>",
    "dk_hermitian",
    *(f"pad_filter<{kt}>" for kt in K_TYPE_CODE.values()),
    *(f"dk_window<{kt}>" for kt in K_TYPE_CODE.values()),
    *(f"filter_spectra_direct<{kt}>" for kt in K_TYPE_CODE.values()),
    *(f"dk_finish<{kt}>" for kt in K_TYPE_CODE.values()),
)
# Sizes whose filter spectra and dk finish in one per-channel launch each (kernels/spectrum.cu:
# filter_spectra_direct, dk_finish, a shared-memory transform); larger ones take cuFFT. Same-run
# A/B (H200): 512 backward -7 %, 4096 / 8192 +4..8 % (dk_finish's gathers of acc in kernel
# order from global memory grow with n; benchmarks/fold_proto/dk_finish_staged.patch stages
# the row in shared memory, not yet run), so only up to 512.
DIRECT_MAX_N = 512


def direct_smem(n: int) -> int:
    """Dynamic shared memory of ``filter_spectra_direct`` / ``dk_finish`` at size n."""
    return (n // 2 + 1 + n // 4) * 8


def _spectrum_functions() -> dict:
    """The kernels of kernels/spectrum.cu by name: one RawModule, compiled once per device."""
    cp = _cupy()
    dev = cp.cuda.Device()

    def build() -> dict:
        mod = cp.RawModule(
            code=inline_source("spectrum.cu"),
            options=compile_options(None),
            name_expressions=list(_SPECTRUM_NAMES),
        )
        fns = {name: mod.get_function(name) for name in _SPECTRUM_NAMES}
        for name, fn in fns.items():
            if name.startswith(("filter_spectra_direct", "dk_finish")):
                fn.max_dynamic_shared_size_bytes = direct_smem(DIRECT_MAX_N)
        return fns

    return _SPECTRUM.get((dev.id, dev.compute_capability), build)


def _spectrum_kernel(reverse: bool):
    """``kernel_order_spectrum<reverse>`` (kernels/spectrum.cu)."""
    return _spectrum_functions()[_SPECTRUM_NAMES[int(reverse)]]


def _hermitian_kernel():
    """``dk_hermitian`` (kernels/spectrum.cu)."""
    return _spectrum_functions()["dk_hermitian"]


def _mask_spectra(freq_mask, n: int, outs) -> None:
    """Zero the kernel-order spectra ``outs`` where the frequency mask (if any) drops a bin."""
    if freq_mask is None:
        return
    cp = _cupy()
    keep = np.asarray(freq_mask, dtype=np.float16)[freq_index(n) % 16]
    keep2 = cp.asarray(keep.repeat(2))[None, :]
    for out in outs:
        out[:, : 2 * n] *= keep2


def _plan1d(inverse: bool, n: int, batch: int):
    """A cuFFT R2C (C2R if ``inverse``) plan of ``batch`` rows of length n, for this thread,
    device and current stream (cupy.fft's own wrappers cost more host time than the small
    transforms of a backward call take on the device)."""
    cp = _cupy()
    from cupy.cuda import cufft

    kind = cufft.CUFFT_C2R if inverse else cufft.CUFFT_R2C
    key = (threading.get_ident(), cp.cuda.runtime.getDevice(), cp.cuda.get_current_stream().ptr,
           kind, n, batch)
    return _PLANS.get(key, lambda: cufft.Plan1d(n, kind, batch))


class RawFFT:
    """cuFFT R2C (C2R, unnormalised, if ``inverse``) of ``batch`` rows of length n between raw
    device pointers, on a given CuPy stream.

    The first call per (thread, stream) runs :func:`_plan1d`'s plan through ``Plan1d.fft`` on
    array views of the pointers, which binds the plan to the stream; later calls run cuFFT's
    exec on the bound plan directly (``Plan1d.fft`` and the views cost more host time than a
    small transform takes on the device). The plan is kept here, so a plan evicted from
    ``_PLANS`` stays alive and bound.
    """

    __slots__ = ("_bound", "_exec", "batch", "inverse", "n")

    def __init__(self, inverse: bool, n: int, batch: int) -> None:
        from cupy.cuda import cufft

        self.inverse, self.n, self.batch = inverse, n, batch
        self._exec = cufft.execC2R if inverse else cufft.execR2C
        self._bound: dict[tuple[int, int], Any] = {}  # (thread, stream) -> Plan1d

    def __call__(self, stream, src: int, dst: int) -> None:
        plan = self._bound.get((threading.get_ident(), stream.ptr))
        if plan is None:
            self._bind(stream, src, dst)
        else:
            self._exec(plan.handle, src, dst)

    def _bind(self, stream, src: int, dst: int) -> None:
        cp = _cupy()
        from cupy.cuda import cufft

        real = (self.batch, self.n), cp.float32
        cplx = (self.batch, self.n // 2 + 1), cp.complex64
        a, b = (cplx, real) if self.inverse else (real, cplx)
        with stream:
            plan = _plan1d(self.inverse, self.n, self.batch)
            plan.fft(_raw_array(src, *a), _raw_array(dst, *b),
                     cufft.CUFFT_INVERSE if self.inverse else cufft.CUFFT_FORWARD)
        if len(self._bound) >= 64:  # threads come and go: keep the table small
            self._bound.clear()
        self._bound[(threading.get_ident(), stream.ptr)] = plan


def _raw_array(ptr: int, shape: tuple[int, ...], dtype):
    """A CuPy array over device memory it does not own."""
    cp = _cupy()
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    mem = cp.cuda.UnownedMemory(ptr, nbytes, None)
    return cp.ndarray(shape, dtype, cp.cuda.MemoryPointer(mem, 0))


def _rfft_padded(k, n: int):
    """rfft of the rows of k (h, Lk), Lk <= n, zero padded to n: (h, n/2 + 1) complex64, in
    float32 (the spectra feed fp16 kernels)."""
    cp = _cupy()
    from cupy.cuda import cufft

    h, lk = k.shape
    kp = cp.zeros((h, n), dtype=cp.float32)
    kp[:, :lk] = k
    out = cp.empty((h, n // 2 + 1), dtype=cp.complex64)
    _plan1d(False, n, h).fft(kp, out, cufft.CUFFT_FORWARD)
    return out


def _blocks_per_sm(kern, threads: int, smem: int) -> int:
    try:
        from cupy_backends.cuda.api import driver

        return max(
            1, int(driver.occupancyMaxActiveBlocksPerMultiprocessor(kern.kernel.ptr, threads, smem))
        )
    except (ImportError, AttributeError, RuntimeError):  # older CuPy: be conservative
        return 1


@cache
def _sm_count(dev_id: int) -> int:
    cp = _cupy()
    return int(cp.cuda.runtime.getDeviceProperties(dev_id)["multiProcessorCount"])


class FusedConv(FamilyConv):
    """Fused forward convolution for one (FFT size, dtype, gating) configuration.

    Operands are (B, H, L) or, for many windows of the same rows in one launch (the partial
    path), (B0, B1, H, L) views.
    """

    BATCH_DIMS = 2

    def __init__(
        self,
        n: int,
        dtype: str,
        *,
        pregate: bool,
        postgate: bool,
        freq_mask: tuple[bool, ...] | None = None,
    ):
        _check_n(n)
        _check_dtype(dtype)
        self._configure(n, dtype, pregate, postgate, freq_mask)
        c = config(n)
        self.threads = c["threads"]
        self.pairs_per_block = c["pairs_per_block"]
        self.smem = shared_bytes(n, dtype)
        # Frequency-sparse: the spectrum is masked; for n >= 4096 zeroed tiles are skipped too.
        self.schedule = sparse_tiles(n, self.freq_mask)
        self._tiles_dev: dict[int, object] = {}
        # ... and the twiddle-folded kernel's SPARSE variant takes the masks it fits; its dense
        # variant at 8192 / 16384 skips the groups a mask zeroes whole
        self._fold_sparse = twiddle_fold.use_sparse(n, self.freq_mask)
        dead = 0 if self._fold_sparse else twiddle_fold.dead_groups(n, self.freq_mask)
        self._fold_gskip = dead != 0
        live = twiddle_fold.live_word(n, self.freq_mask) if self._fold_sparse else dead
        # its last four arguments: the tile list is unused; qlive carries the live word (SPARSE)
        # or the dead groups
        self._fold_tiles = (0, np.int32(0), np.int32(0), np.int32(live))

    def _tiles_arg(self) -> tuple:
        """(tile list pointer or 0, KC, KZ, qlive) kernel arguments on the current device."""
        sc = self.schedule
        if sc is None:
            return DENSE_TILES
        dev = _cupy().cuda.Device().id
        arr = self._tiles_dev.get(dev)
        if arr is None:
            arr = self._tiles_dev.setdefault(dev, _cupy().asarray(sc.order))
        return int(arr.data.ptr), np.int32(sc.kept), np.int32(sc.zeroed), np.int32(sc.live)

    # --------------------------------------------------------------------------------------------
    def filter_spectrum(self, k, *, reverse_shift: int | None = None):
        """Spectrum of k (H, Lk) zero padded to n, in kernel order: fp16 (H, 2n + 8).

        Per channel: n complex values (re, im interleaved) scaled by 2**-e so that max |K| <= 1,
        then e itself (an integer, stored as fp16) and zeros. ``reverse_shift`` = s gives the
        spectrum of the reversed filter ``r[m] = k[(s - m) mod n]`` instead (the backward's
        adjoint). One rfft (cuFFT, float32) and one ordering kernel (``kernels/spectrum.cu``)
        per chunk of channels.
        """
        return self.filter_spectra(k, (reverse_shift,))[0]

    def filter_spectra(self, k, reverse_shifts: tuple[int | None, ...]) -> list:
        """:meth:`filter_spectrum` of k for each of ``reverse_shifts`` (None: k itself), from
        one rfft of k."""
        cp = _cupy()
        k = self.check_filter(cp.asarray(k))
        h, n = k.shape[0], self.n
        outs = [cp.empty((h, filter_row_halves(n)), dtype=cp.float16) for _ in reverse_shifts]
        freq = _freq_order(n)
        if n <= DIRECT_MAX_N:
            kc = cp.ascontiguousarray(k, dtype=cp.float32)
            fn = _spectrum_functions()[f"filter_spectra_direct<{K_TYPE_CODE['float32']}>"]
            for out, shift in zip(outs, reverse_shifts):
                rev, own = (out, np.uint64(0)) if shift is not None else (np.uint64(0), out)
                if h:
                    fn((h,), (256,), (kc, np.int32(kc.shape[1]), np.int32(kc.shape[1]),
                                      np.int32(n), freq, np.int64(shift or 0), rev, own),
                       shared_mem=direct_smem(n))
            _mask_spectra(self.freq_mask, n, outs)
            return outs
        step = max(1, SPECTRUM_CHUNK_BYTES // (16 * n))  # rfft temporaries bounded, not O(H n)
        for h0 in range(0, h, step):
            h1 = min(h0 + step, h)
            kr = _rfft_padded(k[h0:h1], n)
            for out, shift in zip(outs, reverse_shifts):
                _spectrum_kernel(shift is not None)(
                    (h1 - h0,), (256,), (kr, freq, np.int32(n), np.int64(shift or 0), out[h0:h1])
                )
        _mask_spectra(self.freq_mask, n, outs)
        return outs

    # --------------------------------------------------------------------------------------------
    def __call__(
        self, u, kf, y, *, L: int, out_offset: int, Lout: int, pregate=None, postgate=None
    ) -> None:
        """y[b,h,t] = post * sum_s kpad[h,s] (pre*u)pad[b,h,(t + out_offset - s) mod n], t < Lout."""
        launch = self.prepare(
            u, kf, y, L=L, out_offset=out_offset, Lout=Lout, pregate=pregate, postgate=postgate
        )
        if launch is not None:
            kern, grid, args, smem = launch
            try:
                kern((grid,), (self._block_threads(smem),), args, shared_mem=smem)
            except Exception as err:  # zero cost unless raised: the message is built here only
                if is_cuda_error(err):
                    raise self._launch_error(grid, args, err, smem) from err
                raise

    def _launch_error(
        self, grid: int, args: tuple, err: BaseException, smem: int | None = None
    ) -> KernelLaunchError:
        L, out_offset, Lout, B, BI = (
            int(args[_ARG[k]]) for k in ("L", "out_offset", "Lout", "B", "BI")
        )
        n = self.n
        smem = self.smem if smem is None else smem
        if smem != self.smem:  # prepare picked the twiddle-folded kernel (its own smem size)
            name = twiddle_fold.name_expression(*self._fold_variant(L, out_offset, Lout, BI != B))
        else:
            pad = _pad(n, L, out_offset, Lout, B, BI)
            name = name_expression(n, self.dtype, self.pregate, self.postgate, pad)
        return launch_error(
            name,
            grid=(grid,),
            block=(self._block_threads(smem),),
            smem=smem,
            args=[(nm, describe_arg(a)) for nm, a in zip(ARG_NAMES, args)],
            err=err,
        )

    def _block_threads(self, smem: int) -> int:
        """Threads per block of the kernel prepare picked (told apart by its shared memory)."""
        return twiddle_fold.threads(self.n) if smem != self.smem else self.threads

    def launcher(self, B: int, H: int, L: int, out_offset: int, Lout: int) -> Launcher:
        """A pre-resolved launch for C-contiguous (B, H, L) operands: the per-call fast path.

        Everything that depends only on the shapes (instantiation, grid, strides, sizes) is
        fixed here, so a call only passes pointers and a stream.
        """
        cp = _cupy()
        n = self.n
        pad = _pad(n, L, out_offset, Lout, B, B)
        kern, per_sm = _get_module(n, self.dtype, self.pregate, self.postgate)[pad]
        npairs = ((B + 1) // 2) * H
        grid = min(-(-npairs // self.pairs_per_block), per_sm * _sm_count(cp.cuda.Device().id))
        tail = launch_tail(B, H, L, out_offset, Lout, self._tiles_arg())
        name = name_expression(n, self.dtype, self.pregate, self.postgate, pad)
        general = Launcher(kern.kernel, (grid,), (self.threads,), self.smem, tail, name)
        tf = self._twiddle_fold(B, B, L, out_offset, Lout, (H * L, L, H * Lout, Lout))
        if tf is None:
            return general
        tkern, tper_sm = tf
        tgrid = min(twiddle_fold.units(B, H, n), tper_sm * _sm_count(cp.cuda.Device().id))
        ttail = launch_tail(B, H, L, out_offset, Lout, self._fold_tiles)
        return AlignedLauncher(
            tkern.kernel, (tgrid,), (twiddle_fold.threads(n),), self._fold_smem(), ttail,
            twiddle_fold.name_expression(*self._fold_variant(L, out_offset, Lout)),
            general=general, pregate=self.pregate, postgate=self.postgate,
        )

    def _twiddle_fold(self, B: int, BI: int, L: int, out_offset: int, Lout: int, strides):
        """(kernel, blocks per SM) of the twiddle-folded kernel if this call fits it, else None
        (see :mod:`cufftconv.twiddle_fold`; the pointers' alignment is checked per call)."""
        ok = twiddle_fold.eligible(
            self.n, freq_mask=self.freq_mask, B=B, BI=BI, L=L, out_offset=out_offset,
            Lout=Lout, strides=strides, gated=self.pregate or self.postgate,
        )
        return twiddle_fold.kernel(*self._fold_variant(L, out_offset, Lout, BI != B)) if ok else None

    def _fold_variant(self, L: int, out_offset: int, Lout: int, two: bool = False) -> tuple:
        """(n, dtype, pregate, postgate, half, sparse, gskip, two): the twiddle-folded
        instantiation for a window (``two``: a two-level batch)."""
        half = twiddle_fold.half(self.n, L, out_offset, Lout)
        pg, sp, gs = self.pregate, self._fold_sparse, self._fold_gskip
        return self.n, self.dtype, pg, self.postgate, half, sp, gs, two

    def _fold_smem(self) -> int:
        return twiddle_fold.smem(self.n, self._fold_sparse)

    def prepare(self, u, kf, y, *, L: int, out_offset: int, Lout: int, pregate=None, postgate=None):
        """Validate a call; return (kernel, grid size, kernel arguments, shared memory bytes),
        or None if empty. The kernel is the twiddle-folded one where the call fits it."""
        cp = _cupy()
        n = self.n
        op = self.check_operands(
            u, y, L=L, out_offset=out_offset, Lout=Lout, pregate=pregate, postgate=postgate
        )
        b, h, L, out_offset, Lout = op.B, op.H, op.L, op.out_offset, op.Lout
        if (
            not isinstance(kf, cp.ndarray)
            or kf.dtype != cp.float16
            or kf.shape != (h, filter_row_halves(n))
        ):
            raise ValueError(
                f"kf must be the float16 (H, {filter_row_halves(n)}) output of filter_spectrum"
            )
        if not kf.flags.c_contiguous:
            raise ValueError("kf must be C-contiguous")
        if op.empty:
            return None
        pad = _pad(n, L, out_offset, Lout, b, op.BI)
        kern, per_sm = _get_module(n, self.dtype, self.pregate, self.postgate)[pad]
        npairs = ((b + 1) // 2) * h
        nunits = -(-npairs // self.pairs_per_block)
        smem = self.smem
        strides = (*op.u_strides, *op.y_strides, op.u_outer, op.y_outer)
        ptrs = [u.data.ptr, y.data.ptr]
        if pregate is not None:
            strides += (*op.pre_strides, op.pre_outer)
            ptrs.append(pregate.data.ptr)
        if postgate is not None:
            strides += (*op.post_strides, op.post_outer)
            ptrs.append(postgate.data.ptr)
        tf = self._twiddle_fold(b, op.BI, L, out_offset, Lout, strides)
        tiles = self._tiles_arg()
        if tf is not None and twiddle_fold.aligned(*ptrs):
            (kern, per_sm), nunits, smem = tf, twiddle_fold.units(b, h, n), self._fold_smem()
            tiles = self._fold_tiles
        grid = min(nunits, per_sm * _sm_count(cp.cuda.Device().id))
        args = (
            u,
            pregate if pregate is not None else u,
            kf,
            y,
            postgate if postgate is not None else y,
            *op.u_strides,
            *op.pre_strides,
            *op.y_strides,
            *op.post_strides,
            np.int64(op.u_outer),
            np.int64(op.pre_outer),
            np.int64(op.y_outer),
            np.int64(op.post_outer),
            np.int32(b),
            np.int32(h),
            np.int32(L),
            np.int32(out_offset),
            np.int32(Lout),
            np.int32(op.BI),
            *tiles,
        )
        return kern, grid, args, smem


def launch_tail(
    B: int, H: int, L: int, out_offset: int, Lout: int, tiles: tuple | None = None
) -> tuple:
    """Kernel arguments after the five pointers, for C-contiguous (B, H, L) operands.

    ``tiles``: the frequency-sparse arguments (pointer, KC, KZ, qlive) of
    ``FusedConv._tiles_arg``; None for a dense call."""
    i64, i32 = np.int64, np.int32
    return (
        i64(H * L),  # u_sb, u_sh
        i64(L),
        i64(H * L),  # pre_sb, pre_sh
        i64(L),
        i64(H * Lout),  # y_sb, y_sh
        i64(Lout),
        i64(H * Lout),  # post_sb, post_sh
        i64(Lout),
        *(i64(0),) * 4,  # outer strides: a one-level batch
        i32(B),
        i32(H),
        i32(L),
        i32(out_offset),
        i32(Lout),
        i32(max(B, 1)),
        *(DENSE_TILES if tiles is None else tiles),
    )


class Launcher:
    """Launch one fused instantiation on raw device pointers (ints) and a CuPy stream.

    A failed launch raises :class:`~cufftconv.errors.KernelLaunchError` naming the kernel,
    its geometry and its arguments.
    """

    __slots__ = ("_packed", "_ptail", "block", "func", "grid", "name", "smem", "tail")

    def __init__(
        self, func, grid: tuple, block: tuple, smem: int, tail: tuple, name: str = KERNEL_NAME
    ) -> None:
        self.func, self.grid, self.block, self.smem, self.tail = func, grid, block, smem, tail
        self.name = name
        self._packed = self._ptail = None
        if isinstance(getattr(func, "ptr", None), int):  # a CuPy Function: pack the arguments
            from .launch import PackedLaunch

            self._packed = PackedLaunch(func, grid, block, smem, FWD_ARG_FORMAT)
            self._ptail = tuple(int(a) for a in tail)

    def __call__(self, u: int, pre: int, kf, y: int, post: int, stream) -> None:
        # Pointers go in as Python ints (kf may also be the spectrum array). The try costs
        # nothing on success (Python >= 3.11); this is the per-call fast path.
        try:
            if self._packed is not None:
                k = kf if isinstance(kf, int) else kf.data.ptr
                # geometry read per call: a Launcher's fields stay the truth (tests edit them)
                self._packed.at(self.grid, self.block, self.smem, stream.ptr, u, pre, k, y, post,
                                *self._ptail)
            else:
                self.func(self.grid, self.block, (u, pre, kf, y, post, *self.tail), self.smem,
                          stream)
        except Exception as err:
            if is_cuda_error(err):
                raise self._error((u, pre, kf, y, post, *self.tail), stream, err) from err
            raise

    def _error(self, args: tuple, stream, err: BaseException) -> KernelLaunchError:
        B, H, L, Lout = (int(args[_ARG[k]]) for k in ("B", "H", "L", "Lout"))
        shapes = {"u": (B, H, L), "pregate": (B, H, L), "y": (B, H, Lout), "postgate": (B, H, Lout)}
        described = []
        for name, value in zip(ARG_NAMES, args):
            text = describe_arg(value, pointer=name in shapes)
            if name in shapes:
                text = f"{text} (C-contiguous {shapes[name]})"
            described.append((name, text))
        return launch_error(
            self.name,
            grid=self.grid,
            block=self.block,
            smem=self.smem,
            stream=stream,
            args=described,
            err=err,
        )


class AlignedLauncher(Launcher):
    """A :class:`Launcher` of the twiddle-folded kernel that hands calls whose u, y or gate
    pointer is not 16-byte aligned to ``general`` (the Monarch kernel's launcher for the same
    call)."""

    __slots__ = ("general", "post_mask", "pre_mask")

    def __init__(self, func, grid: tuple, block: tuple, smem: int, tail: tuple, name: str, *,
                 general: Launcher, pregate: bool = False, postgate: bool = False) -> None:
        super().__init__(func, grid, block, smem, tail, name)
        self.general = general
        # a gate the kernel was not built with is never read: its pointer is not checked
        self.pre_mask = 15 if pregate else 0
        self.post_mask = 15 if postgate else 0

    def __call__(self, u: int, pre: int, kf, y: int, post: int, stream) -> None:
        if (u | y) & 15 or pre & self.pre_mask or post & self.post_mask:
            self.general(u, pre, kf, y, post, stream)
        else:
            Launcher.__call__(self, u, pre, kf, y, post, stream)


# ------------------------------------------------------------------------------------------------
# Backward: dk summed over the batch on chip, with du / dpregate / dpostgate (monarch_bwd)
# ------------------------------------------------------------------------------------------------
DK_KERNEL_NAME = "monarch_bwd"
# 32768 would need two 128 KB working buffers: beyond any device's shared memory.
DK_SIZES: tuple[int, ...] = (256, 512, 1024, 2048, 4096, 8192, 16384)
# bit 0: L and Lout both <= n / 2 (half of the first stage); bit 1: every requested output
# window (du / dpre: [0, L), dpost: the forward's) ends by n / 2 (half of the last stage).
DK_PADS = (0, 1, 2, 3)
_DK_ORDER: OnceCache = OnceCache()  # (device, n) -> _inverse_order(n) there


def _check_dk_n(n: int) -> None:
    if n not in DK_SIZES:
        raise ValueError(f"FFT size {n} has no fused backward kernel (sizes: {DK_SIZES})")


def dk_shared_bytes(n: int, dtype: str) -> int:
    """Dynamic shared memory of one backward block: two working buffers (u side, dy side),
    the twiddle tables, the radix-16 twiddles of every warp (kept out of registers), and for
    the A = 2 sizes (256..2048) each warp's running sum of dk's spectrum."""
    _check_dk_n(n)
    _check_dtype(dtype)
    c = config(n)
    warps = c["threads"] // 32
    wtab = 8 + (8 * warps if c["A"] == 3 else 0)  # W256, and W4096 per warp (A = 3)
    asum = warps * 256 * 8 if c["A"] == 2 else 0  # each warp's running dk sum (A = 2)
    return 2 * _data_bytes(n) + _table_bytes(n) + 2 * warps * 4 + wtab * 32 * 8 + asum


FORWARD = KernelRole(KERNEL_NAME, SUPPORTED_N, PAD_VARIANTS, shared_bytes)
BACKWARD = KernelRole(DK_KERNEL_NAME, DK_SIZES, DK_PADS, dk_shared_bytes)


def dk_name_expressions(n: int, dtype: str, pregate: bool, postgate: bool) -> list[str]:
    """Every instantiation a FusedBwd(n, dtype, pregate, postgate) may launch."""
    return BACKWARD.expressions(n, dtype, pregate, postgate)


def all_dk_name_expressions() -> list[str]:
    return BACKWARD.all_expressions()


@cache
def _inverse_order(n: int) -> np.ndarray:
    """Kernel-order position of each frequency (the inverse of :func:`freq_index`)."""
    inv = np.empty(n, dtype=np.int64)
    inv[freq_index(n)] = np.arange(n)
    return inv


class FusedBwd(FamilyConv):
    """The backward of the fused convolution in one kernel: dk summed over the batch on chip,
    and on request du, dpregate and dpostgate.

    For ``y[b,h,t] = post * sum_s kpad[h,s] (pre*u)pad[b,h,(t + out_offset - s) mod n]``
    (t < Lout) and a cotangent dy of y's shape, with ``g = dy * post``:

    * ``dk[h,s] = sum_b,t g[b,h,t] (pre*u)pad[b,h,(t + out_offset - s) mod n]``, s < Lk, float32;
    * ``dv = corr(g, k)[:L]``, ``du = dv * pre`` (or dv) and ``dpre = dv * u``, 16-bit;
    * ``dpost = dy * window(conv(pre * u, k))``, 16-bit.

    The kernel transforms a pair of sequences of each side on chip, keeps the batch sum of
    conj(V) G in float32 (an (S, H, n) complex array, S = 1 unless H is too small to fill the
    device; one inverse FFT per channel with ``cupy.fft`` finishes dk), and runs G times the
    adjoint filter's spectrum (:meth:`adjoint_spectrum`) through the inverse chain for dv, and
    V times k's spectrum (:meth:`filter_spectrum`) for dpost.
    """

    def __init__(self, n: int, dtype: str, *, pregate: bool, postgate: bool):
        _check_dk_n(n)
        _check_dtype(dtype)
        self._configure(n, dtype, pregate, postgate, None)
        self.threads = config(n)["threads"]
        self.smem = dk_shared_bytes(n, dtype)
        self._spectra = FusedConv(n, dtype, pregate=False, postgate=False)

    def _geometry(self, b: int, h: int, L: int, out_offset: int, Lout: int, outs: int):
        """(kernel, nsplit) of a call: the PAD variant from the windows, and the batch split
        over nsplit blocks per channel that fills the device when H alone cannot."""
        cp, n = _cupy(), self.n
        kernels = BACKWARD.kernels(n, self.dtype, self.pregate, self.postgate)
        ends = ([L] if outs & 3 else []) + ([out_offset + Lout] if outs & 4 else [])
        pad = int(L <= n // 2 and Lout <= n // 2) | (int(max(ends, default=0) <= n // 2) << 1)
        kern, per_sm = kernels[pad]
        slots = per_sm * _sm_count(cp.cuda.Device().id)
        units = -(-((b + 1) // 2) // config(n)["pairs_per_block"])  # per channel
        return kern, max(1, min(units, -(-slots // h)))

    def _folded(self, b: int, L: int, Lout: int, outs: int, strides: tuple, out_offset: int):
        """The folded backward kernel (``kernels/fold_bwd.cuh``: FFT 512 .. 8192; no gates with dk
        and at most du, or (up to 4096) both gates with every gradient) if the call fits it, else None
        (pointers' alignment is checked per call)."""
        ok = twiddle_fold.bwd_eligible(
            self.n, pregate=self.pregate, postgate=self.postgate, outs=outs, B=b, L=L,
            Lout=Lout, strides=strides, out_offset=out_offset,
        )
        if not ok:
            return None
        mode = twiddle_fold.bwd_mode(self.pregate, self.postgate, outs)
        half = twiddle_fold.bwd_half(self.n, L, out_offset, Lout, mode)
        got = twiddle_fold.bwd_kernel(self.n, self.dtype, half, mode)
        return None if got is None else got[0]

    def launcher(
        self, B: int, H: int, L: int, out_offset: int, Lout: int, Lk: int, k_used: int,
        k_dtype: str, outs: int,
    ) -> BwdLauncher:
        """A :class:`BwdLauncher` for C-contiguous operands of these sizes on this device."""
        return BwdLauncher(self, B, H, L, out_offset, Lout, Lk, k_used, k_dtype, outs)

    def adjoint_spectrum(self, k, out_offset: int):
        """Kernel-order spectrum of ``r[m] = k[(out_offset - m) mod n]`` for ``dv``."""
        return self._spectra.filter_spectrum(k, reverse_shift=out_offset)

    def filter_spectrum(self, k):
        """Kernel-order spectrum of k for ``dpost`` (:meth:`FusedConv.filter_spectrum`)."""
        return self._spectra.filter_spectrum(k)

    def spectra(self, k, out_offset: int, *, adjoint: bool, filt: bool) -> tuple:
        """(:meth:`adjoint_spectrum` if ``adjoint``, :meth:`filter_spectrum` if ``filt``), None
        for the other, from one rfft of k."""
        shifts = ((out_offset,) if adjoint else ()) + ((None,) if filt else ())
        got = iter(self._spectra.filter_spectra(k, shifts) if shifts else ())
        return (next(got) if adjoint else None), (next(got) if filt else None)

    def __call__(
        self,
        u,
        dy,
        kr=None,
        *,
        L: int,
        out_offset: int,
        Lout: int,
        Lk: int,
        pregate=None,
        postgate=None,
        du=None,
        dpre=None,
        kk=None,
        dpost=None,
    ):
        """dk (H, Lk) float32 for u (B, H, L), dy (B, H, Lout) and the gates of those shapes;
        du / dpre (B, H, L) in u's dtype are written when given (they need ``kr``, and dpre a
        pregate), and dpost (B, H, Lout) too (it needs ``kk``)."""
        cp = _cupy()
        n = self.n
        op = self.check_operands(
            u, dy, L=L, out_offset=out_offset, Lout=Lout, pregate=pregate, postgate=postgate
        )
        Lk = int(Lk)
        if Lk < 1:
            raise ValueError(f"Lk must be >= 1, got {Lk}")
        b, h = op.B, op.H
        outs = (du is not None) | ((dpre is not None) << 1) | ((dpost is not None) << 2)
        if dpre is not None and pregate is None:
            raise ValueError("dpre needs a pregate (dpre = dv * u is the pregate's gradient)")
        du_s = (np.int64(0),) * 2 if du is None else self._check_io("du", du, (b, h, op.L))
        dp_s = (np.int64(0),) * 2 if dpre is None else self._check_io("dpre", dpre, (b, h, op.L))
        dq_s = (
            (np.int64(0),) * 2 if dpost is None else self._check_io("dpost", dpost, (b, h, op.Lout))
        )
        for name, spec, wanted, maker in (
            ("kr", kr, outs & 3, "adjoint_spectrum"),
            ("kk", kk, outs & 4, "filter_spectrum"),
        ):
            if wanted and (
                not isinstance(spec, cp.ndarray)
                or spec.dtype != cp.float16
                or spec.shape != (h, filter_row_halves(n))
                or not spec.flags.c_contiguous
            ):
                raise ValueError(
                    f"{name} must be the C-contiguous float16 (H, {filter_row_halves(n)}) output "
                    f"of {maker}"
                )
        if b == 0 or h == 0 or op.Lout == 0:
            for a in (du, dpre, dpost):
                if a is not None:
                    a[...] = 0
            return cp.zeros((h, Lk), dtype=cp.float32)
        kern, nsplit = self._geometry(b, h, op.L, op.out_offset, op.Lout, outs)
        threads, smem = self.threads, self.smem
        strides = (*op.u_strides, *op.y_strides, *op.pre_strides, *op.post_strides, *du_s, *dp_s,
                   *dq_s)
        folded = self._folded(b, op.L, op.Lout, outs, strides, op.out_offset)
        ptrs = [a.data.ptr for a in (u, dy, pregate, postgate, du, dpre, dpost) if a is not None]
        if folded is not None and twiddle_fold.aligned(*ptrs):
            kern, threads, smem = folded, twiddle_fold.THREADS, twiddle_fold.bwd_smem(n)
        acc = cp.empty((nsplit, h, n, 2), dtype=cp.float32)
        args = (
            u,
            pregate if pregate is not None else u,
            dy,
            postgate if postgate is not None else dy,
            kr if outs & 3 else u,
            kk if outs & 4 else u,
            du if du is not None else u,
            dpre if dpre is not None else u,
            dpost if dpost is not None else u,
            acc,
            *op.u_strides,
            *op.pre_strides,
            *op.y_strides,
            *op.post_strides,
            *du_s,
            *dp_s,
            *dq_s,
            np.int32(b),
            np.int32(h),
            np.int32(op.L),
            np.int32(op.Lout),
            np.int32(op.out_offset),
            np.int32(nsplit),
            np.int32(outs),
        )
        kern((h * nsplit,), (threads,), args, shared_mem=smem)
        inv = _dk_order(n)
        if n <= DIRECT_MAX_N:
            dk = cp.empty((h, Lk), dtype=cp.float32)
            _spectrum_functions()[f"dk_finish<{K_TYPE_CODE['float32']}>"](
                (h,), (256,),
                (acc, np.int32(nsplit), np.int32(h), np.int32(n), inv, np.float32(0.5 / n),
                 np.int32((-op.out_offset) % n), np.int32(Lk), np.int32(Lk), dk),
                shared_mem=direct_smem(n),
            )
            return dk
        herm = cp.empty((h, n // 2 + 1), dtype=cp.complex64)
        fold = _hermitian_kernel()
        fold(_grid256(herm.size), (256,),
             (acc, np.int32(nsplit), np.int32(h), np.int32(n), inv, np.float32(0.5 / n), herm))
        del acc
        from cupy.cuda import cufft

        corr = cp.empty((h, n), dtype=cp.float32)
        _plan1d(True, n, h).fft(herm, corr, cufft.CUFFT_INVERSE)  # unnormalised (see fold)
        return _dk_window(corr, n, Lk, op.out_offset, cp)


def _freq_order(n: int):
    """:func:`freq_index` as int32 on the current device (sent once per device)."""
    cp = _cupy()
    return _DEV_FREQ.get(
        (cp.cuda.Device().id, n), lambda: cp.asarray(freq_index(n).astype(np.int32))
    )


def _dk_order(n: int):
    """:func:`_inverse_order` as int32 on the current device (sent once per device)."""
    cp = _cupy()
    return _DK_ORDER.get(
        (cp.cuda.Device().id, n), lambda: cp.asarray(_inverse_order(n).astype(np.int32))
    )


def _align(nbytes: int) -> int:
    return -(-nbytes // 256) * 256


def _layout(sizes) -> tuple[tuple[int, ...], int]:
    """Offsets of consecutive 256-byte aligned pieces of the given sizes, and their total."""
    offs, at = [], 0
    for size in sizes:
        offs.append(at)
        at += _align(size)
    return tuple(offs), at


class SpectrumLauncher:
    """Kernel-order filter spectra of a contiguous k (H, Lk) in ``k_dtype`` on raw pointers,
    one per entry of ``shifts`` (None: k's own spectrum, an int s: the reversed filter's, as
    :meth:`FusedConv.filter_spectra`), each into an fp16 (H, 2n + 8) buffer, from k's first
    ``k_used`` taps. Dense spectra only (no frequency mask).

    n <= :data:`DIRECT_MAX_N`: one ``filter_spectra_direct`` launch (at most two spectra, as
    :func:`adjoint_shifts` gives). Larger n: ``pad_filter`` (zero-padded float32 rows), one
    rfft (cuFFT) and one ``kernel_order_spectrum`` per shift; the float32 rows and the rfft
    live in a caller's workspace laid out by :func:`_layout` with (:attr:`real_bytes`,
    :attr:`cplx_bytes`, ...) first (both 0 for the direct launch), free again after the last
    ordering kernel in stream order.
    """

    def __init__(self, n: int, H: int, Lk: int, k_used: int, k_dtype: str,
                 shifts: tuple[int | None, ...]) -> None:
        from .launch import PackedLaunch

        kt = K_TYPE_CODE[k_dtype]
        fns = _spectrum_functions()
        self.n, self.H = n, H
        self.freq = int(_freq_order(n).data.ptr)
        self.spec_bytes = H * filter_row_halves(n) * 2  # one output spectrum
        self.direct = None
        rev = [sh for sh in shifts if sh is not None]
        if n <= DIRECT_MAX_N and len(rev) <= 1 and len(shifts) - len(rev) <= 1:
            # (rev, own) outputs of one launch; the shift is the reversed filter's, if any
            self.direct = PackedLaunch(fns[f"filter_spectra_direct<{kt}>"], (H,), (256,),
                                       direct_smem(n), "QiiiQqQQ")
            self.k_args = (k_used, Lk, n, self.freq)
            self.shifts, self.rev_shift = shifts, (rev or [0])[0]
            self.real_bytes = self.cplx_bytes = self.cplx_at = 0
            self.ws_sizes = (0, 0) + (self.spec_bytes,) * len(shifts)
            return
        self.real_bytes, self.cplx_bytes = H * n * 4, H * (n // 2 + 1) * 8
        self.cplx_at = _align(self.real_bytes)  # the rfft's offset in the workspace
        # the workspace's pieces when the outputs live in it too (offsets: _layout)
        self.ws_sizes = (self.real_bytes, self.cplx_bytes) + (self.spec_bytes,) * len(shifts)
        self.fft = RawFFT(False, n, H)
        self.pad = PackedLaunch(fns[f"pad_filter<{kt}>"], _grid256(H * n), (256,), 0, "QiiiiQ")
        self.k_args = (H, k_used, Lk, n)
        self.orders = tuple(
            (PackedLaunch(_spectrum_kernel(sh is not None), (H,), (256,), 0, "QQiqQ"), sh or 0)
            for sh in shifts
        )

    def __call__(self, stream, k: int, ws: int, outs: tuple[int, ...]) -> None:
        """On ``stream`` (a CuPy stream): the spectra of k into ``outs`` (pointers), with the
        workspace at pointer ``ws``."""
        if self.direct is not None:
            rev = own = 0
            for shift, out in zip(self.shifts, outs):
                if shift is None:
                    own = out
                else:
                    rev = out
            self.direct(stream.ptr, k, *self.k_args, self.rev_shift, rev, own)
            return
        sp, c, freq, n = stream.ptr, ws + self.cplx_at, self.freq, self.n
        self.pad(sp, k, *self.k_args, ws)
        self.fft(stream, ws, c)
        for (launch, shift), out in zip(self.orders, outs):
            launch(sp, c, freq, n, shift, out)


def adjoint_shifts(out_offset: int, outs: int) -> tuple[int | None, ...]:
    """:class:`SpectrumLauncher`'s ``shifts`` for a backward call's gradients ``outs`` (bit 0
    du, bit 1 dpregate, bit 2 dpostgate): the reversed filter's spectrum first (du, dpregate),
    k's own last (dpostgate)."""
    return ((out_offset,) if outs & 3 else ()) + ((None,) if outs & 4 else ())


def _grid256(total: int) -> tuple[int]:
    """Grid of a grid-stride kernel of 256 threads over ``total`` items."""
    return (max(1, min(-(-total // 256), 4096)),)


class BwdLauncher:
    """One whole fused backward call on raw pointers (ints), everything resolved up front.

    For C-contiguous u, pregate (B, H, L), dy, postgate (B, H, Lout), k (H, Lk) in
    ``k_dtype`` and outputs du, dpregate (B, H, L), dpostgate (B, H, Lout) and dk (H, Lk)
    in k's dtype. ``outs``: bit 0 du, bit 1 dpregate, bit 2 dpostgate wanted (dk always).
    Launches out of one workspace allocation: the spectra (:class:`SpectrumLauncher`: the
    adjoint one for du / dpregate, k's own for dpostgate), the backward kernel, then
    ``dk_finish`` (n <= :data:`DIRECT_MAX_N`) or ``dk_hermitian``, the inverse rfft and
    ``dk_window`` (dk cut to its taps, in k's dtype). The arithmetic of :meth:`FusedBwd.__call__` and
    ``AdjointBwdExecutor``'s dk conversion, without their per-call checks; the raw kernels
    launch with pre-packed arguments (:class:`cufftconv.launch.PackedLaunch`).
    """

    def __init__(
        self, bwd: FusedBwd, B: int, H: int, L: int, out_offset: int, Lout: int, Lk: int,
        k_used: int, k_dtype: str, outs: int,
    ) -> None:
        from .launch import PackedLaunch

        n = bwd.n
        self.n, self.H, self.outs = n, H, outs
        self.ifft = RawFFT(True, n, H)
        sp = self.spectra = SpectrumLauncher(n, H, Lk, k_used, k_dtype,
                                             adjoint_shifts(out_offset, outs))
        kern, nsplit = bwd._geometry(B, H, L, out_offset, Lout, outs)
        # workspace: [k padded | later corr] [rfft of k | later herm] [kr] [kk] [acc]
        sizes = (sp.real_bytes, sp.cplx_bytes, sp.spec_bytes * bool(outs & 3),
                 sp.spec_bytes * bool(outs & 4), nsplit * H * n * 8)
        self.offs, self.ws_bytes = _layout(sizes)
        fmt = "Q" * 10 + "q" * 14 + "i" * 7
        self.kern = PackedLaunch(kern, (H * nsplit,), (bwd.threads,), bwd.smem, fmt)
        # the folded backward where the shapes fit it (calls whose pointers are 16-byte aligned)
        fold = bwd._folded(B, L, Lout, outs, (H * L, L, H * Lout, Lout), out_offset)
        self.fold = None if fold is None else PackedLaunch(
            fold, (H * nsplit,), (twiddle_fold.THREADS,), twiddle_fold.bwd_smem(n), fmt
        )
        # alignment masks of (pre, post, du, dpre, dpost): 0 for those a call does not use (as
        # AlignedLauncher's)
        used = (bwd.pregate, bwd.postgate, outs & 1, outs & 2, outs & 4)
        self.fold_masks = tuple(15 if w else 0 for w in used)
        self.tail = (
            H * L, L, H * L, L,  # u, pregate strides (batch, channel)
            H * Lout, Lout, H * Lout, Lout,  # dy, postgate
            H * L, L, H * L, L, H * Lout, Lout,  # du, dpregate, dpostgate
            B, H, L, Lout, out_offset, nsplit, outs,
        )
        self.herm = PackedLaunch(_hermitian_kernel(), _grid256(H * (n // 2 + 1)), (256,), 0,
                                 "QiiiQfQ")
        self.herm_args = (nsplit, H, n, int(_dk_order(n).data.ptr), 0.5 / n)
        kt = K_TYPE_CODE[k_dtype]
        self.window = PackedLaunch(_spectrum_functions()[f"dk_window<{kt}>"], _grid256(H * Lk),
                                   (256,), 0, "QiiiiiQ")
        self.win_args = (H, n, (-out_offset) % n, k_used, Lk)
        # n <= DIRECT_MAX_N: dk_hermitian, the inverse rfft and dk_window in one launch, with
        # the hermitian fold's arguments and the window's (start, k_used, Lk)
        self.finish = None if n > DIRECT_MAX_N else PackedLaunch(
            _spectrum_functions()[f"dk_finish<{kt}>"], (H,), (256,), direct_smem(n), "QiiiQfiiiQ"
        )
        self.finish_args = (*self.herm_args, *self.win_args[2:])

    def __call__(
        self, u: int, pre: int, dy: int, post: int, k: int, du: int, dpre: int, dpost: int,
        dk: int, stream, ws: int,
    ) -> None:
        """Run on ``stream`` (a CuPy stream) with :attr:`ws_bytes` of workspace at pointer
        ``ws`` (free again in stream order after the call); pointers of absent operands are
        ignored."""
        sp, outs = stream.ptr, self.outs
        o_real, o_cplx, o_kr, o_kk, o_acc = (ws + o for o in self.offs)
        kr = o_kr if outs & 3 else u
        kk = o_kk if outs & 4 else u
        targets = ((o_kr,) if outs & 3 else ()) + ((o_kk,) if outs & 4 else ())
        self.spectra(stream, k, ws, targets)
        mp, mq, m1, m2, m4 = self.fold_masks
        fold = self.fold is not None and not (
            (u | dy) & 15 or pre & mp or post & mq or du & m1 or dpre & m2 or dpost & m4
        )
        (self.fold if fold else self.kern)(
            sp, u, pre, dy, post, kr, kk, du, dpre, dpost, o_acc, *self.tail
        )
        if self.finish is not None:
            self.finish(sp, o_acc, *self.finish_args, dk)
            return
        self.herm(sp, o_acc, *self.herm_args, o_cplx)
        self.ifft(stream, o_cplx, o_real)  # unnormalised
        self.window(sp, o_real, *self.win_args, dk)


def dk_from_product(prod, Lk: int, out_offset: int, inverse_order, xp):
    """dk (H, Lk) from the batch-summed product ``P = sum conj(Z_v) Z_g`` of packed pairs in
    kernel order (``prod`` (H, n) complex; ``inverse_order`` = :func:`_inverse_order`): the
    Hermitian part of P in rfft layout, as ``dk_hermitian`` (kernels/spectrum.cu) forms it on
    the GPU, then :func:`dk_from_hermitian`.
    """
    n = prod.shape[-1]
    p = prod[:, inverse_order]
    f = np.arange(n // 2 + 1)
    herm = 0.5 * (p[:, f] + xp.conj(p[:, (-f) % n]))
    return dk_from_hermitian(herm, n, Lk, out_offset, xp)


def dk_from_hermitian(herm, n: int, Lk: int, out_offset: int, xp):
    """dk (H, Lk) from the Hermitian part of P in rfft layout (H, n/2 + 1).

    Its inverse rfft is Re(IFFT(P)), the batch-summed correlation c[d] = sum_j g[j] v[j - d]
    (the pairs' cross terms have an imaginary inverse); g sat at [0, Lout) instead of the
    output window, so dk[s] = c[(s - out_offset) mod n].
    """
    return _dk_window(xp.fft.irfft(herm, n=n, axis=-1), n, Lk, out_offset, xp)


def _dk_window(corr, n: int, Lk: int, out_offset: int, xp):
    """dk[:, s] = corr[:, (s - out_offset) mod n], s < Lk <= n: at most two runs (slices, no
    index array sent to the device)."""
    start = (-out_offset) % n
    first = min(Lk, n - start)
    if first == Lk:
        return xp.ascontiguousarray(corr[:, start : start + Lk])
    return xp.concatenate((corr[:, start:], corr[:, : Lk - first]), axis=1)


def hbm_bytes(n: int, B: int, H: int, L: int, Lout: int, pregate: bool, postgate: bool) -> int:
    """Bytes that must cross HBM (16-bit u [+pre], y [+post]); the floor used in benchmarks."""
    del n
    return 2 * B * H * (L * (1 + pregate) + Lout * (1 + postgate))


__all__ = [
    "DK_SIZES",
    "DTYPES",
    "SUPPORTED_N",
    "FusedBwd",
    "FusedConv",
    "all_dk_name_expressions",
    "all_name_expressions",
    "compile_options",
    "config",
    "dk_from_hermitian",
    "dk_from_product",
    "dk_name_expressions",
    "dk_shared_bytes",
    "factorisation",
    "freq_index",
    "hbm_bytes",
    "kernel_source",
    "name_expressions",
    "precompile",
    "shared_bytes",
]
