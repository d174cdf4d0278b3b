"""GPU tests of the fused backward kernel (``cufftconv.fused.FusedBwd``, ``monarch_bwd``).

dk = sum over the batch of corr(dy * post, pre * u), du = dv * pre and dpre = dv * u with
dv = corr(dy * post, k), and dpost = dy * window(conv(pre * u, k)), against the float64 adjoint
of the same rounded inputs: every size the kernel covers, fp16 and bf16, each gate alone and both, every
mode's output offset, odd B and B = 1, H = 1 (the batch split over several blocks) and H = 111,
inputs far from unit scale, repeated calls bitwise equal, and memory from the pool poisoned with
NaN before each call (the accumulator is never read before it is written).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import rel_err

cp = pytest.importorskip("cupy")

pytestmark = pytest.mark.gpu  # conftest skips it without a GPU

from cufftconv import fused, grad
from cufftconv.dtypes import from_compute, to_compute
from cufftconv.validation import build_spec, linear_length

TOL = {"float16": 2e-3, "bfloat16": 1e-2}  # the gradient figures


def _poison_pool() -> None:
    junk = cp.full(64 << 20, cp.nan, dtype=cp.float32)  # 256 MB back to the pool, NaN-filled
    del junk


def _storage(x: np.ndarray, dtype: str):
    """(device array in the kernel's storage dtype, float64 host copy of the rounded values)."""
    h = from_compute(x.astype(np.float32), dtype, np)
    return cp.asarray(h), to_compute(h, dtype, "float64", np)


def _case(rng, n, dtype, B, H, L, Lk, mode, pre, post, scale=1.0, dv=True):
    """(got, want): dk always; du, dpre and dpost (those gated) when dv; float64 host arrays."""
    spec = build_spec((B, H, L), (H, Lk), mode=mode, dtype="float64", k_dtype="float64",
                      pregate_dtype="float64" if pre else None,
                      postgate_dtype="float64" if post else None)
    assert mode == "circular" or linear_length(L, Lk, mode) <= n
    Lout, off = spec.Lout, spec.offset
    u, u64 = _storage(rng.standard_normal((B, H, L)) * scale, dtype)
    dy, dy64 = _storage(rng.standard_normal((B, H, Lout)), dtype)
    g1, g1_64 = _storage(rng.standard_normal((B, H, L)), dtype) if pre else (None, None)
    g2, g2_64 = _storage(rng.standard_normal((B, H, Lout)), dtype) if post else (None, None)
    k_used = min(Lk, L) if mode == "causal" else Lk
    k = (rng.standard_normal((H, Lk)) / np.sqrt(Lk)).astype(np.float32)
    k[:, k_used:] = 0  # (causal: taps past L never reach an output)
    kern = fused.FusedBwd(n, dtype, pregate=pre, postgate=post)
    kr = kern.adjoint_spectrum(cp.asarray(k[:, :k_used]), off) if dv else None
    du = cp.empty(u.shape, dtype=u.dtype) if dv else None
    dpre = cp.empty(u.shape, dtype=u.dtype) if dv and pre else None
    kk = kern.filter_spectrum(cp.asarray(k[:, :k_used])) if dv and post else None
    dpost = cp.empty(dy.shape, dtype=dy.dtype) if dv and post else None
    kw = {"L": L, "out_offset": off, "Lout": Lout, "Lk": k_used, "pregate": g1, "postgate": g2,
          "du": du, "dpre": dpre, "kk": kk, "dpost": dpost}
    _poison_pool()
    for a in (du, dpre, dpost):
        if a is not None:
            a.fill(np.nan if dtype == "float16" else 0x7FC0)
    dk = kern(u, dy, kr, **kw)
    want = grad.HostBwdExecutor(spec).run_bwd(dy64, u64, k.astype(np.float64), g1_64, g2_64)
    assert dk.dtype == cp.float32 and dk.shape == (H, k_used)
    got = {"dk": cp.asnumpy(dk).astype(np.float64)}
    wanted = {"dk": want[1][:, :k_used]}
    for name, a, w in (("du", du, want[0]), ("dpre", dpre, want[2]), ("dpost", dpost, want[3])):
        if a is not None:
            got[name] = _host(a, dtype)
            wanted[name] = w
    for name, a in got.items():
        assert np.isfinite(a).all(), name
    return got, wanted, (kern, u, dy, kr, kw)


def _host(a, dtype):
    return to_compute(cp.asnumpy(a), dtype, "float64", np)


def _check(got, want, dtype, what=""):
    for name in got:
        err = rel_err(got[name], want[name])
        assert err <= TOL[dtype], f"{name}: rel err {err:.2e} {what}"


@pytest.mark.parametrize("n", fused.DK_SIZES)
@pytest.mark.parametrize("dtype", fused.DTYPES)
@pytest.mark.parametrize("pre,post", [(False, False), (True, True), (True, False), (False, True)])
def test_sizes_dtypes_gates(rng, n, dtype, pre, post):
    B, H = 5, 7
    L = n // 2 - 3 if pre else n // 2 + 5  # PAD 1 (both halves) and PAD 0
    Lk = n - L if n - L < L else L // 3
    got, want, _ = _case(rng, n, dtype, B, H, L, Lk, "full", pre, post)
    _check(got, want, dtype)


@pytest.mark.parametrize("mode", ["causal", "same", "valid", "circular"])
@pytest.mark.parametrize("B,H", [(1, 3), (2, 1), (9, 111), (64, 2)])
def test_modes_and_batch_layouts(rng, mode, B, H):
    n = 8192
    L, Lk = {"causal": (4000, 4096), "same": (5003, 3001), "valid": (6000, 2100),
             "circular": (8192, 8192)}[mode]
    got, want, _ = _case(rng, n, "float16", B, H, L, Lk, mode, True, True)
    _check(got, want, "float16", mode)


# The A = 2 sizes hold P = 8, 4, 2, 2 pairs of one channel per block (256 .. 2048): B = 1 and
# B = 17 leave units partly empty; (64, 2) splits each channel's units over several blocks.
@pytest.mark.parametrize("n", [256, 512, 1024, 2048])
@pytest.mark.parametrize("B,H", [(1, 3), (17, 5), (64, 2)])
@pytest.mark.parametrize("mode", ["causal", "same"])
def test_small_sizes_batch_layouts(rng, n, B, H, mode):
    L, Lk = (n // 2, n // 2) if mode == "causal" else (n // 2 + 7, n // 3)
    got, want, _ = _case(rng, n, "float16", B, H, L, Lk, mode, True, True)
    _check(got, want, "float16", mode)


@pytest.mark.parametrize("mode", ["valid", "circular"])
def test_small_size_modes(rng, mode):
    L, Lk = (1000, 25) if mode == "valid" else (1024, 1024)
    got, want, _ = _case(rng, 1024, "bfloat16", 3, 4, L, Lk, mode, False, True)
    _check(got, want, "bfloat16", mode)


@pytest.mark.parametrize("n", fused.DK_SIZES)
def test_dk_alone(rng, n):
    got, want, _ = _case(rng, n, "bfloat16", 3, 5, n // 2, n // 2, "causal", True, True, dv=False)
    assert set(got) == {"dk"}
    _check(got, want, "bfloat16")


# (u only: dk, dpre and dpost scale with it and stay in range; dy at scale too would put
# dpost = dy * conv(u, k) below fp16's normal range at 1e-3, a limit of the 16-bit output)
@pytest.mark.parametrize("dtype,scale", [("float16", 1e-3), ("float16", 2e2), ("bfloat16", 1e-15),
                                         ("bfloat16", 1e15)])
@pytest.mark.parametrize("n", [1024, 4096])
def test_far_from_unit_scale(rng, dtype, scale, n):
    got, want, _ = _case(rng, n, dtype, 3, 4, n // 2 - 48, n // 3, "causal", False, True, scale)
    _check(got, want, dtype)


@pytest.mark.parametrize("n,B,L,Lk", [(16384, 6, 9000, 7000), (512, 21, 300, 200)])
def test_deterministic(rng, n, B, L, Lk):
    got, _, (kern, u, dy, kr, kw) = _case(rng, n, "float16", B, 5, L, Lk, "full", True, False)
    for _ in range(3):
        _poison_pool()
        again = cp.asnumpy(kern(u, dy, kr, **kw)).astype(np.float64)
        assert np.array_equal(again, got["dk"])
        assert np.array_equal(_host(kw["du"], "float16"), got["du"])


def test_inputs_not_written(rng):
    _, _, (kern, u, dy, kr, kw) = _case(rng, 4096, "bfloat16", 3, 2, 3000, 900, "same", True, True)
    before = [a.copy() for a in (u, dy, kr, kw["pregate"], kw["postgate"])]
    kern(u, dy, kr, **kw)
    for a, b in zip((u, dy, kr, kw["pregate"], kw["postgate"]), before):
        assert cp.array_equal(a, b)


def test_bad_operands_raise_before_launch():
    kern = fused.FusedBwd(4096, "float16", pregate=False, postgate=False)
    u = cp.zeros((2, 3, 100), dtype=cp.float16)
    with pytest.raises(ValueError, match="dy|y must have shape"):
        kern(u, cp.zeros((2, 3, 99), dtype=cp.float16), L=100, out_offset=0, Lout=100, Lk=5)
    with pytest.raises(TypeError, match="dtype"):
        kern(u.astype(cp.float32), u, L=100, out_offset=0, Lout=100, Lk=5)
    with pytest.raises(ValueError, match="pregate/postgate"):
        kern(u, u, L=100, out_offset=0, Lout=100, Lk=5, pregate=u)
    with pytest.raises(ValueError, match="Lk"):
        kern(u, u, L=100, out_offset=0, Lout=100, Lk=0)
    with pytest.raises(ValueError, match="kr must be"):
        kern(u, u, None, L=100, out_offset=0, Lout=100, Lk=5, du=cp.empty_like(u))
    with pytest.raises(ValueError, match="dpre needs a pregate"):
        kern(u, u, None, L=100, out_offset=0, Lout=100, Lk=5, dpre=cp.empty_like(u))
    with pytest.raises(ValueError, match="du must have shape"):
        kern(u, u, None, L=100, out_offset=0, Lout=100, Lk=5, du=cp.empty((2, 3, 99), cp.float16))


# The folded backward (kernels/fold_bwd.cuh: FFT 4096, 512 .. 2048 interleaved and 8192; no gates
# with dk and du, or, up to 4096, both gates with every gradient): every mode's offset, the half
# variant (u, dy within n / 2) and the full one, B = 1, 32 and 4 units of 2 G sequences (grain g)
# with H = 3 / 2 / 111, with and without du, fp16 and bf16; the calls must take it
# (FusedBwd._folded; gated "same", whose offset is not a multiple of 8, and gated 8192 must not)
# and repeat bitwise.
def _folded_cases(n):
    """(mode, L, Lk) per mode at FFT n (L, Lout multiples of 8: the fold's granularity)."""
    return [("causal", n // 2, n // 2), ("causal", n // 4 - 24, 64), ("same", n // 2 - 48, n // 4),
            ("valid", 3 * n // 4 - 72, n // 4 - 31), ("full", n // 2, n // 4 + 1),
            ("circular", n, n)]


@pytest.mark.parametrize("dtype", fused.DTYPES)
@pytest.mark.parametrize("n,mode,L,Lk", [(n, *c) for n in (512, 1024, 2048, 4096, 8192)
                                          for c in _folded_cases(n)])
@pytest.mark.parametrize(
    "units,H,dv,gated", [(1, 3, True, False), (32, 2, True, False), (4, 111, False, False),
                         (1, 3, True, True), (8, 9, True, True)]
)
def test_folded_backward(rng, dtype, n, mode, L, Lk, units, H, dv, gated):
    from cufftconv import twiddle_fold

    if int(cp.cuda.Device().compute_capability) < twiddle_fold.MIN_CC:
        pytest.skip("the folded backward needs sm_90")
    B = units * twiddle_fold.bwd_grain(n)
    got, want, (kern, u, dy, kr, kw) = _case(rng, n, dtype, B, H, L, Lk, mode, gated, gated,
                                             dv=dv)
    lout, off = kw["Lout"], kw["out_offset"]
    strides = (H * L, L, H * lout, lout)
    outs = 7 if gated else int(dv)
    taken = kern._folded(B, L, lout, outs, strides, off) is not None
    fits = not gated or (off % 8 == 0 and n in twiddle_fold.BWD_GATED_SIZES)
    assert taken is fits, "declined" if taken is False else "taken"
    _check(got, want, dtype, mode)
    first = {name: a.copy() for name, a in got.items()}
    dk = kern(u, dy, kr, **kw)
    assert bool(cp.all(dk == cp.asarray(first["dk"]).astype(cp.float32))), "dk not repeatable"
    for name in ("du", "dpre", "dpost"):
        if name in first:
            assert np.array_equal(_host(kw[name], dtype), first[name]), f"{name} not repeatable"
