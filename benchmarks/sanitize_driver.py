#!/usr/bin/env python3
"""A small driver for compute-sanitizer: every kernel family of cufftconv, checked in float64.

    python benchmarks/sanitize_driver.py [--families fused cufft bwd long] [--list]

``benchmarks/sanitize.sh`` runs it once plainly (compiling every kernel into CuPy's disk cache)
and then under each sanitizer tool. Every case checks its result against
:mod:`cufftconv.reference` (or the float64 host adjoint for gradients), so a clean sanitizer
run is also a correct run. Shapes are tiny (B * H <= 9) because racecheck and initcheck slow
every launch down by orders of magnitude.

Families (``--families``) are entries of :data:`FAMILIES`; a new kernel family is one more
entry. A family whose dispatch row is not registered (``cufftconv.dispatch.routes()``) is
skipped with a note, so the ``long`` entry waits for the long-sequence row "long-monarch".

Allocations are made exact so that memcheck sees out-of-bounds accesses: CuPy's memory pool
is switched off (every array is its own cudaMalloc) and PyTorch's caching allocator too
(``PYTORCH_NO_CUDA_MEMORY_CACHING=1``, set before torch is imported). bfloat16 operands are
PyTorch tensors (CuPy has no bfloat16), or ml_dtypes host arrays when PyTorch is missing; they
are moved with copies only, so no PyTorch kernel shows up in the sanitizer's reports.

Exit status: 0 when every case that ran passed, 1 when one failed, 2 on a usage error.
"""

from __future__ import annotations

import os

# Before torch can be imported: no caching allocator, so each tensor is its own allocation.
os.environ.setdefault("PYTORCH_NO_CUDA_MEMORY_CACHING", "1")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import argparse
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import cufftconv
from cufftconv import dispatch, freqmask, grad, reference
from cufftconv.cli import error_bound
from cufftconv.dtypes import from_compute, to_compute
from cufftconv.interop import describe
from cufftconv.validation import build_spec, spec_from_operands

# Gradient bounds (relative, against float64 on the same rounded inputs): the forward's
# bounds do not apply because dy * postgate and the outputs are rounded once more; these are
# the bounds of tests/test_grad_gpu.py.
BWD_TOL = {"float16": 2e-3, "bfloat16": 1.5e-2, "float32": 1e-4, "float64": 1e-10}


# ------------------------------------------------------------------------------------------------
# Cases and families
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FwdCase:
    """One forward call. ``call="plan"``: an FFTConv holding k, forced onto the family's row
    (its per-call fast path); ``call="fn"``: ``cufftconv.fftconv``, whose dispatch must pick
    the family's row."""

    label: str
    dtype: str
    u_shape: tuple[int, ...]
    k_shape: tuple[int, ...]
    mode: str = "causal"
    pregate: bool = False
    postgate: bool = False
    call: str = "plan"
    freq_keep: float | None = None  # frequency-sparse (the kernels' skipping paths)
    freq_mask: tuple[bool, ...] | None = None


BAND4 = tuple(r in (0, 1, 15, 8) for r in range(16))  # a mask that drops no whole sub-transform


@dataclass(frozen=True)
class BwdCase:
    """One ``cufftconv.fftconv_bwd`` call (all four gradients when gated)."""

    label: str
    dtype: str
    u_shape: tuple[int, ...]
    k_shape: tuple[int, ...]
    mode: str = "causal"
    gated: bool = False


Case = FwdCase | BwdCase


@dataclass(frozen=True)
class Family:
    name: str
    route: str  # the dispatch row the cases exercise (forward or backward table)
    about: str
    cases: Callable[[], list[Case]]
    kernels: str = ""  # regex of the family's own kernel names (tells ours from CuPy's)
    optional: bool = False  # skip with a note when the row is not registered


def _fused_cases() -> list[Case]:
    cases: list[Case] = []
    for dt in ("float16", "bfloat16"):
        for n in (256, 32768):  # the smallest and the largest fused FFT size
            cases += [
                # period n: no zero padding (PAD variant 0), the plan's fast launch path
                FwdCase(f"{dt} N={n} circular ungated", dt, (2, 3, n), (3, n), "circular"),
                # gated instantiation through the functional API (general launch path)
                FwdCase(f"{dt} N={n} circular pre+post", dt, (2, 3, n), (3, n // 3 + 1),
                        "circular", True, True, call="fn"),
                # zero-padded input and pruned output (PAD 3); odd B leaves a zero partner
                FwdCase(f"{dt} N={n} causal", dt, (3, 3, n // 2), (3, n // 2), "causal"),
            ]
        # odd L, a linear mode with an output offset: N = 2048, PAD 1
        cases.append(FwdCase(f"{dt} N=2048 same L=1001 odd", dt, (3, 3, 1001), (3, 301), "same"))
    # frequency-sparse: dead radix sub-transforms (16K, f % 4 == 0), skipped tiles only (4K)
    cases += [
        FwdCase("float16 N=16384 circular freq_keep=0.25", "float16", (3, 3, 16384),
                (3, 16384), "circular", freq_keep=0.25),
        FwdCase("bfloat16 N=8192 causal pre+post freq_keep=0.5", "bfloat16", (2, 3, 4096),
                (3, 4096), "causal", True, True, freq_keep=0.5),
        FwdCase("float16 N=4096 same band mask", "float16", (3, 2, 3001), (2, 900), "same",
                freq_mask=BAND4),
    ]
    return cases


def _cufft_cases() -> list[Case]:
    # The cuFFT row with its conversion kernels (cufftconv_widen[_mul], cufftconv_narrow[_mul])
    # for each storage type; 16-bit inputs are forced onto the row (the fused row comes first).
    return [
        FwdCase("float16 causal L=1000", "float16", (2, 3, 1000), (3, 1000), "causal"),
        FwdCase("bfloat16 full pre+post", "bfloat16", (2, 3, 999), (3, 130), "full", True, True),
        FwdCase("float32 circular L=1000 pre+post", "float32", (2, 3, 1000), (3, 1000),
                "circular", True, True, call="fn"),
        FwdCase("float32 valid Lk>L k broadcast", "float32", (2, 3, 500), (1201,), "valid",
                call="fn"),
        FwdCase("float32 causal L=40000 post", "float32", (1, 3, 40000), (3, 40000), "causal",
                False, True, call="fn"),
        FwdCase("float64 same pre+post", "float64", (2, 3, 777), (3, 50), "same", True, True,
                call="fn"),
    ]


def _bwd_cases() -> list[Case]:
    return [
        BwdCase("float32 causal Lk>L gated", "float32", (2, 3, 257), (3, 300), "causal", True),
        # (FFT 2048 and 1024: the fused backward kernel's A = 2 sizes, P pairs per block)
        BwdCase("float16 same gated fused-bwd 2048", "float16", (2, 3, 1000), (3, 77), "same", True),
        BwdCase("bfloat16 valid fused-bwd 1024", "bfloat16", (2, 3, 513), (3, 100), "valid"),
        # FFT 256, 8 pairs per block: B = 5 leaves 5 of 8 pair slots of a unit empty
        BwdCase("float16 full gated fused-bwd 256", "float16", (5, 2, 100), (2, 60), "full", True),
        BwdCase("float64 circular gated", "float64", (2, 3, 256), (3, 256), "circular", True),
        BwdCase("float32 full k broadcast", "float32", (2, 3, 300), (41,), "full"),
        # the fused backward kernel at the A = 3 sizes: both PAD variants, odd B, H = 1
        BwdCase("float16 causal gated fused-bwd 4096", "float16", (3, 3, 2000), (3, 2000),
                "causal", True),
        BwdCase("bfloat16 same fused-bwd 16384", "bfloat16", (1, 2, 9000), (2, 3001), "same"),
        BwdCase("float16 full gated fused-bwd 8192", "float16", (5, 1, 3001), (1, 2500), "full",
                True),
    ]


def _folded_cases() -> list[Case]:
    # Masks keeping f % F == 0: fold, the dense kernel at N / F, tile. Ungated with offset 0,
    # the tiling pass copies from y itself (unaligned rows when Lout is odd); gated or with an
    # offset, from a separate n-periodic buffer.
    return [
        FwdCase("float16 N=4096 circular freq_keep=0.25", "float16", (3, 3, 4096), (3, 4096),
                "circular", freq_keep=0.25),
        FwdCase("bfloat16 N=8192 causal pre+post freq_keep=0.125", "bfloat16", (2, 3, 4096),
                (3, 4096), "causal", True, True, call="fn", freq_keep=0.125),
        FwdCase("float16 N=4096 full odd Lout freq_keep=0.0625", "float16", (3, 2, 3001),
                (2, 900), "full", call="fn", freq_keep=0.0625),
        FwdCase("float16 N=4096 same pre freq_keep=0.25", "float16", (3, 2, 3001), (2, 900),
                "same", True, False, freq_keep=0.25),
    ]


def _partial_cases() -> list[Case]:
    # Overlap-save windows through the fused kernel's two-level batch (B, block, H, window):
    # odd B leaves a packed partner across a batch row; edge blocks with shorter windows.
    return [
        FwdCase("float16 causal L=97305 Lk=1000 pre+post B=3", "float16", (3, 3, 97305),
                (3, 1000), "causal", True, True),
        FwdCase("bfloat16 same L=130996 Lk=77", "bfloat16", (2, 3, 130996), (3, 77), "same",
                call="fn"),
    ]


def _long_cases() -> list[Case]:
    # FFT sizes 65536 (smallest), 4194304 (issue #4's largest) and 2**24 (the table's largest);
    # filter lengths keep the float64 reference on smooth FFT sizes (L + Lk - 1 = 3 * 2**m).
    cases: list[Case] = []
    for dt in ("float16", "bfloat16"):
        cases += [
            FwdCase(f"{dt} N=65536 circular ungated", dt, (2, 3, 65536), (3, 32769), "circular"),
            FwdCase(f"{dt} N=65536 causal pre+post", dt, (2, 3, 32768), (3, 32768), "causal",
                    True, True),
            # B * H = 2 at the largest size: one packed pair, and a cheap reference
            FwdCase(f"{dt} N=4194304 circular ungated", dt, (2, 1, 1 << 22), (1, (1 << 21) + 1),
                    "circular"),
            FwdCase(f"{dt} N=4194304 causal pre+post", dt, (2, 1, 1 << 21), (1, (1 << 20) + 1),
                    "causal", True, True),
        ]
    # frequency-sparse: skipped workspace rows
    cases.append(FwdCase("float16 N=65536 causal pre+post freq_keep=0.25", "float16",
                         (3, 2, 32768), (2, 32768), "causal", True, True, freq_keep=0.25))
    # The table's largest size, 2**24 (column tiles of 8 columns, 135 KB of shared memory).
    cases.append(FwdCase("float16 N=16777216 causal ungated", "float16", (2, 1, 1 << 23),
                         (1, (1 << 22) + 1), "causal"))
    return cases


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("fused", "fused-monarch", "fused Monarch forward kernels (monarch_conv_fwd)",
               _fused_cases, r"monarch_conv"),
        Family("cufft", "cufft", "cuFFT row and its conversion kernels (cufftconv_*)",
               _cufft_cases, r"cufftconv_"),
        Family("bwd", "cufft", "fftconv_bwd: the exact row (cupy.fft) and the fused backward "
               "kernel with its spectrum / dk kernels", _bwd_cases,
               r"monarch_bwd|monarch_conv|kernel_order_spectrum|dk_hermitian|pad_filter|dk_window"),
        Family("folded", "fused-folded", "folded frequency-sparse row: fold, fused, tile",
               _folded_cases, r"fold_rows|tile_rows|monarch_conv"),
        Family("partial", "partial-blocked", "partial convolutions: fused kernels on windows",
               _partial_cases, r"monarch_conv"),
        Family("long", "long-monarch", "long-sequence kernels, FFT sizes 65536..16777216",
               _long_cases, r"long_(cols|rows|conv)", optional=True),
    )
}


# ------------------------------------------------------------------------------------------------
# Operands
# ------------------------------------------------------------------------------------------------
class Arrays:
    """Makes operands of the kind the library takes for each dtype and reads results back.

    Each operand comes with the exact float64 value of its rounded data, which is what the
    reference is given.
    """

    def __init__(self) -> None:
        self.gpu = cufftconv.gpu_available()
        self.cp: Any = None
        if self.gpu:
            import cupy

            self.cp = cupy
            # No pool: each array is its own cudaMalloc, so memcheck catches overruns.
            cupy.cuda.set_allocator(None)
        self.torch: Any = None
        self.ml_dtypes: Any = None
        self.bf16 = self._bf16_provider()

    def _bf16_provider(self) -> str | None:
        try:
            import torch

            if not self.gpu or torch.cuda.is_available():
                self.torch = torch
                return "torch"
        except ImportError:
            pass
        try:
            import ml_dtypes

            self.ml_dtypes = ml_dtypes
            return "ml_dtypes"
        except ImportError:
            return None

    def kind(self, dtype: str) -> str:
        if dtype == "bfloat16":
            if self.bf16 is None:
                raise LookupError("bfloat16 needs PyTorch or ml_dtypes; neither is installed")
            return self.bf16
        return "cupy" if self.gpu else "numpy"

    def make(self, a: np.ndarray, dtype: str, kind: str) -> tuple[Any, np.ndarray]:
        """``a`` rounded to ``dtype`` as an operand of ``kind``, and its float64 value."""
        if dtype == "bfloat16":
            bits = from_compute(a, "bfloat16", np)
            value = to_compute(bits, "bfloat16", "float64", np)
        else:
            bits = a.astype(dtype)
            value = bits.astype(np.float64)
        if kind == "torch":
            torch = self.torch
            if dtype == "bfloat16":
                t = torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16)
            else:
                t = torch.from_numpy(bits)
            return (t.to("cuda") if self.gpu else t), value  # a copy, no kernel
        if kind == "cupy":
            return self.cp.asarray(bits), value
        if dtype == "bfloat16":  # ml_dtypes host array: the library copies it to the GPU
            return bits.view(self.ml_dtypes.bfloat16), value
        return bits, value

    def host(self, y: Any, dtype: str) -> np.ndarray:
        """A result back on the host in float64 (device-to-host copies only)."""
        if self.torch is not None and isinstance(y, self.torch.Tensor):
            if dtype == "bfloat16":
                bits = y.view(self.torch.int16).cpu().numpy().view(np.uint16)
                return to_compute(bits, "bfloat16", "float64", np)
            return y.cpu().numpy().astype(np.float64)
        if self.cp is not None and isinstance(y, self.cp.ndarray):
            y = y.get()
        y = np.asarray(y)
        if dtype == "bfloat16":
            return to_compute(y.view(np.uint16), "bfloat16", "float64", np)
        return y.astype(np.float64)

    def sync(self) -> None:
        if self.gpu:
            self.cp.cuda.Device().synchronize()
            if self.torch is not None and self.torch.cuda.is_available():
                self.torch.cuda.synchronize()


def _rel(y: np.ndarray, ref: np.ndarray) -> float:
    if y.shape != ref.shape:
        raise AssertionError(f"shape {y.shape}, expected {ref.shape}")
    den = float(np.linalg.norm(ref))
    return float(np.linalg.norm(y - ref) / (den if den > 0 else 1.0))


def _k_dtype(dtype: str) -> str:
    return "float64" if dtype == "float64" else "float32"


# ------------------------------------------------------------------------------------------------
# Running cases
# ------------------------------------------------------------------------------------------------
def run_fwd(case: FwdCase, fam: Family, ar: Arrays, rng: np.random.Generator) -> tuple[str, str]:
    """Returns (route, detail); raises AssertionError on a wrong result or route."""
    kind = ar.kind(case.dtype)
    out_shape = build_spec(case.u_shape, case.k_shape, mode=case.mode, dtype=case.dtype,
                           k_dtype=_k_dtype(case.dtype)).out_shape
    u, uv = ar.make(rng.standard_normal(case.u_shape), case.dtype, kind)
    k, kv = ar.make(rng.standard_normal(case.k_shape), _k_dtype(case.dtype), kind)
    pre, prev = (ar.make(rng.standard_normal(case.u_shape), case.dtype, kind)
                 if case.pregate else (None, None))
    post, postv = (ar.make(rng.standard_normal(out_shape), case.dtype, kind)
                   if case.postgate else (None, None))
    if case.call == "plan":
        plan = cufftconv.FFTConv(
            case.u_shape, k=k, dtype=case.dtype, mode=case.mode, pregate=case.pregate,
            postgate=case.postgate, path=fam.route if ar.gpu else None,
            freq_keep=case.freq_keep, freq_mask=case.freq_mask,
        )
        route = plan.route
        y = plan(u, pregate=pre, postgate=post)
    else:
        ops = [None if a is None else describe(n, a)
               for n, a in (("u", u), ("k", k), ("pregate", pre), ("postgate", post))]
        spec = spec_from_operands(*ops, None, case.mode,
                                  freqmask.resolve(case.freq_keep, case.freq_mask))
        route = dispatch.choose(spec, dispatch.target_device(spec)).name
        for _ in range(2):  # the second call of a dense signature takes the per-call fast path
            y = cufftconv.fftconv(u, k, mode=case.mode, pregate=pre, postgate=post,
                                  freq_keep=case.freq_keep, freq_mask=case.freq_mask)
    ar.sync()
    if ar.gpu and route != fam.route:
        raise AssertionError(f"ran on row {route!r}, not the family's {fam.route!r}")
    ref = reference.fftconv_direct(uv, kv, mode=case.mode, pregate=prev, postgate=postv,
                                   freq_mask=freqmask.resolve(case.freq_keep, case.freq_mask))
    yv = ar.host(y, case.dtype)
    if not np.isfinite(yv).all():
        raise AssertionError("non-finite output")
    err, bound = _rel(yv, ref), error_bound(case.dtype, int(np.prod(out_shape)))
    if err > bound:
        raise AssertionError(f"rel.err {err:.2e} > bound {bound:.0e}")
    return route, f"rel.err {err:.2e} <= {bound:.0e}"


def run_bwd(case: BwdCase, fam: Family, ar: Arrays, rng: np.random.Generator) -> tuple[str, str]:
    kind = ar.kind(case.dtype)
    kdt = _k_dtype(case.dtype)
    spec = build_spec(case.u_shape, case.k_shape, mode=case.mode, dtype=case.dtype, k_dtype=kdt,
                      pregate_dtype=case.dtype if case.gated else None,
                      postgate_dtype=case.dtype if case.gated else None)
    u, uv = ar.make(rng.standard_normal(case.u_shape), case.dtype, kind)
    k, kv = ar.make(rng.standard_normal(case.k_shape), kdt, kind)
    dy, dyv = ar.make(rng.standard_normal(spec.out_shape), case.dtype, kind)
    pre, prev = (ar.make(rng.standard_normal(case.u_shape), case.dtype, kind)
                 if case.gated else (None, None))
    post, postv = (ar.make(rng.standard_normal(spec.out_shape), case.dtype, kind)
                   if case.gated else (None, None))
    for _ in range(2):  # the second call takes the per-call fast path where there is one
        grads = cufftconv.fftconv_bwd(dy, u, k, mode=case.mode, pregate=pre, postgate=post)
    ar.sync()
    dev = dispatch.target_device(spec) if ar.gpu else None
    route = grad.choose_bwd(spec, dev).name
    # Reference gradients: the float64 numpy.fft adjoint on the same rounded inputs (checked
    # against reference.fftconv_direct by tests/test_grad.py).
    spec64 = build_spec(case.u_shape, case.k_shape, mode=case.mode, dtype="float64",
                        k_dtype="float64", pregate_dtype="float64" if case.gated else None,
                        postgate_dtype="float64" if case.gated else None)
    refs = grad.HostBwdExecutor(spec64).run_bwd(dyv, uv, kv, prev, postv)
    worst = []
    # dk is returned in k's dtype but computed at u's precision: 16-bit inputs get the 16-bit
    # bound (the fused backward kernel's spectra are fp16), as in tests/test_grad_gpu.py.
    dk_tol = case.dtype if case.dtype in ("float16", "bfloat16") else kdt
    for name, g, r, dt, tol in zip(("du", "dk", "dpregate", "dpostgate"), grads, refs,
                                   (case.dtype, kdt, case.dtype, case.dtype),
                                   (case.dtype, dk_tol, case.dtype, case.dtype)):
        if r is None:
            if g is not None:
                raise AssertionError(f"{name}: expected None")
            continue
        gv = ar.host(g, dt)
        err = _rel(gv, r)
        if not np.isfinite(gv).all() or err > BWD_TOL[tol]:
            raise AssertionError(f"{name}: rel.err {err:.2e} > bound {BWD_TOL[tol]:.0e}")
        worst.append(f"{name} {err:.1e}")
        if name == "du":
            # Adjoint identity against the direct-sum reference: <dy, y(d)> = <du, d>.
            d = rng.standard_normal(case.u_shape)
            lhs = float(np.sum(dyv * reference.fftconv_direct(
                d, kv, mode=case.mode, pregate=prev, postgate=postv)))
            rhs = float(np.sum(gv * d))
            if abs(lhs - rhs) > BWD_TOL[dt] * np.linalg.norm(r) * np.linalg.norm(d) + 1e-12:
                raise AssertionError(f"du: adjoint identity off by {abs(lhs - rhs):.2e}")
    return route, ", ".join(worst)


def _context_ok(ar: Arrays) -> bool:
    try:
        ar.cp.cuda.runtime.deviceSynchronize()
        ar.cp.cuda.runtime.getLastError()
        return True
    except Exception:  # noqa: BLE001 - any CUDA error here means a sticky context error
        return False


def precompile(cases: list[tuple[Family, Case]]) -> None:
    """Compile the fused instantiations the cases need, in parallel NVRTC threads."""
    from cufftconv import fused
    from cufftconv.backends import fused as fused_row

    configs = set()
    for fam, case in cases:
        if fam.route != "fused-monarch" or not isinstance(case, FwdCase):
            continue
        spec = build_spec(case.u_shape, case.k_shape, mode=case.mode, dtype=case.dtype,
                          k_dtype="float32")
        n = fused_row.fft_size(spec)
        if n is not None:
            configs.add((n, case.dtype, case.pregate, case.postgate))
    if configs:
        t0 = time.perf_counter()
        fused.precompile(sorted(configs))
        print(f"compiled/loaded {len(configs)} fused configurations in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)


# ------------------------------------------------------------------------------------------------
# Summary of the sanitizer reports (called by sanitize.sh)
# ------------------------------------------------------------------------------------------------
_PREFIX = re.compile(r"^=========(?: (.*))?$")
_HOUSEKEEPING = ("COMPUTE-SANITIZER", "ERROR SUMMARY", "RACECHECK SUMMARY", "LEAK SUMMARY",
                 "Target application returned", "This application", "Note:", "Warning: No ")
_AT_NAME = re.compile(r"\bat ([A-Za-z_][^\n]*?)\+0x[0-9a-fA-F]+")
_AT_OLD = re.compile(r"\bat 0x[0-9a-fA-F]+ in (?:\S*:\d+:)?([A-Za-z_][^\n]*)")
_API = re.compile(r"(cuda\w+|CUDA_ERROR_\w+).*CUDA API call to (\w+)")
_HEADER = re.compile(r"^##### group (\S+) \(tool (\S+), limit (\d+) s\)$")
TIMEOUT_RC = (124, 137)


def our_kernels() -> re.Pattern[str]:
    """Kernel names whose source is in this repository (every family's ``kernels``)."""
    return re.compile("|".join(f"(?:{f.kernels})" for f in FAMILIES.values() if f.kernels))


def error_blocks(lines: list[str]) -> list[str]:
    """The sanitizer's error/hazard reports: a top-level ``=========`` line and its indented
    continuation lines, each as one text block."""
    blocks: list[list[str]] = []
    for line in lines:
        m = _PREFIX.match(line.rstrip("\n"))
        if not m or not m.group(1):
            continue
        body = m.group(1)
        if body[:1].isspace():
            if blocks:
                blocks[-1].append(body.strip())
        elif not body.startswith(_HOUSEKEEPING):
            blocks.append([body.strip()])
    return ["\n".join(b) for b in blocks]


def kernel_of(block: str) -> str:
    """The kernel (or CUDA API call) a report block names."""
    if block.startswith("Leaked"):
        return "leak (allocation not freed at exit)"
    api = _API.search(block)
    if "CUDA API call" in block and api:
        return f"API {api.group(2)} ({api.group(1)})"
    m = _AT_NAME.search(block) or _AT_OLD.search(block)
    if not m:
        return "unknown (see the report)"
    name = m.group(1).strip()
    return name if len(name) <= 110 else name[:107] + "..."


@dataclass
class Run:
    tool: str
    group: str
    rc: int
    seconds: int
    limit: int
    errors: int | None = None  # from ERROR SUMMARY; None when the run did not get that far
    summary_lines: tuple[str, ...] = ()
    driver: str | None = None
    notes: tuple[str, ...] = ()
    kernels: dict[str, int] | None = None

    @property
    def timed_out(self) -> bool:
        return self.rc in TIMEOUT_RC


def _sections(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    if not path.is_file():
        return out
    for line in path.read_text(errors="replace").splitlines():
        m = _HEADER.match(line)
        if m:
            current = out.setdefault(m.group(1), [])
        elif current is not None:
            current.append(line)
    return out


def _fill(run: Run, lines: list[str]) -> None:
    sums = []
    for line in lines:
        m = _PREFIX.match(line)
        body = (m.group(1) or "") if m else ""
        if "were not printed" in body:  # "ERROR SUMMARY: N errors were not printed. Use..."
            continue
        if body.startswith(("ERROR SUMMARY", "RACECHECK SUMMARY", "LEAK SUMMARY")):
            sums.append(body.strip())
            e = re.match(r"ERROR SUMMARY: (\d+) error", body) or re.match(
                r"RACECHECK SUMMARY: \d+ hazards? displayed \((\d+) errors?, (\d+) warning", body)
            if e:
                # racecheck prints no ERROR SUMMARY; its warnings (hazards between threads of
                # one warp, i.e. a missing __syncwarp) count too: they fail --error-exitcode.
                run.errors = sum(int(g) for g in e.groups())
        elif line.startswith("driver: "):
            run.driver = line.strip()
        elif line.startswith(("NOTE:", "FAIL ", "SKIP ")):
            run.notes += (line.strip()[:200],)
    run.summary_lines = tuple(sums)
    counts: dict[str, int] = {}
    for block in error_blocks(lines):
        name = kernel_of(block)
        counts[name] = counts.get(name, 0) + 1
    run.kernels = counts


def summarize(outdir: Path) -> int:
    """Write the per-tool summary to stdout; the last line is the verdict. 0 PASS, 1 FAIL,
    3 INCOMPLETE."""
    ours = our_kernels()
    runs: list[Run] = []
    tsv = outdir / "runs.tsv"
    rows = [r.split("\t") for r in tsv.read_text().splitlines()] if tsv.is_file() else []
    sections: dict[str, dict[str, list[str]]] = {}
    for tool, group, rc, secs, limit in (r for r in rows if len(r) == 5):
        run = Run(tool, group, int(rc), int(secs), int(limit))
        if tool == "plain":
            text = (outdir / "plain.txt").read_text(errors="replace").splitlines()
            _fill(run, text)
            run.kernels = {}
        else:
            if tool not in sections:
                sections[tool] = _sections(outdir / f"{tool}.txt")
            _fill(run, sections[tool].get(group, []))
        runs.append(run)

    version = outdir / "sanitizer_version.txt"
    vline = version.read_text().strip().splitlines()[-1] if version.is_file() else "NOT FOUND"
    print(f"compute-sanitizer: {vline}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"{'tool':<10} {'group':<16} {'exit':>4} {'time':>7}  {'sanitizer summary':<44} driver")
    for r in runs:
        t = f"{r.seconds}s" + ("!" if r.timed_out else "")
        summ = "; ".join(r.summary_lines) or ("-" if r.tool == "plain" else "(no summary)")
        print(f"{r.tool:<10} {r.group:<16} {r.rc:>4} {t:>7}  {summ:<44} {r.driver or '(none)'}")
        for note in r.notes:
            print(f"{'':<12}{note}")
    print("('!' = killed at its time limit)")

    ours_hits: list[str] = []
    other_hits: list[str] = []
    print("\nkernels named in sanitizer reports (blocks printed, --print-limit 20):")
    for r in runs:
        for name, n in sorted((r.kernels or {}).items(), key=lambda kv: -kv[1]):
            where = "OURS" if ours.search(name) else "other"
            print(f"  {r.tool:<10} {r.group:<16} {where:<5} {n:>4} x {name}")
            (ours_hits if where == "OURS" else other_hits).append(f"{r.tool}: {name}")
    if not ours_hits and not other_hits:
        print("  (none)")

    san_runs = [r for r in runs if r.tool != "plain"]
    failed = [r for r in runs if (r.errors or 0) > 0 or (r.driver or "").startswith("driver: FAIL")
              or (r.rc not in (0, *TIMEOUT_RC))]
    incomplete = [r for r in runs if r not in failed and (
        r.timed_out or r.driver is None or (r.tool != "plain" and r.errors is None))]
    per_tool: dict[str, tuple[int, bool]] = {}  # errors counted, every group summarised
    for r in san_runs:
        n, complete = per_tool.get(r.tool, (0, True))
        per_tool[r.tool] = (n + (r.errors or 0), complete and r.errors is not None)
    counts = ", ".join(f"{t} {n}{'' if ok else '+?'}" for t, (n, ok) in per_tool.items())
    if failed:
        where = []
        if ours_hits:
            where.append(f"errors in our kernels: {'; '.join(sorted(set(ours_hits)))}")
        if other_hits:
            where.append(f"elsewhere (CuPy/cuFFT/API): {'; '.join(sorted(set(other_hits)))}")
        bad = ", ".join(f"{r.tool}[{r.group}]" for r in failed)
        print(f"sanitize: FAIL ({counts} errors; failing runs: {bad}"
              f"{'; ' + ' | '.join(where) if where else ''})")
        return 1
    if not san_runs or incomplete:
        why = "no compute-sanitizer found" if not san_runs else ", ".join(
            f"{r.tool}[{r.group}]" + (" timed out" if r.timed_out else " unfinished")
            for r in incomplete)
        print(f"sanitize: INCOMPLETE ({counts or 'no sanitizer runs'}; {why}; no error found)")
        return 3
    print(f"sanitize: PASS ({counts} errors; the driver passed under every tool)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", nargs="+", default=list(FAMILIES), metavar="NAME",
                   help=f"families to run (default: all of {', '.join(FAMILIES)})")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start-at", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--summarize", metavar="OUTDIR",
                   help="do not run: summarize the reports sanitize.sh wrote into OUTDIR")
    args = p.parse_args(argv)
    if args.summarize:
        return summarize(Path(args.summarize))
    unknown = [f for f in args.families if f not in FAMILIES]
    if unknown:
        print(f"unknown families {unknown}; known: {', '.join(FAMILIES)}", file=sys.stderr)
        return 2

    rows = {r.name for r in dispatch.routes()} | {r.name for r in grad.bwd_routes()}
    selected: list[tuple[Family, Case]] = []
    for name in args.families:
        fam = FAMILIES[name]
        if fam.optional and fam.route not in rows:
            print(f"NOTE: family {name!r} skipped: dispatch.routes() has no row {fam.route!r} "
                  "(not registered in this build)", flush=True)
            continue
        selected += [(fam, c) for c in fam.cases()]
    if args.list:
        for fam, c in selected:
            print(f"{fam.name:<6} {c.label}")
        return 0

    ar = Arrays()
    print(f"cufftconv sanitize driver: families {', '.join(args.families)}; "
          f"{'GPU' if ar.gpu else 'no GPU (NumPy path, route checks off)'}; bfloat16 via "
          f"{ar.bf16 or 'nothing (bfloat16 cases skipped)'}; CuPy pool off; "
          f"PYTORCH_NO_CUDA_MEMORY_CACHING={os.environ.get('PYTORCH_NO_CUDA_MEMORY_CACHING')}",
          flush=True)
    if ar.gpu:
        from cufftconv.device import device_info

        d = device_info(int(ar.cp.cuda.Device().id))
        print(f"device: {d.name} ({d.arch})", flush=True)
        precompile(selected)

    rng = np.random.default_rng(args.seed)
    passed = failed = skipped = 0
    t_all = time.perf_counter()
    for index, (fam, case) in enumerate(selected):
        if index < args.start_at:
            continue
        if failed and ar.gpu and not _context_ok(ar):
            # A kernel fault (e.g. memcheck stopping an out-of-bounds access) leaves the CUDA
            # context unusable: run the remaining cases in a fresh process (the sanitizer
            # follows it with --target-processes all).
            print(f"NOTE: CUDA context lost; cases {index}.. continue in a new process",
                  flush=True)
            rest = [sys.executable, __file__, "--families", *args.families, "--seed",
                    str(args.seed + 1), "--start-at", str(index)]
            rc = subprocess.run(rest, check=False).returncode
            print(f"driver: {'FAIL' if failed or rc else 'PASS'} ({passed} passed, {failed} "
                  f"failed, {skipped} skipped before the context was lost; the new process "
                  f"exited {rc})", flush=True)
            return 1
        t0 = time.perf_counter()
        tag = f"{fam.name:<6} {case.label:<40}"
        if case.dtype == "bfloat16" and ar.bf16 is None:
            print(f"SKIP {tag} bfloat16 needs PyTorch or ml_dtypes", flush=True)
            skipped += 1
            continue
        try:
            runner = run_fwd if isinstance(case, FwdCase) else run_bwd
            route, detail = runner(case, fam, ar, rng)  # type: ignore[arg-type]
        except ValueError as err:
            if fam.optional and "cannot run this convolution" in str(err):
                # The optional row's own predicate declines this shape: not a kernel error.
                print(f"SKIP {tag} {err}", flush=True)
                skipped += 1
                continue
            failed += 1
            print(f"FAIL {tag} {type(err).__name__}: {err}", flush=True)
            traceback.print_exc(limit=3)
            continue
        except Exception as err:  # noqa: BLE001 - report and go on with the next case
            failed += 1
            print(f"FAIL {tag} {type(err).__name__}: {err}", flush=True)
            traceback.print_exc(limit=3)
            continue
        passed += 1
        print(f"ok   {tag} {route:<14} {detail}  ({time.perf_counter() - t0:.2f} s)", flush=True)
    verdict = "FAIL" if failed else "PASS" if passed else "SKIP"  # SKIP: nothing could run
    print(f"driver: {verdict} ({passed} passed, {failed} failed, {skipped} skipped, "
          f"{time.perf_counter() - t_all:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
