"""GPU tests of the twiddle-folded FFT-4096 kernel (kernels/twiddle_fold.cu) inside FusedConv.

Each case asserts which kernel ran (the twiddle-folded one where the call fits it, the Monarch
kernel where it does not), then checks the result against the float64 reference with fresh
random inputs and NaN-poisoned outputs (helpers of tests/test_fused_gpu.py).
"""

from __future__ import annotations

import numpy as np
import pytest

cp = pytest.importorskip("cupy")

pytestmark = pytest.mark.gpu  # conftest skips it without a GPU

from test_fused_gpu import TOL, Case, from_bits, is_nan, nan_bits, reference, run_case, to_bits

from cufftconv import fused, twiddle_fold

N = 4096


@pytest.fixture(scope="module", autouse=True)
def _need_sm90():
    if int(cp.cuda.Device().compute_capability) < twiddle_fold.MIN_CC:
        pytest.skip("the twiddle-folded kernel needs sm_90")


def _kernel_of(c: Case, dtype: str, u_d, y_d) -> str:
    conv = fused.FusedConv(N, dtype, pregate=c.pre, postgate=c.post)
    kf = conv.filter_spectrum(cp.zeros((c.H, c.Lk), dtype=cp.float32))
    gates = {"pregate": u_d if c.pre else None, "postgate": y_d if c.post else None}
    _, _, _, smem = conv.prepare(u_d, kf, y_d, L=c.L, out_offset=c.out_offset, Lout=c.Lout, **gates)
    return "twiddle_fold" if smem == twiddle_fold.SMEM else "monarch"


FITS = [
    Case("circular", 4, 5, N, N, 0, N, False, False),
    Case("circular_many_channels", 8, 111, N, 300, 0, N, False, False),
    Case("causal", 4, 3, N // 2, N // 2, 0, N // 2, False, False),
    Case("causal_short_filter", 12, 2, N // 2, 17, 0, N // 2, False, False),
    Case("window", 4, 3, 3000, 1000, 1096, 2000, False, False),
    Case("hb_layout", 4, 3, N // 2, N // 2, 0, N // 2, False, False, layout="hb"),
    Case("large_values", 4, 3, N // 2, 64, 0, N // 2, False, False, scale=None),
    Case("small_values", 4, 3, N, N, 0, N, False, False, scale=1e-3),
]
DECLINES = [
    Case("gated", 4, 3, N, N, 0, N, True, True),
    Case("odd_B", 5, 3, N, N, 0, N, False, False),
    Case("B_not_multiple_of_4", 6, 3, N, N, 0, N, False, False),
    Case("L_not_multiple_of_8", 4, 3, N - 3, N // 2, 0, N - 3, False, False),
    Case("unaligned_rows", 4, 3, N // 2, N // 2, 0, N // 2, False, False, layout="padded"),
]


def _check(c: Case, dtype: str, want: str):
    seed = int(np.random.SeedSequence().entropy % (2**32))
    conv, kf, (u_d, _, _, y_d, _), y, yb, ref = run_case(N, dtype, c, seed)
    tag = f"{dtype} case={c.name} seed={seed}"
    assert _kernel_of(c, dtype, u_d, y_d) == want, tag
    assert not is_nan(y, dtype).any(), f"unwritten (NaN) outputs: {tag}"
    assert int(is_nan(yb, dtype).sum()) == yb.size - y.size, f"writes outside the view: {tag}"
    err = np.linalg.norm(from_bits(y, dtype) - ref) / np.linalg.norm(ref)
    assert err <= TOL[dtype], f"rel. error {err:.3e} > {TOL[dtype]}: {tag}"
    return conv, kf, u_d, y_d


@pytest.mark.parametrize("dtype", fused.DTYPES)
@pytest.mark.parametrize("idx", range(len(FITS)))
def test_fits_and_matches_reference(idx, dtype):
    _check(FITS[idx], dtype, "twiddle_fold")


@pytest.mark.parametrize("dtype", fused.DTYPES)
@pytest.mark.parametrize("idx", range(len(DECLINES)))
def test_declines_to_monarch(idx, dtype):
    _check(DECLINES[idx], dtype, "monarch")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_extreme_bf16_range_and_zero_pairs(dtype):
    """Pairs at very different magnitudes in one unit (per-pair exponents), and an all-zero pair."""
    rng = np.random.default_rng(int(np.random.SeedSequence().entropy % (2**32)))
    scales = [1e-3, 1.0, 0.0, 2e2] if dtype == "float16" else [1e-15, 1.0, 0.0, 1e15]
    B, H = 8, 2
    u = np.stack([s * rng.standard_normal((H, N)) for s in scales for _ in range(2)])
    k = (rng.standard_normal((H, N)) / np.sqrt(N)).astype(np.float32)
    ub = to_bits(u, dtype)
    conv = fused.FusedConv(N, dtype, pregate=False, postgate=False)
    kf = conv.filter_spectrum(cp.asarray(k))
    y_d = cp.full((B, H, N), nan_bits(dtype))
    u_d = cp.asarray(ub)
    conv(u_d, kf, y_d, L=N, out_offset=0, Lout=N)
    assert _kernel_of(Case("x", B, H, N, N, 0, N, False, False), dtype, u_d, y_d) == "twiddle_fold"
    y = from_bits(cp.asnumpy(y_d), dtype)
    ref = reference(from_bits(ub, dtype), k.astype(np.float64), N, 0, N)
    for b in range(B):
        nr = np.linalg.norm(ref[b])
        if nr == 0:
            assert not np.any(y[b]), f"zero pair gave nonzero output (b={b})"
            continue
        err = np.linalg.norm(y[b] - ref[b]) / nr
        assert err <= TOL[dtype], f"b={b} scale={scales[b // 2]}: rel err {err:.3e}"


@pytest.mark.parametrize("dtype", fused.DTYPES)
def test_plan_launcher_and_misaligned_pointers(dtype):
    """The pre-resolved launcher takes the twiddle-folded kernel for aligned pointers and hands
    a misaligned y (a view one element into its buffer) to the Monarch kernel; both right."""
    rng = np.random.default_rng(int(np.random.SeedSequence().entropy % (2**32)))
    B, H, L = 4, 3, N
    u = to_bits(rng.standard_normal((B, H, L)), dtype)
    k = (rng.standard_normal((H, L)) / np.sqrt(L)).astype(np.float32)
    conv = fused.FusedConv(N, dtype, pregate=False, postgate=False)
    kf = conv.filter_spectrum(cp.asarray(k))
    launch = conv.launcher(B, H, L, 0, L)
    assert isinstance(launch, fused.AlignedLauncher)
    ref = reference(from_bits(u, dtype), k.astype(np.float64), N, 0, L)
    u_d = cp.asarray(u)
    stream = cp.cuda.get_current_stream()
    for offset in (0, 1):
        buf = cp.full(B * H * L + 8, nan_bits(dtype))
        y_d = buf[offset : offset + B * H * L].reshape(B, H, L)
        launch(u_d.data.ptr, u_d.data.ptr, kf, y_d.data.ptr, y_d.data.ptr, stream)
        y = from_bits(cp.asnumpy(y_d), dtype)
        err = np.linalg.norm(y - ref) / np.linalg.norm(ref)
        assert err <= TOL[dtype], f"offset {offset}: rel err {err:.3e}"


@pytest.mark.parametrize("dtype", fused.DTYPES)
def test_deterministic(dtype):
    c = Case("det", 8, 6, N, N // 3, 0, N, False, False)
    conv, kf, u_d, y_d = _check(c, dtype, "twiddle_fold")
    first = y_d.copy()
    for _ in range(2):
        y_d[...] = nan_bits(dtype)
        conv(u_d, kf, y_d, L=c.L, out_offset=c.out_offset, Lout=c.Lout)
        assert bool((y_d.view(cp.uint16) == first.view(cp.uint16)).all()), "runs differ"
