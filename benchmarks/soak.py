#!/usr/bin/env python3
"""Soak test: many calls with random valid shapes in one process; results checked, memory watched.

    python benchmarks/soak.py [--calls 10000] [--seed S] [--json soak.json]

Each call draws a random valid signature: B in 1..8, H in 1..40, L in 1..40000 (biased to
powers of two and to odd and prime lengths), Lk <= L and sometimes > L (every mode but
circular), every mode (circular mostly with a power-of-two L), gates (none, pre, post, both),
float16 / bfloat16 / float32 / float64, CuPy and PyTorch inputs, and one of: the functional
``cufftconv.fftconv`` (sometimes with ``out=``), an ``FFTConv`` plan holding k (called 1-3
times) or a plan taking k per call. A sample of calls (every ``--check-every``-th call, plus
every float32/float64 call with a small output) is checked against
``cufftconv.reference.fftconv_direct`` in float64 with the bound of ``python -m cufftconv
check`` (``cufftconv.cli.error_bound``).

Memory is recorded after a warm-up (which compiles every kernel the draws can reach) and at
the end, each time after dropping the plan caches (cufftconv's and cupy.fft's) and a garbage
collection, so that what remains is what calls leaked. Checked tolerances (see
``TOLERANCES``):

* CuPy pool ``used_bytes``: +16 MiB. After the plan caches are dropped only per-FFT-size
  tables stay (digit-reversal indices and twiddles: under 1 MiB per size and row).
* CuPy pool ``total_bytes`` (used + cached free blocks): twice the largest call's working set
  (estimated per call below) + 64 MiB. Cached blocks are not leaked (the trimmed free memory
  below shows they go back); the pool grows when a call's buffers fit no cached block, so it
  can hold one earlier set of blocks besides the largest call's.
* ``torch.cuda.memory_allocated``: +1 MiB (every tensor of the calls is gone).
* ``torch.cuda.memory_reserved``: four times the largest PyTorch call's tensors + 64 MiB (the
  caching allocator keeps segments of earlier calls that u, gates and out did not fit).
* ``cudaMemGetInfo`` free memory after both pools are trimmed: -256 MiB (code of CUDA
  modules loaded lazily, e.g. cuFFT kernels for new sizes; a leak of any size visible to the
  pools is caught above).
* Host RSS (``VmRSS``) after ``malloc_trim(0)``: +50 MiB after the warm-up (the trim returns
  the heap that the float64 reference checks freed, so what is left is memory still held).

Exit status: 0 when every check passed and memory stayed within the tolerances, 1 otherwise,
3 when ``--max-seconds`` stopped the run before ``--calls`` calls. Without a GPU it runs on the
NumPy path with small sizes (``--calls 20`` is the CI smoke test).
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import argparse
import gc
import json
import math
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import cufftconv
from cufftconv import dispatch, reference
from cufftconv.cli import error_bound
from cufftconv.dtypes import to_compute
from cufftconv.validation import MODES, build_spec, linear_length

MiB = 1 << 20
TOLERANCES = {
    "pool_used_growth": 16 * MiB,
    "pool_total_slack": 64 * MiB,  # + twice the largest call's working set
    "torch_allocated_growth": 1 * MiB,
    "torch_reserved_slack": 64 * MiB,  # + four times the largest PyTorch call's tensors
    "device_free_drop": 256 * MiB,
    "rss_growth": 50 * MiB,  # after malloc_trim
}
DTYPE_WEIGHTS = {"float16": 0.35, "bfloat16": 0.25, "float32": 0.25, "float64": 0.15}
SMALL_OUTPUT = 1 << 15  # float32/float64 calls with at most this many outputs are all checked


# ------------------------------------------------------------------------------------------------
# Random signatures
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Draw:
    u_shape: tuple[int, ...]
    k_shape: tuple[int, ...]
    mode: str
    dtype: str
    k_dtype: str
    pregate: bool
    postgate: bool
    kind: str  # "cupy", "torch" or "numpy"
    call: str  # "fn", "fn-out", "plan-k" (plan holds k) or "plan" (k per call)
    repeats: int = 1  # plan calls with this signature

    @property
    def out_shape(self) -> tuple[int, ...]:
        return build_spec(self.u_shape, self.k_shape, mode=self.mode, dtype=self.dtype,
                          k_dtype=self.k_dtype).out_shape


def _primes(limit: int) -> np.ndarray:
    sieve = np.ones(limit + 1, bool)
    sieve[:2] = False
    for p in range(2, int(limit**0.5) + 1):
        if sieve[p]:
            sieve[p * p :: p] = False
    return np.flatnonzero(sieve)


class Sampler:
    def __init__(self, rng: np.random.Generator, kinds: dict[str, list[str]], max_len: int,
                 max_b: int, max_h: int) -> None:
        self.rng, self.kinds, self.max_len = rng, kinds, max_len
        self.max_b, self.max_h = max_b, max_h
        self.primes = _primes(max(max_len, 2))
        self.dtypes = [d for d in DTYPE_WEIGHTS if kinds.get(d)]
        w = np.array([DTYPE_WEIGHTS[d] for d in self.dtypes])
        self.dtype_p = w / w.sum()

    def length(self) -> int:
        r, top = self.rng.random(), self.max_len
        if r < 0.35:  # powers of two: the fused/long kernels' exact sizes
            return 1 << int(self.rng.integers(0, int(math.log2(top)) + 1))
        if r < 0.55:  # primes: Bluestein sizes for cuFFT, ragged tails for the kernels
            return int(self.rng.choice(self.primes))
        if r < 0.7:
            return int(self.rng.integers(0, (top + 1) // 2)) * 2 + 1  # odd
        return int(self.rng.integers(1, top + 1))

    def draw(self) -> Draw:
        rng = self.rng
        dtype = str(rng.choice(self.dtypes, p=self.dtype_p))
        mode = str(rng.choice(MODES))
        L = self.length()
        if mode == "circular" and rng.random() < 0.8:  # the fused rows' circular sizes
            L = 1 << int(rng.integers(0, int(math.log2(self.max_len)) + 1))
        if mode != "circular" and rng.random() < 0.25:
            Lk = int(rng.integers(L + 1, 2 * L + 2))  # longer than u
        else:
            Lk = int(rng.integers(1, L + 1))
        B, H = int(rng.integers(1, self.max_b + 1)), int(rng.integers(1, self.max_h + 1))
        r = rng.random()
        k_shape = (H, Lk) if r < 0.7 else (Lk,) if r < 0.85 else (1, H, Lk)
        u_shape = (B, H, L) if rng.random() < 0.9 else (H, L)
        if len(k_shape) > len(u_shape):
            k_shape = k_shape[1:]
        gates = int(rng.integers(4))  # none, pre, post, both
        k_dtype = "float64" if dtype == "float64" and rng.random() < 0.5 else "float32"
        kind = str(rng.choice(self.kinds[dtype]))
        r = rng.random()
        call = "fn" if r < 0.5 else "fn-out" if r < 0.6 else "plan-k" if r < 0.9 else "plan"
        repeats = int(rng.integers(1, 4)) if call.startswith("plan") else 1
        return Draw(u_shape, k_shape, mode, dtype, k_dtype, bool(gates & 1), bool(gates & 2),
                    kind, call, repeats)


def working_set(d: Draw) -> int:
    """Upper estimate of one call's device bytes: operands, output and, for the FFT paths, six
    (B * H, n) buffers in the compute precision (padded input, its spectrum, the inverse,
    cuFFT's work area and the conversions), n the next power of two of the linear length."""
    item = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}
    lead = math.prod(np.broadcast_shapes(d.u_shape[:-1], d.k_shape[:-1]))
    L, Lk = d.u_shape[-1], d.k_shape[-1]
    n = 1 << (max(linear_length(L, Lk, d.mode), 1) - 1).bit_length()
    compute = 8 if "float64" in (d.dtype, d.k_dtype) else 4
    ops = item[d.dtype] * (math.prod(d.u_shape) * (1 + d.pregate) + lead * L * (2 + d.postgate))
    return ops + item[d.k_dtype] * math.prod(d.k_shape) + 6 * lead * n * compute


# ------------------------------------------------------------------------------------------------
# Operands
# ------------------------------------------------------------------------------------------------
class Backend:
    """Random operands of each kind made where they live (no host round trip)."""

    def __init__(self, seed: int) -> None:
        self.gpu = cufftconv.gpu_available()
        self.cp: Any = None
        self.torch: Any = None
        self.np_rng = np.random.default_rng(seed + 1)
        if self.gpu:
            import cupy

            self.cp = cupy
            cupy.random.seed(seed)
        try:
            import torch

            if not self.gpu or torch.cuda.is_available():
                self.torch = torch
                torch.manual_seed(seed)
        except ImportError:
            pass
        self.device = "cuda" if self.gpu else "cpu"

    def kinds(self) -> dict[str, list[str]]:
        base = ["cupy"] if self.gpu else ["numpy"]
        t = ["torch"] if self.torch is not None else []
        # CuPy and NumPy have no bfloat16: bfloat16 comes from PyTorch only.
        return {"float16": base + t, "float32": base + t, "float64": base + t, "bfloat16": t}

    def randn(self, shape: tuple[int, ...], dtype: str, kind: str) -> Any:
        if kind == "torch":
            return self.torch.randn(shape, dtype=getattr(self.torch, dtype), device=self.device)
        if kind == "cupy":
            cp = self.cp
            return cp.random.standard_normal(shape, dtype=cp.float32).astype(dtype)
        return self.np_rng.standard_normal(shape).astype(dtype)

    def ones(self, shape: tuple[int, ...], dtype: str, kind: str) -> Any:
        """Operands for the compile sweep: no random generator, which threads would share."""
        if kind == "torch":
            return self.torch.ones(shape, dtype=getattr(self.torch, dtype), device=self.device)
        if kind == "cupy":
            return self.cp.ones(shape, dtype=dtype)
        return np.ones(shape, dtype=dtype)

    def empty(self, shape: tuple[int, ...], dtype: str, kind: str) -> Any:
        if kind == "torch":
            return self.torch.empty(shape, dtype=getattr(self.torch, dtype), device=self.device)
        if kind == "cupy":
            return self.cp.empty(shape, dtype=dtype)
        return np.empty(shape, dtype=dtype)

    def host(self, a: Any, dtype: str) -> np.ndarray:
        """Exact float64 values of an operand or result."""
        if self.torch is not None and isinstance(a, self.torch.Tensor):
            if dtype == "bfloat16":
                bits = a.view(self.torch.int16).cpu().numpy().view(np.uint16)
                return to_compute(bits, "bfloat16", "float64", np)
            return a.cpu().numpy().astype(np.float64)
        if self.cp is not None and isinstance(a, self.cp.ndarray):
            a = a.get()
        return np.asarray(a).astype(np.float64)

    def sync(self) -> None:
        if self.gpu:
            self.cp.cuda.Device().synchronize()
            if self.torch is not None:
                self.torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------------
# Memory figures
# ------------------------------------------------------------------------------------------------
def rss_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def malloc_trim() -> bool:
    """Give freed heap memory back to the OS (glibc), so RSS shows what is still held."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def checkpoint(be: Backend) -> dict[str, Any]:
    """Memory after dropping the plan caches and collecting garbage (so what remains is held by
    something else), then again after trimming both pools."""
    be.sync()
    cufftconv.clear_plan_cache()
    if be.gpu:
        import cupy.fft

        cupy.fft.config.get_plan_cache().clear()
    gc.collect()
    m: dict[str, Any] = {"rss": rss_bytes()}
    m["rss_trimmed"] = rss_bytes() if malloc_trim() else m["rss"]
    if be.gpu:
        cp = be.cp
        pool = cp.get_default_memory_pool()
        m["pool_used"] = int(pool.used_bytes())
        m["pool_total"] = int(pool.total_bytes())
        m["device_free"] = int(cp.cuda.runtime.memGetInfo()[0])
        if be.torch is not None:
            m["torch_allocated"] = int(be.torch.cuda.memory_allocated())
            m["torch_reserved"] = int(be.torch.cuda.memory_reserved())
        pool.free_all_blocks()
        cp.get_default_pinned_memory_pool().free_all_blocks()
        if be.torch is not None:
            be.torch.cuda.empty_cache()
        m["device_free_trimmed"] = int(cp.cuda.runtime.memGetInfo()[0])
        m["device_total"] = int(cp.cuda.runtime.memGetInfo()[1])
    return m


# ------------------------------------------------------------------------------------------------
# One call
# ------------------------------------------------------------------------------------------------
@dataclass
class Stats:
    calls: int = 0
    checks: int = 0
    check_seconds: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)
    worst: dict[str, float] = field(default_factory=dict)  # dtype -> max err / bound
    paths: dict[str, int] = field(default_factory=dict)
    max_working_set: int = 0
    max_torch_bytes: int = 0


def run_draw(d: Draw, be: Backend, stats: Stats, check: bool, sweep: bool = False) -> None:
    """Make operands, call the library ``d.repeats`` times, check the last result if asked."""
    make = be.ones if sweep else be.randn
    u = make(d.u_shape, d.dtype, d.kind)
    k = make(d.k_shape, d.k_dtype, d.kind)
    out_shape = d.out_shape
    pre = make(d.u_shape, d.dtype, d.kind) if d.pregate else None
    post = make(out_shape, d.dtype, d.kind) if d.postgate else None
    stats.max_working_set = max(stats.max_working_set, working_set(d))
    if d.kind == "torch":
        item = 2 if d.dtype in ("float16", "bfloat16") else 4 if d.dtype == "float32" else 8
        nbytes = item * (math.prod(d.u_shape) * (1 + d.pregate)
                         + math.prod(out_shape) * (1 + d.postgate))
        stats.max_torch_bytes = max(stats.max_torch_bytes, nbytes + 8 * math.prod(d.k_shape))
    y: Any = None
    if d.call in ("fn", "fn-out"):
        out = be.empty(out_shape, d.dtype, d.kind) if d.call == "fn-out" else None
        y = cufftconv.fftconv(u, k, mode=d.mode, pregate=pre, postgate=post, out=out)
        spec = build_spec(d.u_shape, d.k_shape, mode=d.mode, dtype=d.dtype, k_dtype=d.k_dtype,
                          pregate_dtype=d.dtype if d.pregate else None,
                          postgate_dtype=d.dtype if d.postgate else None)
        route = dispatch.choose(spec, dispatch.target_device(spec)).name
        stats.calls += 1
    else:
        holds_k = d.call == "plan-k"
        plan = cufftconv.FFTConv(
            d.u_shape, k=k if holds_k else None, k_shape=None if holds_k else d.k_shape,
            dtype=d.dtype, k_dtype=None if holds_k else d.k_dtype, mode=d.mode,
            pregate=d.pregate, postgate=d.postgate,
        )
        route = plan.route
        for _ in range(d.repeats):
            y = plan(u, None if holds_k else k, pregate=pre, postgate=post)
            stats.calls += 1
    key = f"{route} {d.call}"
    stats.paths[key] = stats.paths.get(key, 0) + d.repeats
    if not check:
        return
    t0 = time.perf_counter()
    be.sync()
    ref = reference.fftconv_direct(
        be.host(u, d.dtype), be.host(k, d.k_dtype), mode=d.mode,
        pregate=None if pre is None else be.host(pre, d.dtype),
        postgate=None if post is None else be.host(post, d.dtype),
    )
    yv = be.host(y, d.dtype)
    bound = error_bound(d.dtype, int(np.prod(out_shape)))
    den = float(np.linalg.norm(ref)) or 1.0
    err = float(np.linalg.norm(yv - ref) / den) if yv.shape == ref.shape else math.inf
    if not np.isfinite(err):
        err = math.inf
    stats.checks += 1
    stats.worst[d.dtype] = max(stats.worst.get(d.dtype, 0.0), err / bound)
    if err > bound:
        stats.failures.append({"draw": asdict(d), "rel_err": err, "bound": bound})
    stats.check_seconds += time.perf_counter() - t0


def should_check(i: int, d: Draw, every: int) -> bool:
    small = math.prod(d.out_shape) <= SMALL_OUTPUT and d.dtype in ("float32", "float64")
    return small or i % every == 0


def warm_up_sweep(be: Backend, kinds: dict[str, list[str]], max_len: int) -> int:
    """One tiny call per (dtype, gates, FFT size class): compiles every kernel that the draws can
    reach, in parallel threads (NVRTC releases the GIL), before memory is first measured."""
    draws = []
    top = int(math.log2(max_len))
    lengths = sorted({1 << e for e in range(top + 1)} | {max_len // 2, max_len})
    for dtype, ks in kinds.items():
        for L in lengths:
            for gates in range(4):
                for mode in ("causal", "full", "circular"):
                    if mode == "circular" and L & (L - 1):
                        continue
                    draws.append(Draw((1, 1, L), (1, L), mode, dtype, "float32", bool(gates & 1),
                                      bool(gates & 2), ks[0], "fn"))
    stats = Stats()
    if not be.gpu:
        return 0  # nothing to compile on the NumPy path
    dev = int(be.cp.cuda.Device().id)

    def one(d: Draw) -> None:
        with be.cp.cuda.Device(dev):
            run_draw(d, be, stats, check=False, sweep=True)

    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as ex:
        list(ex.map(one, draws))
    be.sync()
    return len(draws)


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------
def memory_verdict(before: dict[str, Any], after: dict[str, Any], stats: Stats) -> list[str]:
    """The tolerances that were exceeded (empty when memory stayed within bounds)."""
    bad = []

    def grew(key: str) -> int | None:
        if before.get(key) is None or after.get(key) is None:
            return None
        return int(after[key]) - int(before[key])

    checks = [
        ("pool_used", TOLERANCES["pool_used_growth"]),
        ("pool_total", 2 * stats.max_working_set + TOLERANCES["pool_total_slack"]),
        ("torch_allocated", TOLERANCES["torch_allocated_growth"]),
        ("torch_reserved", 4 * stats.max_torch_bytes + TOLERANCES["torch_reserved_slack"]),
        ("rss_trimmed", TOLERANCES["rss_growth"]),
    ]
    for key, tol in checks:
        g = grew(key)
        if g is not None and g > tol:
            bad.append(f"{key} grew by {g / MiB:.1f} MiB > {tol / MiB:.1f} MiB")
    drop = grew("device_free_trimmed")
    if drop is not None and -drop > TOLERANCES["device_free_drop"]:
        bad.append(f"device free memory fell by {-drop / MiB:.1f} MiB > "
                   f"{TOLERANCES['device_free_drop'] / MiB:.0f} MiB")
    return bad


def environment(be: Backend) -> dict[str, Any]:
    env: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "gpu": be.gpu,
        "torch": None if be.torch is None else be.torch.__version__,
        "routes": [r.name for r in cufftconv.dispatch.routes()],
    }
    if be.gpu:
        from cufftconv.device import device_info

        d = device_info(int(be.cp.cuda.Device().id))
        env.update(device=d.name, arch=d.arch, cupy=be.cp.__version__)
    else:
        env["device"] = "CPU (NumPy path)"
    return env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=10_000, help="library calls after the warm-up")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup", type=int, default=None,
                   help="random calls before the first memory figure (default calls/10, "
                   "at most 1000)")
    p.add_argument("--check-every", type=int, default=50)
    p.add_argument("--max-len", type=int, default=None,
                   help="largest L (default 40000 on a GPU, 512 on the NumPy path)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="stop the measured phase after this long (exit 3)")
    p.add_argument("--json", type=Path, default=None, help="write all figures here")
    args = p.parse_args(argv)

    t_start = time.perf_counter()
    be = Backend(args.seed)
    kinds = be.kinds()
    max_len = args.max_len or (40_000 if be.gpu else 512)
    # Without a GPU the NumPy reference computes every call: keep B * H small.
    max_b, max_h = (8, 40) if be.gpu else (2, 4)
    sampler = Sampler(np.random.default_rng(args.seed), kinds, max_len, max_b, max_h)
    env = environment(be)
    print(f"soak: {args.calls} calls on {env['device']}; kinds "
          f"{ {d: ks for d, ks in kinds.items() if ks} }; L <= {max_len}, B <= {max_b}, "
          f"H <= {max_h}; routes {env['routes']}", flush=True)

    t0 = time.perf_counter()
    n_sweep = warm_up_sweep(be, {d: ks for d, ks in kinds.items() if ks}, max_len)
    warm = Stats()
    n_warm = args.warmup if args.warmup is not None else min(1000, max(5, args.calls // 10))
    for i in range(n_warm):
        run_draw(sampler.draw(), be, warm, check=False)
    warm_s = time.perf_counter() - t0
    print(f"warm-up: {n_sweep} compile calls + {warm.calls} random calls in {warm_s:.1f} s",
          flush=True)
    before = checkpoint(be)

    stats = Stats()
    stats.max_working_set, stats.max_torch_bytes = warm.max_working_set, warm.max_torch_bytes
    errors: list[str] = []
    t0 = time.perf_counter()
    i = 0
    stopped = False
    last_report = t0
    rss_trend: list[tuple[int, int | None]] = []
    while stats.calls < args.calls:
        if args.max_seconds is not None and time.perf_counter() - t0 > args.max_seconds:
            stopped = True
            break
        d = sampler.draw()
        if d.call.startswith("plan"):  # never overshoot the requested number of calls
            d = replace(d, repeats=min(d.repeats, args.calls - stats.calls))
        try:
            run_draw(d, be, stats, check=should_check(i, d, args.check_every))
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, the soak goes on
            stats.failures.append({"draw": asdict(d), "error": f"{type(exc).__name__}: {exc}"})
            stats.calls += 1
            if len(errors) < 5:
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
        i += 1
        now = time.perf_counter()
        if now - last_report > 30:
            last_report = now
            rss_trend.append((stats.calls, rss_bytes()))
            print(f"  {stats.calls} calls, {stats.checks} checked, {len(stats.failures)} "
                  f"failed, {stats.calls / (now - t0):.1f} calls/s, RSS "
                  f"{(rss_trend[-1][1] or 0) / MiB:.0f} MiB", flush=True)
    be.sync()
    seconds = time.perf_counter() - t0
    after = checkpoint(be)

    mem_bad = memory_verdict(before, after, stats)
    rate = stats.calls / seconds if seconds > 0 else 0.0
    rate_nc = stats.calls / max(seconds - stats.check_seconds, 1e-9)
    verdict = "FAIL" if stats.failures or mem_bad else "INCOMPLETE" if stopped else "PASS"
    result = {
        "verdict": verdict,
        "environment": env,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "limits": {"max_len": max_len, "max_b": max_b, "max_h": max_h},
        "calls": stats.calls,
        "draws": i,
        "seconds": round(seconds, 2),
        "calls_per_s": round(rate, 1),
        "calls_per_s_without_checks": round(rate_nc, 1),
        "warmup": {"sweep_calls": n_sweep, "random_calls": warm.calls, "seconds": round(warm_s, 1)},
        "checks": stats.checks,
        "check_seconds": round(stats.check_seconds, 1),
        "worst_err_over_bound": {d: round(v, 4) for d, v in stats.worst.items()},
        "failures": stats.failures[:20],
        "n_failures": len(stats.failures),
        "paths": dict(sorted(stats.paths.items())),
        "memory_after_warmup": before,
        "memory_end": after,
        "max_working_set_bytes": stats.max_working_set,
        "max_torch_call_bytes": stats.max_torch_bytes,
        "tolerances": TOLERANCES,
        "memory_problems": mem_bad,
        "rss_trend": rss_trend,
        "total_seconds": round(time.perf_counter() - t_start, 1),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")

    print(f"calls: {stats.calls} in {seconds:.1f} s = {rate:.1f} calls/s "
          f"({rate_nc:.1f} calls/s without the {stats.check_seconds:.1f} s of reference checks)")
    print(f"checked: {stats.checks}; failures: {len(stats.failures)}; worst err/bound per dtype: "
          + ", ".join(f"{d} {v:.2f}" for d, v in sorted(stats.worst.items())))
    for e in errors:
        print(f"  error: {e}")
    for f in stats.failures[:5]:
        if "rel_err" in f:
            print(f"  wrong: {f['draw']} rel.err {f['rel_err']:.2e} > {f['bound']:.0e}")
    print(f"{'memory':<22} {'after warm-up':>16} {'end':>16} {'change':>12}")
    for key in ("pool_used", "pool_total", "torch_allocated", "torch_reserved", "device_free",
                "device_free_trimmed", "rss", "rss_trimmed"):
        a, b = before.get(key), after.get(key)
        if a is None or b is None:
            continue
        print(f"{key:<22} {a / MiB:>12.1f} MiB {b / MiB:>12.1f} MiB {(b - a) / MiB:>+8.1f} MiB")
    print(f"largest call working set {stats.max_working_set / MiB:.1f} MiB, largest PyTorch call "
          f"{stats.max_torch_bytes / MiB:.1f} MiB")
    for m in mem_bad:
        print(f"  memory: {m}")
    if stopped:
        print(f"stopped by --max-seconds after {stats.calls} of {args.calls} calls")
    print(f"soak: {verdict} ({stats.calls} calls, {rate:.1f} calls/s, {stats.checks} checked, "
          f"{len(stats.failures)} failed, memory {'ok' if not mem_bad else 'GREW'}; "
          f"{env['device']})")
    return {"PASS": 0, "FAIL": 1, "INCOMPLETE": 3}[verdict]


if __name__ == "__main__":
    sys.exit(main())
