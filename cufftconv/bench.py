"""Side-by-side benchmark of cufftconv against PyTorch and CuPy (``python -m cufftconv bench``).

The method is design.md's "Benchmark method": CUDA events, warm-up, median of many runs, inputs
larger than L2, both baselines timed in the same process, and the HBM floor from a device copy
bandwidth measured in the same run. The workloads are those of the reference anchors
(``shared/anchors/h200-*.json``): u ``(B, H, L)`` in 16 bits, k ``(H, L)`` float32, variants
"conv" (circular, L = N), "gated" (the same with pre- and postgate) and "causal" (L = N/2).
``--long`` adds the anchors' long rows (N = 65536 .. 4194304, B = 8 with H cut as N grows).
Every row also records each implementation's peak extra memory during one call.

Without a CUDA GPU it times the NumPy path against NumPy and SciPy instead, so the harness
itself runs anywhere. Every import of torch, cupy, scipy, matplotlib and tqdm is optional and
local.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_SIZES = (256, 1024, 4096, 8192, 16384, 32768)
QUICK_SIZES = (256, 1024, 4096)
CPU_SIZES = (256, 1024, 4096)
CPU_QUICK_SIZES = (256, 1024)
LONG_SIZES = (65536, 262144, 1048576, 4194304)  # the anchors' long rows (--long)
MAX_FFT_SIZE = 2**24  # the long kernels' largest (cufftconv.long.MAX_N)
CPU_MAX_N = 65536  # larger rows take too long on the NumPy path: skipped there
VARIANTS = ("conv", "gated", "causal")
DTYPES = ("float16", "bfloat16", "float32")
DEFAULT_DTYPES = ("float16", "bfloat16")
ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4}
GPU_BASELINES = ("torch", "cupy")
CPU_BASELINES = ("numpy", "scipy")
IMPLS = ("cufftconv", *GPU_BASELINES, *CPU_BASELINES)

# From this FFT size on, B*H shrinks so that B*H*N stays at B*H*8192, as in the anchors.
SCALE_FROM = 16384
SCALE_BASE = 8192
# From this FFT size on (the long rows), B = 8 and H shrinks instead, as in the anchors.
LONG_FROM = 65536
LONG_B = 8
# Rough peak device bytes per FFT point of one sequence, over all implementations in turn
# (16-bit inputs and outputs, float32 copies, complex64 spectra, cuFFT work area).
PEAK_BYTES_PER_POINT = 48
MEMORY_FRACTION = 0.7
COPY_BYTES = 512 * 2**20
FLUSH_BYTES = 256 * 2**20  # several times the L2 of an H100 / H200
REF_SLICE = (2, 4)  # (batch, channel) sequences checked against the float64 reference
REF_SLICE_LONG = (2, 2)  # fewer for the long rows (a 4M-point float64 FFT takes ~0.1 s)
MB = 2**20  # peak memory is reported in MB of 2**20 bytes, like the anchors
JSON_NAME = "bench.json"
PNG_NAME = "bench.png"
NO_GPU_MESSAGE = "No CUDA GPU found: timing the NumPy path (not representative of GPU speed)"
CPU_FORCED_MESSAGE = "--cpu: timing the NumPy path (not representative of GPU speed)"


# --------------------------------------------------------------------------------------------
# Arithmetic


def seq_len(fft_size: int, variant: str) -> int:
    """Sequence length L of a workload: N, or N/2 for the zero-padded causal variant."""
    return fft_size // 2 if variant == "causal" else fft_size


def bytes_moved(batch: int, heads: int, length: int, variant: str, itemsize: int = 2) -> int:
    """Bytes that must cross HBM: read u (and both gates), write y.

    The filter (H*L, reused over the batch) is left out, as in the anchors.
    """
    arrays = 4 if variant == "gated" else 2
    return arrays * batch * heads * length * itemsize


def hbm_floor_ms(nbytes: int, bandwidth: float) -> float:
    """Lower bound on the time in ms for moving ``nbytes`` at ``bandwidth`` bytes/s."""
    return nbytes / bandwidth * 1e3


def efficiency(floor_ms: float | None, ms: float | None) -> float | None:
    """floor / time: 1.0 means running at the HBM floor. None when either is unknown."""
    if floor_ms is None or not ms:
        return None
    return floor_ms / ms


def speedup(baseline_ms: float | None, ms: float | None) -> float | None:
    """How many times faster than the baseline. None when either is unknown."""
    if baseline_ms is None or not ms:
        return None
    return baseline_ms / ms


def scaled_batch(batch: int, heads: int, fft_size: int) -> tuple[int, int]:
    """B, H actually run: from N = 16384 on, B*H*N stays at B*H*8192 (B halved first).

    Long rows (N >= 65536) use :func:`long_batch` instead.
    """
    if fft_size < SCALE_FROM:
        return batch, heads
    if fft_size >= LONG_FROM:
        return long_batch(batch, heads, fft_size)
    return _shrink(batch, heads, lambda b, h: b * h * fft_size <= batch * heads * SCALE_BASE)


def long_batch(batch: int, heads: int, fft_size: int) -> tuple[int, int]:
    """B, H of a long row: B = 8, H = B*H*8192 // (8*N) (at least 1, at most ``heads``).

    At B=64, H=768: H = 768, 192, 48, 12 for N = 64K, 256K, 1M, 4M.
    """
    b = min(batch, LONG_B)
    return b, max(1, min(heads, batch * heads * SCALE_BASE // (b * fft_size)))


def is_long(fft_size: int) -> bool:
    """A long row: FFT size 65536 and up (cufftconv's long-monarch range)."""
    return fft_size >= LONG_FROM


def fit_memory(batch: int, heads: int, fft_size: int, free_bytes: int) -> tuple[int, int]:
    """B, H small enough that the peak memory estimate fits in free device memory."""
    limit = MEMORY_FRACTION * free_bytes
    return _shrink(batch, heads, lambda b, h: b * h * fft_size * PEAK_BYTES_PER_POINT <= limit)


def _shrink(batch: int, heads: int, fits: Callable[[int, int], bool]) -> tuple[int, int]:
    while not fits(batch, heads) and batch > 1:
        batch = (batch + 1) // 2
    while not fits(batch, heads) and heads > 1:
        heads = (heads + 1) // 2
    return batch, heads


def fft_reference(
    u: np.ndarray,
    k: np.ndarray,
    fft_size: int,
    mode: str,
    pregate: np.ndarray | None = None,
    postgate: np.ndarray | None = None,
) -> np.ndarray:
    """float64 reference through np.fft at the power-of-two ``fft_size`` itself.

    The same result as ``reference.fftconv_direct`` for the bench's workloads (circular:
    L = N; causal: Lk = L = N/2, so 2L - 1 < N and nothing wraps), but without its
    odd-length L + Lk - 1 transforms, which take tens of seconds at N = 4M.
    """
    n = fft_size
    u = np.asarray(u, dtype=np.float64)
    length = u.shape[-1]
    if pregate is not None:
        u = u * pregate
    y = np.fft.irfft(np.fft.rfft(u, n) * np.fft.rfft(np.asarray(k, np.float64), n), n)
    y = y[..., :length]
    return y * postgate if postgate is not None else y


def relerr(y: np.ndarray, ref: np.ndarray) -> float:
    """||y - ref|| / ||ref|| in float64."""
    y = np.asarray(y, dtype=np.float64)
    return float(np.linalg.norm(y - ref) / np.linalg.norm(ref))


# --------------------------------------------------------------------------------------------
# Workloads and configuration


@dataclass(frozen=True)
class Workload:
    """One row: FFT size, variant, dtype, the B, H run and the B, H reported."""

    fft_size: int
    variant: str
    dtype: str
    B: int
    H: int
    report_B: int
    report_H: int
    notes: tuple[str, ...] = ()

    @property
    def L(self) -> int:
        return seq_len(self.fft_size, self.variant)

    @property
    def mode(self) -> str:
        return "causal" if self.variant == "causal" else "circular"

    @property
    def gated(self) -> bool:
        return self.variant == "gated"

    @property
    def scale(self) -> float:
        """Factor from measured times to times at report_B, report_H."""
        return (self.report_B * self.report_H) / (self.B * self.H)

    def label(self) -> str:
        return f"N={self.fft_size} {self.variant} {self.dtype}"


def plan_workloads(
    sizes: Sequence[int], variants: Sequence[str], dtypes: Sequence[str], batch: int, heads: int
) -> list[Workload]:
    """All rows in run order (small sizes first, so a time budget cuts the largest)."""
    rows = []
    for n in sizes:
        b, h = scaled_batch(batch, heads, n)
        for variant in variants:
            for dtype in dtypes:
                rows.append(
                    Workload(
                        n, variant, dtype, b, h, batch, heads, _scale_notes(b, h, batch, heads)
                    )
                )
    return rows


def _scale_notes(b: int, h: int, batch: int, heads: int) -> tuple[str, ...]:
    if (b, h) == (batch, heads):
        return ()
    factor = batch * heads / (b * h)
    return (f"run at B={b}, H={h}; times scaled x{factor:g} to B={batch}, H={heads}",)


@dataclass
class BenchConfig:
    """Everything a run needs, resolved from the command line."""

    gpu: bool
    arrays: str  # "torch", "cupy" (GPU) or "numpy"
    sizes: tuple[int, ...]
    variants: tuple[str, ...]
    dtypes: tuple[str, ...]
    B: int
    H: int
    reps: int
    warmup: int
    out_dir: Path
    seed: int
    max_seconds: float | None = None
    results_md: Path | None = None
    path: str | None = None  # force one dispatch row for cufftconv (e.g. "cufft")
    argv: list[str] = field(default_factory=list)

    @property
    def baselines(self) -> tuple[str, str]:
        return GPU_BASELINES if self.gpu else CPU_BASELINES


# --------------------------------------------------------------------------------------------
# Peak memory


class PeakCounter:
    """Bytes in use and their peak, counted from zero when counting starts.

    A block freed that was allocated before counting started takes the count below zero, so
    ``peak`` is the peak above the bytes in use before.
    """

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self._live: dict[int, int] = {}

    def malloc(self, ptr: int, size: int) -> None:
        if not ptr:  # a failed allocation
            return
        self.current += size - self._live.get(ptr, 0)
        self._live[ptr] = size
        self.peak = max(self.peak, self.current)

    def free(self, ptr: int, size: int) -> None:
        self.current -= self._live.pop(ptr, size)


def pool_peak_hook(cp: Any, counter: PeakCounter) -> Any:
    """A ``cupy.cuda.MemoryHook`` feeding ``counter`` from CuPy's memory pool.

    malloc/free are the pool's hand-outs and returns (``mem_size``: the rounded size), so
    cached blocks count as used while an array holds them, as ``used_bytes()`` does.
    Hooks are per thread: use it on the thread that makes the calls.
    """

    class _PoolPeakHook(cp.cuda.MemoryHook):
        name = "cufftconv_bench_peak"

        def malloc_postprocess(self, **kw: Any) -> None:
            counter.malloc(int(kw["mem_ptr"]), int(kw["mem_size"]))

        def free_postprocess(self, **kw: Any) -> None:
            counter.free(int(kw["mem_ptr"]), int(kw["mem_size"]))

    return _PoolPeakHook()


def host_peak_extra_mb(fn: Callable[[], Any]) -> float:
    """Peak traced host memory (NumPy buffers included) during one call of ``fn``, in MB."""
    import tracemalloc

    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        y = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
        del y
    finally:
        if started:
            tracemalloc.stop()
    return max(0, peak) / MB


# --------------------------------------------------------------------------------------------
# Timing


@dataclass(frozen=True)
class _Clock:
    """CUDA events of one array library, recorded on that library's current stream."""

    new_event: Callable[[], Any]
    elapsed_ms: Callable[[Any, Any], float]
    synchronize: Callable[[], None]


def _torch_clock(torch: Any) -> _Clock:
    return _Clock(
        lambda: torch.cuda.Event(enable_timing=True),
        lambda a, b: a.elapsed_time(b),
        torch.cuda.synchronize,
    )


def _cupy_clock(cp: Any) -> _Clock:
    return _Clock(cp.cuda.Event, cp.cuda.get_elapsed_time, cp.cuda.runtime.deviceSynchronize)


def time_gpu(
    fn: Callable[[], Any],
    clock: _Clock,
    *,
    reps: int,
    warmup: int,
    flush: Callable[[], Any] | None = None,
) -> tuple[float, float]:
    """Median CUDA-event time of ``fn`` in ms, and wall time per call over back-to-back calls.

    The L2 flush before each run also keeps the GPU busy while the next launch is queued, so
    Python launch overhead stays out of the event time (as in triton's do_bench).
    """
    for _ in range(warmup):
        fn()
    clock.synchronize()
    events = [(clock.new_event(), clock.new_event()) for _ in range(reps)]
    for start, end in events:
        if flush is not None:
            flush()
        start.record()
        fn()
        end.record()
    clock.synchronize()
    ms = statistics.median(clock.elapsed_ms(s, e) for s, e in events)
    wall_reps = max(3, reps // 3)
    t0 = time.perf_counter()
    for _ in range(wall_reps):
        fn()
    clock.synchronize()
    return ms, (time.perf_counter() - t0) / wall_reps * 1e3


def time_cpu(fn: Callable[[], Any], *, reps: int, warmup: int) -> tuple[float, None]:
    """Median wall time of ``fn`` in ms (host code: no events)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, None


# --------------------------------------------------------------------------------------------
# Implementations


@dataclass
class _Inputs:
    u: Any
    k: Any
    pre: Any = None
    post: Any = None

    def gates(self) -> dict[str, Any]:
        return {} if self.pre is None else {"pregate": self.pre, "postgate": self.post}


@dataclass
class _Impl:
    """One implementation ready to run: ``run()`` returns its output array."""

    run: Callable[[], Any]
    route: str = ""
    host64: Callable[[Any], np.ndarray] | None = None  # output slice to float64 NumPy
    check: Callable[[], Any] | None = None  # extra checked call writing into a NaN-filled out


def _host64(x: Any) -> np.ndarray:
    """Any array (torch, cupy, numpy; bf16 included) as float64 NumPy."""
    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        return x.detach().float().cpu().numpy().astype(np.float64)
    if mod == "cupy":
        return x.get().astype(np.float64)
    return np.asarray(x, dtype=np.float64)


def _cufftconv_impl(
    w: Workload, inp: _Inputs, poisoned: Any, device: str | None, path: str | None = None
) -> _Impl:
    """cufftconv through a plan holding k, like the baselines' precomputed spectrum.

    The timed call allocates its output like the baselines do; the checked call writes into
    ``poisoned`` (NaN-filled), so elements the path never writes show.
    """
    import cufftconv

    plan = cufftconv.FFTConv(
        (w.B, w.H, w.L),
        k=inp.k,
        dtype=w.dtype,
        k_dtype="float32",
        mode=w.mode,
        pregate=w.gated,
        postgate=w.gated,
        device=device,
        path=path,
    )
    gates = inp.gates()
    return _Impl(
        lambda: plan(inp.u, **gates),
        route=str(plan.route),
        check=lambda: plan(inp.u, out=poisoned, **gates),
    )


def _torch_impl(torch: Any, w: Workload, inp: _Inputs) -> _Impl:
    """irfft(rfft(u.float(), n) * kf, n)[..., :L].to(dtype), kf precomputed; gates in fp32."""
    u, k, pre, post = (_as_torch(torch, a) for a in (inp.u, inp.k, inp.pre, inp.post))
    n, length = w.fft_size, w.L
    kf = torch.fft.rfft(k, n=n)

    def run() -> Any:
        x = u.float() if pre is None else u.float() * pre
        y = torch.fft.irfft(torch.fft.rfft(x, n=n) * kf, n=n)[..., :length]
        if post is not None:
            y = y * post
        return y.to(u.dtype)

    return _Impl(run)


def _as_torch(torch: Any, a: Any) -> Any:
    if a is None or isinstance(a, torch.Tensor):
        return a
    return torch.from_dlpack(a)


def _cupy_impl(cp: Any, w: Workload, inp: _Inputs) -> _Impl:
    """The same with cupy.fft; bf16 travels as raw bits (CuPy has no bfloat16)."""
    bf16 = w.dtype == "bfloat16"
    u, k, pre, post = (_as_cupy(cp, a) for a in (inp.u, inp.k, inp.pre, inp.post))
    if bf16:
        to_f32, from_f32 = _bf16_kernels(cp)
    else:

        def to_f32(a: Any) -> Any:
            return a.astype(cp.float32, copy=False)

        def from_f32(a: Any) -> Any:
            return a.astype(u.dtype)

    n, length = w.fft_size, w.L
    kf = cp.fft.rfft(k, n=n)

    def run() -> Any:
        x = to_f32(u)
        if pre is not None:
            x *= to_f32(pre) if bf16 else pre
        y = cp.fft.irfft(cp.fft.rfft(x, n=n) * kf, n=n)[..., :length]
        if post is not None:
            y = y * (to_f32(post) if bf16 else post)
        return from_f32(y)

    return _Impl(run, host64=_bf16_bits_host64 if bf16 else None)


def _as_cupy(cp: Any, a: Any) -> Any:
    if a is None or isinstance(a, cp.ndarray):
        return a
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(a, torch.Tensor) and a.dtype == torch.bfloat16:
        a = a.view(torch.int16)
    return cp.from_dlpack(a)


def _bf16_kernels(cp: Any) -> tuple[Any, Any]:
    """bf16 bits (int16) <-> float32 elementwise kernels, round to nearest even."""
    to_f32 = cp.ElementwiseKernel(
        "int16 x",
        "float32 y",
        "y = __uint_as_float(((unsigned int)(unsigned short)x) << 16)",
        "cufftconv_bench_bf16_to_f32",
    )
    from_f32 = cp.ElementwiseKernel(
        "float32 x",
        "int16 y",
        "unsigned int b = __float_as_uint(x); b += 0x7FFFu + ((b >> 16) & 1u);"
        " y = (short)(b >> 16)",
        "cufftconv_bench_f32_to_bf16",
    )
    return to_f32, from_f32


def _bf16_bits_host64(y: Any) -> np.ndarray:
    bits = y.get().view(np.uint16).astype(np.uint32) << 16
    return bits.view(np.float32).astype(np.float64)


def _numpy_impl(w: Workload, inp: _Inputs) -> _Impl:
    """numpy.fft rfft convolution in float32 with the filter spectrum precomputed."""
    n, length = w.fft_size, w.L
    kf = np.fft.rfft(inp.k, n=n)

    def run() -> np.ndarray:
        x = inp.u.astype(np.float32)
        if inp.pre is not None:
            x *= inp.pre
        y = np.fft.irfft(np.fft.rfft(x, n=n) * kf, n=n)[..., :length]
        if inp.post is not None:
            y = y * inp.post
        return y.astype(inp.u.dtype)

    return _Impl(run)


def _scipy_impl(w: Workload, inp: _Inputs) -> _Impl:
    """scipy.signal.fftconvolve (full, then the causal slice or the circular fold)."""
    from scipy import signal

    length = w.L
    k = inp.k[None]

    def run() -> np.ndarray:
        x = inp.u.astype(np.float32)
        if inp.pre is not None:
            x *= inp.pre
        full = signal.fftconvolve(x, k, mode="full", axes=-1)
        y = full[..., :length]
        if w.mode == "circular":
            y[..., : length - 1] += full[..., length:]
        if inp.post is not None:
            y = y * inp.post
        return y.astype(inp.u.dtype)

    return _Impl(run)


# --------------------------------------------------------------------------------------------
# GPU environment


class _Skip(Exception):
    """A row that cannot run in this environment (reason in the message)."""


class _Gpu:
    """The GPU side of a run: CuPy always, PyTorch when available; ``arrays`` feeds cufftconv."""

    def __init__(self, arrays: str) -> None:
        import cupy

        self.cp = cupy
        self.torch = _torch_cuda()
        self.arrays = arrays
        self.clock = _torch_clock(self.torch) if arrays == "torch" else _cupy_clock(cupy)
        self._flush_buf: Any = None

    def seed(self, seed: int) -> None:
        self.cp.random.seed(seed)
        if self.torch is not None:
            self.torch.manual_seed(seed)

    def flush(self) -> None:
        """Overwrite a buffer several times the L2, so no input stays cached between runs."""
        if self._flush_buf is None:
            self._flush_buf = self.empty_bytes(FLUSH_BYTES)
        if self.arrays == "torch":
            self._flush_buf.zero_()
        else:
            self._flush_buf.fill(0)

    def empty_bytes(self, nbytes: int) -> Any:
        if self.arrays == "torch":
            return self.torch.empty(nbytes, dtype=self.torch.uint8, device="cuda")
        return self.cp.empty(nbytes, dtype=self.cp.uint8)

    def free_bytes(self) -> int:
        return int(self.cp.cuda.runtime.memGetInfo()[0])

    def release(self) -> None:
        """Give cached memory and FFT plans back, so each row starts from the same free memory."""
        gc.collect()
        self.cp.get_default_memory_pool().free_all_blocks()
        self.cp.fft.config.get_plan_cache().clear()
        if self.torch is not None:
            self.torch.backends.cuda.cufft_plan_cache.clear()
            self.torch.cuda.empty_cache()

    def randn(self, shape: tuple[int, ...], dtype: str, scale: float = 1.0) -> Any:
        if self.arrays == "torch":
            x = self.torch.randn(shape, device="cuda", dtype=getattr(self.torch, dtype))
            return x.mul_(scale) if scale != 1.0 else x
        if dtype == "bfloat16":
            raise _Skip("bfloat16 needs PyTorch tensors (CuPy has no bfloat16)")
        x = self.cp.random.standard_normal(shape, dtype=self.cp.float32)
        return (x * scale).astype(dtype) if scale != 1.0 else x.astype(dtype)

    def full_nan(self, like: Any) -> Any:
        if self.arrays == "torch":
            return self.torch.full_like(like, float("nan"))
        return self.cp.full_like(like, np.nan)

    def any_nan(self, y: Any) -> bool:
        if self.arrays == "torch":
            return bool(self.torch.isnan(y).any().item())
        return bool(self.cp.isnan(y).any())

    def peak_extra_mb(self, fn: Callable[[], Any]) -> float:
        """Peak device memory allocated during one call of ``fn`` above that in use before, MB.

        The sum of CuPy's pool (a memory hook: cufftconv's workspaces and, for CuPy inputs,
        its output; the CuPy baseline) and PyTorch's caching allocator (for torch inputs
        cufftconv's output; the torch baseline). Memory held between calls (the filter
        spectrum, cached cuFFT plans with their work areas) is not counted; PyTorch allocates
        its cuFFT work area per call, so there it is.
        """
        torch, sync = self.torch, self.cp.cuda.runtime.deviceSynchronize
        sync()
        counter = PeakCounter()
        base = 0
        if torch is not None:
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        with pool_peak_hook(self.cp, counter):
            y = fn()
            sync()
        torch_extra = torch.cuda.max_memory_allocated() - base if torch is not None else 0
        del y
        return (counter.peak + max(0, torch_extra)) / MB

    def device_info(self) -> dict[str, Any]:
        cp = self.cp
        index = int(cp.cuda.Device().id)
        props = cp.cuda.runtime.getDeviceProperties(index)
        name = props["name"]
        return {
            "device": name.decode() if isinstance(name, bytes) else str(name),
            "compute_capability": f"{props['major']}.{props['minor']}",
            "sm_count": int(props["multiProcessorCount"]),
            "l2_MB": round(int(props.get("l2CacheSize", 0)) / 2**20, 1),
            "memory_GiB": round(int(props["totalGlobalMem"]) / 2**30, 1),
        }

    def versions(self) -> dict[str, Any]:
        cp = self.cp
        rt = cp.cuda.runtime.runtimeGetVersion()
        drv = cp.cuda.runtime.driverGetVersion()
        out = {
            "cupy": cp.__version__,
            "cuda_runtime": f"{rt // 1000}.{rt % 1000 // 10}",
            "cuda_driver": f"{drv // 1000}.{drv % 1000 // 10}",
        }
        if self.torch is not None:
            out["torch"] = self.torch.__version__
            out["torch_cuda"] = self.torch.version.cuda
        return out


def _torch_cuda() -> Any:
    """The torch module when it is importable and sees CUDA, else None."""
    try:
        import torch
    except Exception:  # noqa: BLE001 - a broken torch install is the same as none here
        return None
    return torch if torch.cuda.is_available() else None


def measure_copy_bandwidth(gpu: _Gpu, nbytes: int = COPY_BYTES, reps: int = 10) -> float:
    """Device-to-device copy bandwidth in bytes/s: (bytes read + bytes written) / median time."""
    nbytes = int(min(nbytes, gpu.free_bytes() // 8))
    src, dst = gpu.empty_bytes(nbytes), gpu.empty_bytes(nbytes)
    if gpu.arrays == "torch":
        src.fill_(1)

        def copy() -> None:
            dst.copy_(src)
    else:
        cp = gpu.cp
        src.fill(1)

        def copy() -> None:
            cp.cuda.runtime.memcpyAsync(
                dst.data.ptr,
                src.data.ptr,
                nbytes,
                cp.cuda.runtime.memcpyDeviceToDevice,
                cp.cuda.get_current_stream().ptr,
            )

    ms, _ = time_gpu(copy, gpu.clock, reps=reps, warmup=3)
    return 2 * nbytes / (ms * 1e-3)


# --------------------------------------------------------------------------------------------
# Rows


def _new_row(w: Workload) -> dict[str, Any]:
    return {
        "fft_size": w.fft_size,
        "variant": w.variant,
        "dtype": w.dtype,
        "L": w.L,
        "B": w.B,
        "H": w.H,
        "scale": w.scale,
        "route": None,
        "ms": dict.fromkeys(IMPLS),
        "wall_ms": dict.fromkeys(IMPLS),
        "relerr": dict.fromkeys(IMPLS),
        "peak_extra_MB_unscaled": dict.fromkeys(IMPLS),
        "speedup": dict.fromkeys(IMPLS[1:]),
        "hbm_floor_ms": None,
        "efficiency": None,
        "bytes_moved": None,
        "nan_free": None,
        "ref_sequences": None,
        "notes": list(w.notes),
        "errors": {},
    }


def _reference(w: Workload, inp: _Inputs, row: dict[str, Any]) -> tuple[np.ndarray, tuple]:
    """float64 ground truth on the first few sequences, from the same rounded inputs.

    Long rows use :func:`fft_reference` on fewer sequences, which stays fast at N = 4M.
    """
    from . import reference

    nb, nh = REF_SLICE_LONG if is_long(w.fft_size) else REF_SLICE
    nb, nh = min(w.B, nb), min(w.H, nh)
    idx = (slice(0, nb), slice(0, nh))
    gates = {name: _host64(g[idx]) for name, g in inp.gates().items()}
    u64, k64 = _host64(inp.u[idx]), _host64(inp.k[:nh])
    if is_long(w.fft_size):
        ref = fft_reference(
            u64, k64, w.fft_size, w.mode, gates.get("pregate"), gates.get("postgate")
        )
    else:
        ref = reference.fftconv_direct(u64, k64, mode=w.mode, **gates)
    row["ref_sequences"] = nb * nh
    return ref, idx


def _measure(
    row: dict[str, Any],
    name: str,
    build: Callable[[], _Impl],
    timer: Callable[[Callable[[], Any]], tuple[float, float | None]],
    ref: np.ndarray,
    idx: tuple,
    any_nan: Callable[[Any], bool] | None = None,
    peak_mb: Callable[[Callable[[], Any]], float] | None = None,
) -> None:
    """Build, check against the reference, measure peak memory of one warm call, then time."""
    try:
        impl = build()
        host64 = impl.host64 or _host64
        errs = []
        if impl.check is not None:
            y = impl.check()
            if any_nan is not None:
                row["nan_free"] = not any_nan(y)
            errs.append(relerr(host64(y[idx]), ref))
            del y
        row["route"] = impl.route or row["route"]
        y = impl.run()
        errs.append(relerr(host64(y[idx]), ref))
        del y
        row["relerr"][name] = float(np.max(errs))  # NaN stays NaN
        if peak_mb is not None:
            row["peak_extra_MB_unscaled"][name] = round(peak_mb(impl.run), 3)
        row["ms"][name], row["wall_ms"][name] = timer(impl.run)
    except Exception as exc:  # noqa: BLE001 - one failing implementation must not stop the run
        row["errors"][name] = f"{type(exc).__name__}: {exc}"[:400]


def _gpu_row(gpu: _Gpu, w: Workload, cfg: BenchConfig) -> dict[str, Any]:
    """Measure one workload on the GPU: cufftconv, PyTorch and CuPy side by side."""
    gpu.release()
    b, h = fit_memory(w.B, w.H, w.fft_size, gpu.free_bytes())
    if (b, h) != (w.B, w.H):
        factor = w.report_B * w.report_H / (b * h)
        note = f"reduced to B={b}, H={h} to fit GPU memory; times scaled x{factor:g}"
        w = replace(w, B=b, H=h, notes=(*w.notes, note))
    row = _new_row(w)
    shape = (w.B, w.H, w.L)
    inp = _Inputs(gpu.randn(shape, w.dtype), gpu.randn((w.H, w.L), "float32", 1 / math.sqrt(w.L)))
    if w.gated:
        inp.pre, inp.post = gpu.randn(shape, w.dtype), gpu.randn(shape, w.dtype)
    ref, idx = _reference(w, inp, row)

    def timer(fn: Callable[[], Any]) -> tuple[float, float]:
        return time_gpu(fn, gpu.clock, reps=cfg.reps, warmup=cfg.warmup, flush=gpu.flush)

    _measure(
        row,
        "cufftconv",
        lambda: _cufftconv_impl(w, inp, gpu.full_nan(inp.u), None, cfg.path),
        timer,
        ref,
        idx,
        gpu.any_nan,
        gpu.peak_extra_mb,
    )
    gpu.release()
    peak = gpu.peak_extra_mb
    if gpu.torch is not None:
        _measure(row, "torch", lambda: _torch_impl(gpu.torch, w, inp), timer, ref, idx, None, peak)
        gpu.release()
    _measure(row, "cupy", lambda: _cupy_impl(gpu.cp, w, inp), timer, ref, idx, None, peak)
    return row


def _cpu_row(rng: np.random.Generator, w: Workload, cfg: BenchConfig) -> dict[str, Any]:
    """Measure one workload on the host: the cufftconv NumPy path, NumPy and SciPy."""
    if w.dtype == "bfloat16":
        raise _Skip("bfloat16 needs PyTorch on a GPU (NumPy has no bfloat16)")
    if w.fft_size > CPU_MAX_N:
        raise _Skip(f"N > {CPU_MAX_N} is too slow on the NumPy path: long rows need a GPU")
    row = _new_row(w)
    shape = (w.B, w.H, w.L)

    def randn(s: tuple[int, ...]) -> np.ndarray:
        return rng.standard_normal(s, dtype=np.float32).astype(w.dtype)

    k = rng.standard_normal((w.H, w.L), dtype=np.float32) / np.float32(math.sqrt(w.L))
    inp = _Inputs(randn(shape), k)
    if w.gated:
        inp.pre, inp.post = randn(shape), randn(shape)
    ref, idx = _reference(w, inp, row)

    def timer(fn: Callable[[], Any]) -> tuple[float, None]:
        return time_cpu(fn, reps=cfg.reps, warmup=cfg.warmup)

    out = np.full(shape, np.nan, dtype=w.dtype)  # poisoned: unwritten elements show
    _measure(
        row,
        "cufftconv",
        lambda: _cufftconv_impl(w, inp, out, "cpu"),
        timer,
        ref,
        idx,
        lambda y: bool(np.isnan(y).any()),
        host_peak_extra_mb,
    )
    peak = host_peak_extra_mb
    _measure(row, "numpy", lambda: _numpy_impl(w, inp), timer, ref, idx, None, peak)
    _measure(row, "scipy", lambda: _scipy_impl(w, inp), timer, ref, idx, None, peak)
    return row


def finish_row(row: dict[str, Any], w: Workload, bandwidth: float | None) -> dict[str, Any]:
    """Scale measured times to report_B, report_H; add floor, efficiency and speedups."""
    for table in (row["ms"], row["wall_ms"]):
        for name, ms in table.items():
            table[name] = None if ms is None else ms * w.scale
    if bandwidth:
        nbytes = bytes_moved(w.report_B, w.report_H, w.L, w.variant, ITEMSIZE[w.dtype])
        row["bytes_moved"] = nbytes
        row["hbm_floor_ms"] = hbm_floor_ms(nbytes, bandwidth)
    ms = row["ms"]["cufftconv"]
    row["efficiency"] = efficiency(row["hbm_floor_ms"], ms)
    for name in row["speedup"]:
        row["speedup"][name] = speedup(row["ms"][name], ms)
    wall = row["wall_ms"]["cufftconv"]
    if ms is not None and wall is not None and wall > 0.2 and ms < 0.5 * wall:
        row["notes"].append("event time < half the wall time: work on another stream?")
    return row


# --------------------------------------------------------------------------------------------
# The run


def run_benchmark(cfg: BenchConfig) -> dict[str, Any]:
    """Run every workload, writing the JSON after each row (a timeout keeps what was done)."""
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = cfg.out_dir / JSON_NAME
    start = time.perf_counter()
    workloads = plan_workloads(cfg.sizes, cfg.variants, cfg.dtypes, cfg.B, cfg.H)
    if cfg.gpu:
        gpu = _Gpu(cfg.arrays)
        gpu.seed(cfg.seed)
        result = _header(cfg, gpu.device_info(), gpu.versions())
        bandwidth = measure_copy_bandwidth(gpu)
        result["copy_bandwidth_TBps"] = round(bandwidth / 1e12, 4)
        print(f"{result['device']}: device copy bandwidth {bandwidth / 1e12:.3f} TB/s", flush=True)

        def row_fn(w: Workload) -> dict[str, Any]:
            return _gpu_row(gpu, w, cfg)
    else:
        rng = np.random.default_rng(cfg.seed)
        cpu = {
            "device": f"CPU {platform.machine()}, {os.cpu_count()} cores",
            "compute_capability": None,
        }
        result = _header(cfg, cpu, {})
        bandwidth = None

        def row_fn(w: Workload) -> dict[str, Any]:
            return _cpu_row(rng, w, cfg)

    progress = _Progress(len(workloads))
    for w in workloads:
        elapsed = time.perf_counter() - start
        if cfg.max_seconds is not None and elapsed > cfg.max_seconds:
            _skip(result, w, f"time budget of {cfg.max_seconds:g} s spent")
            progress.update(f"{w.label()}: skipped (time budget)")
            continue
        try:
            row = finish_row(row_fn(w), w, bandwidth)
        except _Skip as exc:
            _skip(result, w, str(exc))
            progress.update(f"{w.label()}: skipped ({exc})")
            continue
        result["rows"].append(row)
        result["elapsed_s"] = round(time.perf_counter() - start, 1)
        _write_json(result, json_path)
        progress.update(_row_summary(w, row))
    progress.close()
    result["elapsed_s"] = round(time.perf_counter() - start, 1)
    _write_json(result, json_path)
    return result


def _skip(result: dict[str, Any], w: Workload, reason: str) -> None:
    result["skipped"].append(
        {"fft_size": w.fft_size, "variant": w.variant, "dtype": w.dtype, "reason": reason}
    )


def _row_summary(w: Workload, row: dict[str, Any]) -> str:
    ms = row["ms"]["cufftconv"]
    text = f"{w.label()}: cufftconv {_fmt_ms(ms)} ms"
    if row["errors"]:
        text += f" (errors: {', '.join(row['errors'])})"
    return text


def _header(cfg: BenchConfig, device: dict[str, Any], versions: dict[str, Any]) -> dict[str, Any]:
    import cufftconv

    timing = "CUDA events, L2 flushed before each run" if cfg.gpu else "perf_counter"
    return {
        "what": (
            "cufftconv forward FFT convolution beside baselines, measured in one process. "
            f"Times in ms scaled to B={cfg.B}, H={cfg.H} (median of {cfg.reps} runs after "
            f"{cfg.warmup} warm-up, {timing}). u is (B,H,L) in `dtype`, k is (H,L) float32; "
            "conv: circular, L = fft_size; gated: conv with pre- and postgate; causal: "
            "L = fft_size/2. relerr vs float64 reference.fftconv_direct on the first "
            "sequences, from the same rounded inputs (np.fft at fft_size for fft_size >= "
            f"{LONG_FROM}). Long rows (fft_size >= {LONG_FROM}) run at B={LONG_B}, H cut "
            "as N grows. peak_extra_MB_unscaled: peak memory allocated during one warm call "
            "above that in use before (MB of 2**20 bytes, at the B, H run, not scaled); "
            "on the GPU CuPy's pool (memory hook) plus PyTorch's allocator, on the host "
            "tracemalloc."
        ),
        "mode": "gpu" if cfg.gpu else "cpu",
        **device,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "copy_bandwidth_TBps": None,
        "arrays": cfg.arrays,
        "baselines": list(cfg.baselines),
        "report_B": cfg.B,
        "report_H": cfg.H,
        "reps": cfg.reps,
        "warmup": cfg.warmup,
        "seed": cfg.seed,
        "versions": {
            "cufftconv": getattr(cufftconv, "__version__", None),
            "commit": _git_commit(),
            "source": _source_digest(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            **_scipy_version(),
            **versions,
        },
        "argv": cfg.argv,
        "rows": [],
        "skipped": [],
        "elapsed_s": 0.0,
    }


def _scipy_version() -> dict[str, str]:
    try:
        import scipy
    except ImportError:
        return {}
    return {"scipy": scipy.__version__}


def _source_digest() -> str | None:
    """The code the run used (cufftconv.sources.source_digest), whatever git says: a checkout
    copied without its history still names its tree."""
    try:
        from .sources import source_digest

        return source_digest()
    except OSError:
        return None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _write_json(result: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str) + "\n")
    os.replace(tmp, path)


class _Progress:
    """tqdm bar on a terminal, else one line per row on stderr (readable in a log file)."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.t0 = total, 0, time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="row", file=sys.stderr)
            except ImportError:
                pass

    def update(self, text: str) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(text[:60])
            self.bar.update(1)
        else:
            elapsed = time.perf_counter() - self.t0
            print(
                f"[{self.done}/{self.total} {elapsed:6.1f} s] {text}", file=sys.stderr, flush=True
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------------------------
# Table, Markdown and plot


def _fmt_ms(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.0f}" if x >= 1000 else f"{x:.4g}"


def _fmt(x: float | None, spec: str, suffix: str = "", factor: float = 1.0) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    return f"{x * factor:{spec}}{suffix}"


def _fmt_x(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.2f}x" if x >= 0.1 else f"{x:.2g}x"


def _fmt_mb(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


def _has_peaks(result: dict[str, Any]) -> bool:
    return any(
        v is not None
        for r in result["rows"]
        for v in (r.get("peak_extra_MB_unscaled") or {}).values()
    )


def peak_cells(row: dict[str, Any], baseline: str) -> tuple[str, str]:
    """Peak extra MB (unscaled) as "ours / baseline", and baseline / ours (x less memory)."""
    peak = row.get("peak_extra_MB_unscaled") or {}
    ours, base = peak.get("cufftconv"), peak.get(baseline)
    if ours is None and base is None:
        return "n/a", "n/a"
    return f"{_fmt_mb(ours)} / {_fmt_mb(base)}", _fmt_x(speedup(base, ours))


def table_cells(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Column headers and the cells of every row, shared by the console and Markdown tables."""
    b1, b2 = result["baselines"]
    headers = [
        "N",
        "variant",
        "dtype",
        "route",
        "ms cufftconv",
        f"ms {b1}",
        f"ms {b2}",
        "floor ms",
        "eff",
        f"x {b1}",
        f"x {b2}",
        "relerr",
    ]
    peaks = _has_peaks(result)  # JSON from before peak memory was measured has none
    if peaks:
        headers += [f"peak MB (ours / {b1})", f"mem x {b1}"]
    rows = []
    for r in result["rows"]:
        ms = r["ms"]
        route = r["route"] or ("error" if "cufftconv" in r["errors"] else "n/a")
        if r.get("nan_free") is False:
            route += " NaN!"
        rows.append(
            [
                str(r["fft_size"]),
                r["variant"],
                r["dtype"],
                route,
                _fmt_ms(ms["cufftconv"]),
                _fmt_ms(ms[b1]),
                _fmt_ms(ms[b2]),
                _fmt_ms(r["hbm_floor_ms"]),
                _fmt(r["efficiency"], ".1f", "%", 100.0),
                _fmt_x(r["speedup"][b1]),
                _fmt_x(r["speedup"][b2]),
                _fmt(r["relerr"]["cufftconv"], ".1e"),
            ]
            + (list(peak_cells(r, b1)) if peaks else [])
        )
    return headers, rows


PEAK_NOTE = (
    "peak MB: memory allocated during one warm call above that in use before, at the B, H "
    "run (not scaled); mem x: the baseline's peak / ours"
)


def row_notes(result: dict[str, Any]) -> list[str]:
    """One line per note, error and skipped row, for below the tables."""
    lines = [PEAK_NOTE] if _has_peaks(result) else []
    for r in result["rows"]:
        label = f"N={r['fft_size']} {r['variant']} {r['dtype']}"
        lines += [f"{label}: {note}" for note in r["notes"]]
        lines += [f"{label}: {name} failed: {err}" for name, err in r["errors"].items()]
    lines += [
        f"N={s['fft_size']} {s['variant']} {s['dtype']}: skipped: {s['reason']}"
        for s in result["skipped"]
    ]
    return lines


def format_table(result: dict[str, Any]) -> str:
    """The console table: fixed-width columns, text left-aligned, numbers right-aligned."""
    headers, rows = table_cells(result)
    widths = [max(len(c) for c in col) for col in zip(headers, *rows, strict=True)]
    left = {1, 2, 3}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(wd) if i in left else c.rjust(wd)
            for i, (c, wd) in enumerate(zip(cells, widths, strict=True))
        )

    out = [line(headers), "  ".join("-" * wd for wd in widths), *(line(r) for r in rows)]
    return "\n".join(out + [f"  {n}" for n in row_notes(result)])


def _summary_line(result: dict[str, Any]) -> str:
    v = result["versions"]
    bw = result["copy_bandwidth_TBps"]
    parts = [
        f"{result['device']}"
        + (f" (sm {result['compute_capability']})" if result.get("compute_capability") else ""),
        f"{result['date']}",
        f"arrays: {result['arrays']}",
        f"times in ms scaled to B={result['report_B']}, H={result['report_H']}",
        f"median of {result['reps']} runs",
        f"copy bandwidth {bw} TB/s" if bw else "no HBM floor (host run)",
        ", ".join(
            f"{k} {v[k]}"
            for k in (
                "cufftconv",
                "commit",
                "source",
                "torch",
                "cupy",
                "cuda_runtime",
                "numpy",
                "scipy",
            )
            if v.get(k)
        ),
    ]
    return "; ".join(parts)


def render_markdown(result: dict[str, Any]) -> str:
    """A RESULTS.md section: heading, what was run, the table and the notes."""
    headers, rows = table_cells(result)
    date = str(result["date"])[:10]
    path = "" if result["mode"] == "gpu" else " (NumPy path)"
    out = [
        f"## {result['device']}{path}, {date}",
        "",
        _summary_line(result) + ".",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i in (1, 2, 3) else "---:" for i in range(len(headers))) + "|",
    ]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    notes = row_notes(result)
    if notes:
        out += ["", *(f"- {n}" for n in notes)]
    return "\n".join(out) + "\n"


def write_results_md(json_path: str | Path, md_path: str | Path) -> str:
    """Render a bench JSON into a Markdown section of ``md_path`` and return the section.

    A section with the same heading (device, mode, date) is replaced; otherwise the section
    is appended. A missing file is created with a title.
    """
    result = json.loads(Path(json_path).read_text())
    section = render_markdown(result)
    md_path = Path(md_path)
    text = md_path.read_text() if md_path.exists() else "# Benchmark results\n"
    md_path.write_text(_merge_section(text, section))
    return section


def _merge_section(text: str, section: str) -> str:
    heading = section.splitlines()[0]
    lines = text.splitlines()
    if heading in lines:
        start = lines.index(heading)
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        tail = "\n".join(lines[end:])
        head = "\n".join(lines[:start])
        return head + ("\n" if head else "") + section + ("\n" + tail + "\n" if tail else "")
    return text.rstrip("\n") + "\n\n" + section


_COLORS = {
    "cufftconv": "tab:red",
    "torch": "tab:blue",
    "cupy": "tab:green",
    "numpy": "tab:blue",
    "scipy": "tab:green",
}
_MARKERS = {"conv": "o", "gated": "s", "causal": "^"}
_STYLES = {"conv": "-", "gated": "-.", "causal": ":"}  # "--" is the HBM floor's


def write_plot(result: dict[str, Any], path: Path) -> bool:
    """Time vs FFT size, log-log, one panel per dtype; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    dtypes = [d for d in DTYPES if any(r["dtype"] == d for r in result["rows"])]
    if not dtypes:
        return False
    fig, axes = plt.subplots(1, len(dtypes), figsize=(6.5 * len(dtypes), 5), squeeze=False)
    for ax, dtype in zip(axes[0], dtypes, strict=True):
        _plot_panel(ax, result, dtype)
    fig.suptitle(f"{result['device']}, {str(result['date'])[:10]}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_panel(ax: Any, result: dict[str, Any], dtype: str) -> None:
    impls = ("cufftconv", *result["baselines"])
    for variant in VARIANTS:
        rows = sorted(
            (r for r in result["rows"] if r["dtype"] == dtype and r["variant"] == variant),
            key=lambda r: r["fft_size"],
        )
        for impl in impls:
            pts = [(r["fft_size"], r["ms"][impl]) for r in rows if r["ms"][impl]]
            if pts:
                ax.plot(
                    *zip(*pts, strict=True),
                    _STYLES[variant],
                    color=_COLORS[impl],
                    marker=_MARKERS[variant],
                    label=f"{impl} {variant}",
                )
        floor = [(r["fft_size"], r["hbm_floor_ms"]) for r in rows if r["hbm_floor_ms"]]
        if floor:
            ax.plot(
                *zip(*floor, strict=True),
                "--",
                color="black",
                linewidth=1,
                marker=_MARKERS[variant],
                markerfacecolor="none",
                label=f"HBM floor {variant}",
            )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("FFT size N")
    ax.set_ylabel(f"ms (B={result['report_B']}, H={result['report_H']})")
    ax.set_title(dtype)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)


# --------------------------------------------------------------------------------------------
# Command line


def _int_arg(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _fft_size(text: str) -> int:
    n = _int_arg(text)
    if n < 8 or n > MAX_FFT_SIZE or n & (n - 1):
        raise argparse.ArgumentTypeError(f"FFT sizes are powers of two from 8 to 2**24, got {n}")
    return n


def _positive_int(text: str) -> int:
    n = _int_arg(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _nonnegative_int(text: str) -> int:
    n = _int_arg(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def _positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return x


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cufftconv bench",
        description="Time cufftconv beside PyTorch and CuPy FFT convolutions (NumPy and SciPy "
        "without a GPU). Writes a table, OUT/bench.json and OUT/bench.png.",
    )
    p.add_argument(
        "--sizes",
        type=_fft_size,
        nargs="+",
        metavar="N",
        help=f"FFT sizes (default {' '.join(map(str, DEFAULT_SIZES))}; "
        f"{' '.join(map(str, CPU_SIZES))} without a GPU); sizes >= {LONG_FROM} are long rows",
    )
    p.add_argument(
        "--long",
        action="store_true",
        help=f"long rows {' '.join(map(str, LONG_SIZES))} (B={LONG_B}, H cut as N grows, "
        "times scaled to B, H), added to --sizes; alone, only these",
    )
    p.add_argument("--variants", nargs="+", choices=VARIANTS, help="default: all")
    p.add_argument(
        "--dtypes",
        nargs="+",
        choices=DTYPES,
        help=f"default: {' '.join(DEFAULT_DTYPES)} (float16 without a GPU)",
    )
    p.add_argument("--B", type=_positive_int, help="batch (default 64; 2 without a GPU)")
    p.add_argument("--H", type=_positive_int, help="channels (default 768; 8 without a GPU)")
    p.add_argument("--reps", type=_positive_int, help="timed runs per row (default 30; 5 on CPU)")
    p.add_argument("--warmup", type=_nonnegative_int, help="warm-up runs (default 5; 1 on CPU)")
    p.add_argument("--quick", action="store_true", help="smoke run: small sizes, fewer reps")
    p.add_argument("--out", type=Path, default=Path("bench_out"), help="output folder")
    p.add_argument("--cpu", action="store_true", help="time the NumPy path even with a GPU")
    p.add_argument(
        "--arrays",
        choices=("auto", "torch", "cupy"),
        default="auto",
        help="arrays fed to cufftconv on the GPU (auto: torch when it sees CUDA)",
    )
    p.add_argument("--seed", type=int, help="random seed (default: fresh, recorded in the JSON)")
    p.add_argument(
        "--path", help="force one dispatch row for cufftconv, e.g. cufft (default: the table's)"
    )
    p.add_argument(
        "--max-seconds", type=_positive_float, help="stop starting new rows after this many seconds"
    )
    p.add_argument(
        "--results-md",
        type=Path,
        metavar="PATH",
        help="also render the results into this Markdown file (section replaced)",
    )
    p.add_argument(
        "--from-json",
        type=Path,
        metavar="JSON",
        help="no timing: only render JSON into --results-md",
    )
    return p


def select_sizes(
    given: Sequence[int] | None, long: bool, default: Sequence[int]
) -> tuple[int, ...]:
    """Sorted FFT sizes: --sizes (else the default, unless --long), plus LONG_SIZES for --long."""
    base = tuple(given or (() if long else default))
    return tuple(sorted(set(base + (LONG_SIZES if long else ()))))


def resolve_config(args: argparse.Namespace, gpu: bool, argv: list[str]) -> BenchConfig:
    """Fill the defaults that depend on the mode (GPU or host) and on --quick."""
    if gpu:
        sizes = QUICK_SIZES if args.quick else DEFAULT_SIZES
        batch, heads, reps, warmup = 64, 768, (10 if args.quick else 30), (3 if args.quick else 5)
        arrays = args.arrays if args.arrays != "auto" else ("torch" if _torch_cuda() else "cupy")
        dtypes = DEFAULT_DTYPES
    else:
        sizes = CPU_QUICK_SIZES if args.quick else CPU_SIZES
        batch, heads = (2, 4) if args.quick else (2, 8)
        reps, warmup, arrays = (3 if args.quick else 5), 1, "numpy"
        dtypes = ("float16",)  # NumPy has no bfloat16
    return BenchConfig(
        gpu=gpu,
        arrays=arrays,
        sizes=select_sizes(args.sizes, args.long, sizes),
        variants=tuple(dict.fromkeys(args.variants or VARIANTS)),
        dtypes=tuple(dict.fromkeys(args.dtypes or dtypes)),
        B=args.B or batch,
        H=args.H or heads,
        reps=args.reps or reps,
        warmup=warmup if args.warmup is None else args.warmup,
        out_dir=args.out,
        seed=args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little"),
        max_seconds=args.max_seconds,
        results_md=args.results_md,
        path=args.path,
        argv=argv,
    )


def _gpu_available() -> bool:
    try:
        import cufftconv

        return bool(cufftconv.gpu_available())
    except Exception:  # noqa: BLE001 - anything wrong with the GPU stack means the host path
        return False


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.from_json is not None and args.results_md is None:
        parser.error("--from-json needs --results-md PATH")
    if args.arrays == "torch" and (args.cpu or not _gpu_available()):
        parser.error("--arrays torch needs a CUDA GPU (and no --cpu)")
    return args


def main(argv: list[str] | None = None) -> int:
    """``python -m cufftconv bench [options]``; returns the exit status.

    0 when every row ran; 1 when cufftconv failed or left NaN in some row; 2 for bad arguments.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parse(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    if args.from_json is not None:
        print(write_results_md(args.from_json, args.results_md))
        return 0
    gpu = not args.cpu and _gpu_available()
    if not gpu:
        print(CPU_FORCED_MESSAGE if args.cpu else NO_GPU_MESSAGE, flush=True)
    cfg = resolve_config(args, gpu, argv)
    result = run_benchmark(cfg)
    print()
    print(_summary_line(result))
    print(format_table(result))
    json_path = cfg.out_dir / JSON_NAME
    print(f"\nwrote {json_path}")
    if write_plot(result, cfg.out_dir / PNG_NAME):
        print(f"wrote {cfg.out_dir / PNG_NAME}")
    else:
        print("matplotlib not importable: no plot")
    if cfg.results_md is not None:
        write_results_md(json_path, cfg.results_md)
        print(f"wrote {cfg.results_md}")
    failed = [r for r in result["rows"] if "cufftconv" in r["errors"] or r["nan_free"] is False]
    if failed:
        print(f"cufftconv failed or left NaN in {len(failed)} row(s)")
    return 1 if failed else 0
