"""CI (no GPU): every fused- and long-kernel instantiation compiles through NVRTC, with no register spills.

NVRTC needs no GPU. The kernels include no CUDA headers at all (inline PTX and NVRTC
built-ins only), so NVRTC itself is the one dependency: if it cannot be loaded these tests
fail, they do not skip. ptxas statistics come from NVRTC's own log (``--ptxas-options=-v``),
so the spill check covers exactly the code NVRTC produces.

Budget: every instantiation for sm_90, and for sm_80 / sm_86 the fp16 forward and backward
ones whose shared memory fits those devices (sm_86: the backward's pad variant 0 only) (the dispatcher cannot pick the others there; bf16
differs from fp16 only in the 16-bit conversions and is compiled for sm_90: all of them would
add minutes to a CI run that must stay under 20), compiled in parallel threads (NVRTC releases
the GIL while compiling).
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from cufftconv import fused
from cufftconv import long as lc

_SPILL_RE = re.compile(
    r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads"
)
_ENTRY_RE = re.compile(r"Compiling entry function '([^']+)' for '(sm_\d+)'")
_REGS_RE = re.compile(r"Used (\d+) registers")


def _nvrtc():
    # A plain import on purpose: a missing NVRTC must fail this test module, not skip it.
    from cupy.cuda import nvrtc

    nvrtc.getVersion()  # loads libnvrtc; raises if it is missing
    return nvrtc


def compile_group(names: list[str], arch: str, family=fused) -> dict:
    """Compile one NVRTC program of a kernel family (``fused`` or ``long``) with the given name
    expressions; return per-kernel ptxas info."""
    nvrtc = _nvrtc()
    prog = nvrtc.createProgram(family.kernel_source(), family.KERNEL_FILE, [], [])
    try:
        for nm in names:
            nvrtc.addNameExpression(prog, nm)
        opts = list(family.compile_options(arch)) + ["--ptxas-options=--verbose"]
        try:
            nvrtc.compileProgram(prog, opts)
        except Exception as exc:  # surface the compiler log
            raise AssertionError(f"NVRTC failed for {arch}:\n{nvrtc.getProgramLog(prog)}") from exc
        log = nvrtc.getProgramLog(prog)
        lowered = {nm: nvrtc.getLoweredName(prog, nm) for nm in names}
        cubin = nvrtc.getCUBIN(prog)
    finally:
        nvrtc.destroyProgram(prog)
    assert len(cubin) > 0
    # split the log per entry function
    info = {}
    blocks = _ENTRY_RE.split(log)
    # blocks = [pre, mangled, arch, text, mangled, arch, text, ...]
    for i in range(1, len(blocks) - 2, 3):
        mangled, sm, text = blocks[i], blocks[i + 1], blocks[i + 2]
        sp = _SPILL_RE.search(text)
        rg = _REGS_RE.search(text)
        assert sp and rg, f"no ptxas statistics for {mangled}:\n{text}"
        info[mangled] = {
            "arch": sm,
            "stack": int(sp.group(1)),
            "spill_st": int(sp.group(2)),
            "spill_ld": int(sp.group(3)),
            "regs": int(rg.group(1)),
        }
    by_name = {}
    for nm, mg in lowered.items():
        assert mg in info, f"{nm} ({mg}) missing from the ptxas log"
        by_name[nm] = info[mg]
    return by_name


# Opt-in shared memory per block: what the dispatcher checks before it picks a kernel.
ARCH_SMEM = {"sm_80": 163 * 1024, "sm_86": 99 * 1024}


def _groups_fitting(limit: float, dtypes: tuple[str, ...] = fused.DTYPES):
    # every instantiation the dispatcher can pick on a device with this shared-memory limit,
    # one program per (n, dtype): 20 instantiations each
    return [
        [
            e
            for pre in (False, True)
            for post in (False, True)
            for e in fused.name_expressions(n, dt, pre, post)
        ]
        for n in fused.SUPPORTED_N
        for dt in dtypes
        if fused.shared_bytes(n, dt) <= limit
    ]


def _run(groups, arch, family=fused):
    workers = max(2, min(8, os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as ex:
        results = list(ex.map(lambda g: compile_group(g, arch, family), groups))
    merged = {}
    for r in results:
        merged.update(r)
    return merged


def _check_no_spills(info: dict):
    bad = {k: v for k, v in info.items() if v["spill_st"] or v["spill_ld"] or v["stack"]}
    assert not bad, f"register spills / stack use: {bad}"


def test_nvrtc_available():
    nvrtc = _nvrtc()
    major, _minor = nvrtc.getVersion()
    assert major >= 12


def test_all_instantiations_sm90():
    groups = _groups_fitting(float("inf"))
    info = _run(groups, "sm_90")
    assert set(info) == set(fused.all_name_expressions())
    _check_no_spills(info)
    assert max(v["regs"] for v in info.values()) <= 128


@pytest.mark.parametrize("arch", sorted(ARCH_SMEM))
def test_dispatchable_instantiations(arch):
    """The fp16 forward kernels that fit the architecture (bf16: see the module's budget).
    sm_86 compiles variant 0 of each only, as test_dk_instantiations (sm_80, whose instruction
    set sm_86 shares, compiles all five): the CI run must stay under 20 minutes."""
    groups = _groups_fitting(ARCH_SMEM[arch], ("float16",))
    if arch == "sm_86":
        groups = [[e for e in g if e.endswith(", 0>")] for g in groups]
    assert groups, "no fused kernel fits this architecture"
    info = _run(groups, arch)
    assert set(info) == {e for g in groups for e in g}
    _check_no_spills(info)


@pytest.mark.parametrize("arch", ["sm_90", *sorted(ARCH_SMEM)])
def test_dk_instantiations(arch):
    """Every backward kernel (monarch_bwd) whose shared memory fits the architecture (sm_80:
    the fp16 ones, see the module's budget). sm_86 compiles the fp16 ones of pad variant 0 only:
    the other three differ in which half of the first / last stage they trim, and all four of
    every size took 150 s of a CI run that must stay under 20 minutes (sm_80, whose instruction
    set sm_86 shares, compiles all four)."""
    limit = ARCH_SMEM.get(arch, float("inf"))
    dtypes = fused.DTYPES if arch == "sm_90" else ("float16",)
    groups = [
        [e for pre in (False, True) for post in (False, True)
         for e in fused.dk_name_expressions(n, dt, pre, post)
         if arch != "sm_86" or e.endswith(", 0>")]
        for n in fused.DK_SIZES
        for dt in dtypes
        if fused.dk_shared_bytes(n, dt) <= limit
    ]
    assert groups, "no dk kernel fits this architecture"
    info = _run(groups, arch)
    assert set(info) == {e for g in groups for e in g}
    if arch == "sm_90":
        assert set(info) == set(fused.all_dk_name_expressions())
    # At most one stray address in local memory (8 bytes): earlier versions kept 4 bytes in a
    # few 4K instantiations, stored once and reloaded once per pair outside the tile loops (read
    # from the SASS); none of the sm_90 ones spill now (checked at f36caf5). Nothing larger.
    bad = {k: v for k, v in info.items() if max(v["spill_st"], v["spill_ld"], v["stack"]) > 8}
    assert not bad, f"register spills / stack use beyond 8 bytes: {bad}"
    assert max(v["regs"] for v in info.values()) <= 128


@pytest.mark.parametrize("arch", ["sm_90", *sorted(ARCH_SMEM)])
def test_long_instantiations(arch):
    """Every long-sequence kernel (three passes per FFT size) whose shared memory fits."""
    limit = ARCH_SMEM.get(arch)
    rows = {n: lc.row_limit(n, limit) for n in lc.SUPPORTED_N}  # the row length LongConv picks
    groups = [
        list(
            dict.fromkeys(
                e
                for dt in lc.DTYPES
                for g in (False, True)
                for e in lc.name_expressions(n, dt, g, g, rows[n]).values()
            )
        )
        for n in lc.SUPPORTED_N
        if limit is None or lc.max_shared_bytes(n, rows[n]) <= limit
    ]
    assert groups, "no long kernel fits this architecture"
    info = _run(groups, arch, lc)
    assert set(info) == {e for g in groups for e in g}
    _check_no_spills(info)


@pytest.mark.parametrize("arch", ["sm_90", *sorted(ARCH_SMEM)])
def test_fold_instantiations(arch):
    """The fold and tile passes of the folded frequency-sparse row (kernels/fold.cu)."""
    from cufftconv.backends import folded

    info = compile_group(list(folded.NAMES), arch, folded)
    assert set(info) == set(folded.NAMES)
    _check_no_spills(info)


def test_twiddle_fold_instantiations():
    """The twiddle-folded forward kernels (FFT 256 .. 16384), every (dtype, gates, half, mask
    kind) instantiation, and the folded backward's (n, dtype, half, mode) (kernels/twiddle_fold.cu,
    pair_fold.cuh and fold_bwd.cuh, sm_90 only: they use stmatrix and are dispatched only from
    compute capability 9.0)."""
    from cufftconv import twiddle_fold

    names = twiddle_fold.all_name_expressions()
    dts = range(len(twiddle_fold.DTYPES))
    groups = [[e for e in names
               if e.startswith(f"{twiddle_fold.KERNEL_NAME}<{n}, {d},") and e.endswith(f", {m}>")]
              for n in twiddle_fold.SIZES if n != 256 for d in dts for m in range(4)]
    groups = [g for g in groups if g]
    groups += [[e for e in names if e.startswith(f"{twiddle_fold.PAIR_KERNEL_NAME}<{d},")]
               for d in dts]
    bwd = twiddle_fold.all_bwd_name_expressions()  # the backward (fold_bwd.cuh), one program
    names += bwd
    groups.append(bwd)
    # one program per (N, dtype, mask kind), in parallel
    info = _run(groups, "sm_90", twiddle_fold)
    assert set(info) == set(names)
    _check_no_spills(info)
    for name, v in info.items():  # 2 blocks of 256 threads per SM; 16384: one of 512
        if name.startswith(twiddle_fold.BWD_KERNEL_NAME):  # 2 blocks of 256 threads
            assert v["regs"] <= 128, name
            continue
        n = 256 if name.startswith(twiddle_fold.PAIR_KERNEL_NAME) else int(name.split("<")[1].split(",")[0])
        per_sm = 1 if n in (256, 16384) else 2
        assert v["regs"] <= 65536 // (twiddle_fold.threads(n) * per_sm) // 8 * 8, name


@pytest.mark.parametrize("arch", ["sm_90", *sorted(ARCH_SMEM)])
def test_spectrum_instantiations(arch):
    """kernels/spectrum.cu: the filter spectra, dk's fold, and the backward fast path's filter
    padding and dk window for every k dtype."""
    from types import SimpleNamespace

    from cufftconv.sources import inline_source

    names = list(fused._SPECTRUM_NAMES)
    family = SimpleNamespace(
        kernel_source=lambda: inline_source("spectrum.cu"),
        KERNEL_FILE="spectrum.cu",
        compile_options=fused.compile_options,
    )
    info = compile_group(names, arch, family)
    assert set(info) == set(names)
    _check_no_spills(info)


# ------------------------------------------------------------------------------------------------
# Host-side facts the kernels rely on (no compiler needed)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", fused.SUPPORTED_N)
def test_freq_index_is_permutation(n):
    f = fused.freq_index(n)
    assert np.array_equal(np.sort(f), np.arange(n))


@pytest.mark.parametrize("n", fused.SUPPORTED_N)
def test_factorisation_and_smem(n):
    assert int(np.prod(fused.factorisation(n))) == n
    assert all(r in (2, 4, 8, 16) for r in fused.factorisation(n))
    for dt in fused.DTYPES:
        assert 0 < fused.shared_bytes(n, dt) <= 227 * 1024  # sm_90 / sm_80 opt-in maximum
        if n in fused.DK_SIZES:  # the backward row relies on it: no device fits one and not the other
            assert fused.dk_shared_bytes(n, dt) <= fused.shared_bytes(n, dt)


def test_name_expressions_shape():
    names = fused.all_name_expressions()
    assert len(names) == len(set(names)) == len(fused.SUPPORTED_N) * 2 * 4 * len(fused.PAD_VARIANTS)
    assert (
        fused.name_expressions(4096, "bfloat16", True, False)[0]
        == "monarch_conv_fwd<4096, 1, true, false, 0>"
    )
    with pytest.raises(ValueError):
        fused.name_expressions(100, "float16", False, False)
    with pytest.raises(ValueError):
        fused.name_expressions(256, "float32", False, False)


def test_source_is_self_contained():
    src = fused.kernel_source()
    assert '#include "' not in src
    assert "#include <" not in src  # no CUDA / system headers needed
    assert "monarch_conv_fwd" in src


def test_compile_options():
    opts = fused.compile_options("sm_90")
    assert "--std=c++17" in opts and "--gpu-architecture=sm_90" in opts
    assert not any(o.startswith("--gpu-architecture") for o in fused.compile_options(None))
