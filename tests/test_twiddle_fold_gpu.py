"""GPU tests of the twiddle-folded kernels (FFT 256, 4096, 8192, 16384, and 512 / 1024 / 2048
interleaved on the 4096-point core; kernels/twiddle_fold.cu and pair_fold.cuh) in FusedConv.

Each case asserts which kernel ran (the twiddle-folded one where the call fits it, the Monarch
kernel where it does not), then checks the result against the float64 reference with fresh
random inputs and NaN-poisoned outputs (helpers of tests/test_fused_gpu.py).
"""

from __future__ import annotations

import numpy as np
import pytest

cp = pytest.importorskip("cupy")

pytestmark = pytest.mark.gpu  # conftest skips it without a GPU

from test_fused_gpu import (
    TOL,
    Case,
    assert_repeatable,
    from_bits,
    is_nan,
    nan_bits,
    reference,
    run_case,
    to_bits,
)

from cufftconv import fused, twiddle_fold

SIZES = twiddle_fold.SIZES


@pytest.fixture(scope="module", autouse=True)
def _need_sm90():
    if int(cp.cuda.Device().compute_capability) < twiddle_fold.MIN_CC:
        pytest.skip("the twiddle-folded kernel needs sm_90")


def _kernel_of(n: int, c: Case, dtype: str, u_d, y_d, pre_d=None, post_d=None) -> str:
    conv = fused.FusedConv(n, dtype, pregate=c.pre, postgate=c.post)
    kf = conv.filter_spectrum(cp.zeros((c.H, c.Lk), dtype=cp.float32))
    gates = {"pregate": pre_d, "postgate": post_d}
    _, _, _, smem = conv.prepare(u_d, kf, y_d, L=c.L, out_offset=c.out_offset, Lout=c.Lout, **gates)
    return "twiddle_fold" if smem == twiddle_fold.smem(n) else "monarch"


def _taken_length(n: int) -> int:
    """An L (= Lout) whose calls take the folded kernel: n, or n / 2 at 256 (causal only)."""
    return n // 2 if n == 256 else n


def fits(n: int) -> list[Case]:
    b = twiddle_fold.batch_grain(n)  # the smallest batch the kernel takes
    off, lk, short = (1096, 1000, 1000) if n >= 4096 else (72, 50, 200)  # window, filter, L
    lk_many = 300 if n >= 4096 else 100
    out = [
        Case("circular", b, 5, n, n, 0, n, False, False),
        Case("circular_many_channels", 2 * b, 111, n, lk_many, 0, n, False, False),
        Case("causal", b, 3, n // 2, n // 2, 0, n // 2, False, False),
        Case("causal_short_filter", 3 * b, 2, n // 2, 17, 0, n // 2, False, False),
        Case("window", b, 3, n - off, lk, off, n - 2 * off, False, False),
        Case("hb_layout", b, 3, n // 2, n // 2, 0, n // 2, False, False, layout="hb"),
        Case("large_values", b, 3, n // 2, 64, 0, n // 2, False, False, scale=None),
        Case("small_values", b, 3, n, n, 0, n, False, False, scale=1e-3),
        Case("gated", b, 3, n, n, 0, n, True, True),
        Case("causal_gated", 2 * b, 5, n // 2, n // 2, 0, n // 2, True, True),
        Case("pregate_window", b, 3, n - off, lk, off, n - 2 * off, True, False),
        Case("postgate_hb_layout", b, 3, n // 2, n // 2, 0, n // 2, False, True, layout="hb"),
        Case("gated_large_values", b, 3, n // 2, 64, 0, n // 2, True, True, scale=None),
        Case("gated_short_input", b, 2, short, 17, 0, n, True, True),
        # the causal (half) variant needs both L and out_offset + Lout within n / 2
        Case("half_input_full_output", b, 3, n // 2, n // 2, 0, n, False, False),
        Case("half_window", b, 3, n // 2, n // 4, 8, n // 2 - 8, True, False),
        Case("half_short_output", b, 3, n // 2 - 8, n // 4, 0, n // 4, False, True),
    ]
    if n == 16384:  # more units than blocks (one per SM), gated and causal: the in-place loads
        out += [
            Case("many_units_causal_gated", 4, 150, n // 2, n // 2, 0, n // 2, True, True),
            Case("many_units_gated_window", 2, 300, n - 1096, 1000, 1096, n - 2192, True, True),
        ]
    if n in twiddle_fold.IL_SIZES:  # more units than blocks (2 per SM): each block loops
        out += [
            Case("many_units_gated", b, 600, n, n, 0, n, True, True),
            Case("many_units_causal", 2 * b, 300, n // 2, n // 2, 0, n // 2, False, False),
        ]
    if n == 256:  # more warp tiles (8 pairs) than warps in the grid: each warp loops
        out += [
            Case("many_tiles", 64, 600, n // 2, n // 2, 0, n // 2, False, False),
            Case("many_tiles_causal_gated", 66, 520, n // 2, n // 2, 0, n // 2, True, True),
        ]
    return out


def declines(n: int) -> list[Case]:
    f, b = _taken_length(n), twiddle_fold.batch_grain(n)  # (only the named property declines)
    out = [
        Case("odd_B", 5, 3, f, f, 0, f, False, False),
        Case("gated_odd_B", 5, 3, f, f, 0, f, True, True),
        Case("gated_unaligned_rows", b, 3, n // 2, n // 2, 0, n // 2, True, True, layout="padded"),
        Case("L_not_multiple_of_8", b, 3, f - 3, n // 4, 0, f - 3, False, False),
        Case("unaligned_rows", b, 3, n // 2, n // 2, 0, n // 2, False, False, layout="padded"),
    ]
    if n == 4096:
        out.append(Case("B_not_multiple_of_4", 6, 3, n, n, 0, n, False, False))
    if n in twiddle_fold.IL_SIZES:  # B a multiple of 2 but not of 4 G
        out.append(Case("B_not_multiple_of_grain", b - 2, 3, n, n, 0, n, False, False))
    return out


def _check(n: int, c: Case, dtype: str, want: str):
    seed = int(np.random.SeedSequence().entropy % (2**32))
    conv, kf, (u_d, pre_d, post_d, y_d, _), y, yb, ref = run_case(n, dtype, c, seed)
    tag = f"n={n} {dtype} case={c.name} seed={seed}"
    assert _kernel_of(n, c, dtype, u_d, y_d, pre_d, post_d) == want, tag
    assert not is_nan(y, dtype).any(), f"unwritten (NaN) outputs: {tag}"
    assert int(is_nan(yb, dtype).sum()) == yb.size - y.size, f"writes outside the view: {tag}"
    err = np.linalg.norm(from_bits(y, dtype) - ref) / np.linalg.norm(ref)
    assert err <= TOL[dtype], f"rel. error {err:.3e} > {TOL[dtype]}: {tag}"
    return conv, kf, (u_d, pre_d, post_d, y_d)


def _expected(n: int, c: Case) -> str:
    """FFT 256 takes the pair-folded kernel for its causal (half) variant only; FFT 512 with a
    gate the Monarch kernel (measured faster)."""
    half = twiddle_fold.half(n, c.L, c.out_offset, c.Lout)
    if n in twiddle_fold.IL_GATED_SLOWER and (c.pre or c.post):
        return "monarch"
    return "twiddle_fold" if n != 256 or half else "monarch"


@pytest.mark.parametrize("dtype", fused.DTYPES)
@pytest.mark.parametrize(("n", "idx"), [(n, i) for n in SIZES for i in range(len(fits(n)))])
def test_fits_and_matches_reference(n, idx, dtype):
    c = fits(n)[idx]
    _check(n, c, dtype, _expected(n, c))


@pytest.mark.parametrize("dtype", fused.DTYPES)
@pytest.mark.parametrize(("n", "idx"), [(n, i) for n in SIZES for i in range(len(declines(n)))])
def test_declines_to_monarch(n, idx, dtype):
    _check(n, declines(n)[idx], dtype, "monarch")


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_extreme_bf16_range_and_zero_pairs(n, dtype):
    """Pairs at very different magnitudes in one unit (per-pair exponents), and an all-zero pair.
    (A pair's two sequences, and at the interleaved sizes its 2 G, share one exponent: they
    get one scale here.)"""
    rng = np.random.default_rng(int(np.random.SeedSequence().entropy % (2**32)))
    scales = [1e-3, 1.0, 0.0, 2e2] if dtype == "float16" else [1e-15, 1.0, 0.0, 1e15]
    share = 2 * twiddle_fold.interleave(n)  # sequences that share an exponent
    B, H, L = 4 * share, 2, _taken_length(n)
    u = np.stack([s * rng.standard_normal((H, L)) for s in scales for _ in range(share)])
    k = (rng.standard_normal((H, L)) / np.sqrt(L)).astype(np.float32)
    ub = to_bits(u, dtype)
    conv = fused.FusedConv(n, dtype, pregate=False, postgate=False)
    kf = conv.filter_spectrum(cp.asarray(k))
    y_d = cp.full((B, H, L), nan_bits(dtype))
    u_d = cp.asarray(ub)
    conv(u_d, kf, y_d, L=L, out_offset=0, Lout=L)
    assert (
        _kernel_of(n, Case("x", B, H, L, L, 0, L, False, False), dtype, u_d, y_d) == "twiddle_fold"
    )
    y = from_bits(cp.asnumpy(y_d), dtype)
    ref = reference(from_bits(ub, dtype), k.astype(np.float64), n, 0, L)
    for b in range(B):
        nr = np.linalg.norm(ref[b])
        if nr == 0:
            assert not np.any(y[b]), f"zero pair gave nonzero output (b={b})"
            continue
        err = np.linalg.norm(y[b] - ref[b]) / nr
        assert err <= TOL[dtype], f"b={b} scale={scales[b // share]}: rel err {err:.3e}"


def _offset_view(a, offset: int, dtype: str):
    """A copy of a (C-contiguous) that starts `offset` elements into a poisoned buffer."""
    buf = cp.full(a.size + 8, nan_bits(dtype))
    v = buf[offset : offset + a.size].reshape(a.shape)
    v[...] = cp.asarray(a)
    return v


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", fused.DTYPES)
@pytest.mark.parametrize("gated", [False, True])
def test_plan_launcher_and_misaligned_pointers(n, dtype, gated):
    """The pre-resolved launcher takes the twiddle-folded kernel for aligned pointers and hands
    a misaligned y, pregate or postgate (a view one element into its buffer) to the Monarch
    kernel; all right."""
    rng = np.random.default_rng(int(np.random.SeedSequence().entropy % (2**32)))
    B, H, L = max(4, twiddle_fold.batch_grain(n)), 3, _taken_length(n)
    u = to_bits(rng.standard_normal((B, H, L)), dtype)
    pre = to_bits(rng.standard_normal((B, H, L)), dtype)
    post = to_bits(rng.standard_normal((B, H, L)), dtype)
    k = (rng.standard_normal((H, L)) / np.sqrt(L)).astype(np.float32)
    conv = fused.FusedConv(n, dtype, pregate=gated, postgate=gated)
    kf = conv.filter_spectrum(cp.asarray(k))
    launch = conv.launcher(B, H, L, 0, L)
    folded = not (gated and n in twiddle_fold.IL_GATED_SLOWER)
    assert isinstance(launch, fused.AlignedLauncher) is folded
    gates = (from_bits(pre, dtype), from_bits(post, dtype)) if gated else (None, None)
    ref = reference(from_bits(u, dtype), k.astype(np.float64), n, 0, L, *gates)
    u_d = cp.asarray(u)
    stream = cp.cuda.get_current_stream()
    shifts = [(0, 0, 0), (1, 0, 0)] + ([(0, 1, 0), (0, 0, 1)] if gated else [])
    for y_off, pre_off, post_off in shifts:
        y_d = _offset_view(np.zeros((B, H, L), np.uint16), y_off, dtype)
        y_d[...] = nan_bits(dtype)
        pre_d = _offset_view(pre, pre_off, dtype) if gated else u_d
        post_d = _offset_view(post, post_off, dtype) if gated else y_d
        launch(u_d.data.ptr, pre_d.data.ptr, kf, y_d.data.ptr, post_d.data.ptr, stream)
        y = from_bits(cp.asnumpy(y_d), dtype)
        err = np.linalg.norm(y - ref) / np.linalg.norm(ref)
        assert err <= TOL[dtype], f"offsets {(y_off, pre_off, post_off)}: rel err {err:.3e}"


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", fused.DTYPES)
@pytest.mark.parametrize("gated", [False, True])
def test_deterministic(n, dtype, gated):
    L = _taken_length(n)
    c = Case("det", max(8, twiddle_fold.batch_grain(n)), 6, L, n // 3, 0, L, gated, gated)
    conv, kf, (u_d, pre_d, post_d, y_d) = _check(n, c, dtype, _expected(n, c))
    assert_repeatable(conv, kf, c, (u_d, pre_d, post_d, y_d), dtype, f"n={n} {dtype}")


@pytest.mark.parametrize("dtype", fused.DTYPES)
@pytest.mark.parametrize(
    ("n", "mode"),
    [
        (256, "causal"),
        (1024, "circular"),
        (2048, "causal"),
        (4096, "causal"),
        (4096, "circular"),
        (8192, "causal"),
        (16384, "causal"),
    ],
)
def test_frozen_filter_backward_through_folded_kernel(n, mode, dtype):
    """torch autograd with k frozen: du, dpregate and dpostgate come from forward-kernel launches
    (the adjoint convolutions), which take the twiddle-folded kernel at these shapes (B = 4, or
    the interleaved sizes' grain; 16-byte granular rows; the causal ones its half variant).
    Checked against float64."""
    torch = pytest.importorskip("torch")
    from test_grad_gpu import _check_grads, _host, _ref_bwd

    import cufftconv.torch as ct

    L = n // 2 if mode == "causal" else n
    tdt = getattr(torch, dtype)
    g = torch.Generator(device="cuda").manual_seed(int(np.random.SeedSequence().entropy % 2**31))

    def rnd(*shape, grad=True):
        t = torch.randn(*shape, device="cuda", generator=g).to(tdt)
        return t.requires_grad_(grad)

    b = max(4, twiddle_fold.batch_grain(n))
    u, pre, post, dy = rnd(b, 3, L), rnd(b, 3, L), rnd(b, 3, L), rnd(b, 3, L, grad=False)
    k = (torch.randn(3, L, device="cuda", generator=g) / L**0.5).requires_grad_(False)
    conv = fused.FusedConv(n, dtype, pregate=True, postgate=True)
    assert isinstance(conv.launcher(b, 3, L, 0, L), fused.AlignedLauncher)  # folded-eligible
    y = ct.fftconv(u, k, mode=mode, pregate=pre, postgate=post)
    y.backward(dy)
    ref = _ref_bwd(dy, u, k, pre, post, mode)
    grads = [u.grad, None, pre.grad, post.grad]
    _check_grads(
        grads,
        [ref[0], None, ref[2], ref[3]],
        (u, None, pre, post),
        lambda t: isinstance(t, torch.Tensor),
    )
    assert _host(y).shape == (b, 3, L)


# Frequency-sparse masks (frequency f kept iff mask[f % 16]) on the SPARSE variant at 4096 /
# 8192: halves, quarters, one class, a band around 0 and an irregular one, all Hermitian.
SPARSE_MASKS = {
    "keep_1/2": tuple(r % 2 == 0 for r in range(16)),
    "keep_1/4": tuple(r % 4 == 0 for r in range(16)),
    "keep_1/16": tuple(r == 0 for r in range(16)),
    "band_0_1_8": tuple(r in (0, 1, 8, 15) for r in range(16)),
    "odd_classes": tuple(r in (1, 3, 5, 11, 13, 15) for r in range(16)),
    "irregular": tuple(r in (0, 2, 3, 7, 9, 13, 14) for r in range(16)),
    "twelve_classes": tuple(r not in (4, 7, 9, 12) for r in range(16)),  # two column groups
}


def _sparse_cases(n: int) -> list[Case]:
    b = twiddle_fold.batch_grain(n)
    return [
        Case("circular", 2 * b, 3, n, n, 0, n, False, False),
        Case("causal", b, 5, n // 2, n // 2, 0, n // 2, False, False),
        Case("gated", b, 3, n, n // 3, 0, n, True, True),
        Case("causal_gated_window", b, 3, n // 2, 100, 8, n // 2 - 16, True, True),
        Case("large_values", b, 2, n, 64, 0, n, False, True, scale=None),
    ]


@pytest.mark.parametrize("dtype", fused.DTYPES)
@pytest.mark.parametrize("mask_name", list(SPARSE_MASKS))
@pytest.mark.parametrize(
    ("n", "idx"),
    [(n, i) for n in (*twiddle_fold.SPARSE_SIZES, 16384, 1024, 2048) for i in range(5)],
)
def test_sparse_masks_match_masked_reference(n, idx, mask_name, dtype):
    """The SPARSE variant runs where the mask fits it (else at 4096 and the interleaved sizes
    the dense folded kernel on the masked spectrum, at 8192 / 16384 the dense one skipping the
    groups the mask zeroes, or the Monarch kernel; told apart by shared memory) and the result
    equals the float64 convolution with the masked spectrum; it differs from the dense one."""
    c, mask = _sparse_cases(n)[idx], SPARSE_MASKS[mask_name]
    seed = int(np.random.SeedSequence().entropy % (2**32))
    rng = np.random.default_rng(seed)
    tag = f"n={n} {dtype} case={c.name} mask={mask_name} seed={seed}"
    scale = c.scale if c.scale is not None else (3000.0 if dtype == "float16" else 3e7)
    u = to_bits(scale * rng.standard_normal((c.B, c.H, c.L)), dtype)
    pre = to_bits(rng.standard_normal((c.B, c.H, c.L)), dtype) if c.pre else None
    post = to_bits(rng.standard_normal((c.B, c.H, c.Lout)), dtype) if c.post else None
    k = (rng.standard_normal((c.H, c.Lk)) / np.sqrt(c.Lk)).astype(np.float32)
    conv = fused.FusedConv(n, dtype, pregate=c.pre, postgate=c.post, freq_mask=mask)
    kf = conv.filter_spectrum(cp.asarray(k))
    u_d = cp.asarray(u)
    pre_d = None if pre is None else cp.asarray(pre)
    post_d = None if post is None else cp.asarray(post)
    y_d = cp.full((c.B, c.H, c.Lout), nan_bits(dtype))
    gates = {"pregate": pre_d, "postgate": post_d}
    _, _, args, smem = conv.prepare(
        u_d, kf, y_d, L=c.L, out_offset=c.out_offset, Lout=c.Lout, **gates
    )
    if twiddle_fold.sparse_fits(n, mask):
        assert smem == twiddle_fold.smem(n, True), tag
        assert int(args[-1]) == twiddle_fold.live_word(n, mask), tag
    elif n == 4096 or n in twiddle_fold.IL_SIZES:
        assert smem == twiddle_fold.smem(n), tag
    elif twiddle_fold.dead_groups(n, mask):  # e.g. keep 1/2, odd classes: groups skipped
        assert smem == twiddle_fold.smem(n), tag
        assert int(args[-1]) == twiddle_fold.dead_groups(n, mask) != 0, tag
    else:
        assert smem not in (twiddle_fold.smem(n), twiddle_fold.smem(n, True)), tag
    u_before = u_d.copy()
    conv(u_d, kf, y_d, L=c.L, out_offset=c.out_offset, Lout=c.Lout, **gates)
    y = cp.asnumpy(y_d)
    assert not is_nan(y, dtype).any(), f"unwritten (NaN) outputs: {tag}"
    assert bool((u_d == u_before).all()), f"input written: {tag}"
    u64 = from_bits(u, dtype) * (1.0 if pre is None else from_bits(pre, dtype))
    keep = np.asarray(mask)[np.arange(n // 2 + 1) % 16]
    spec = np.fft.rfft(u64, n=n, axis=-1) * np.fft.rfft(k.astype(np.float64), n=n, axis=-1)[None]
    win = slice(c.out_offset, c.out_offset + c.Lout)
    ref = np.fft.irfft(spec * keep, n=n, axis=-1)[..., win]
    dense = np.fft.irfft(spec, n=n, axis=-1)[..., win]
    if post is not None:
        ref, dense = ref * from_bits(post, dtype), dense * from_bits(post, dtype)
    got = from_bits(y, dtype)
    err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    assert err <= TOL[dtype], f"rel. error {err:.3e} > {TOL[dtype]}: {tag}"
    assert np.linalg.norm(got - dense) / np.linalg.norm(dense) > 10 * TOL[dtype], tag
    if idx == 0:  # bitwise repeatable
        first = y_d.copy()
        y_d[...] = nan_bits(dtype)
        conv(u_d, kf, y_d, L=c.L, out_offset=c.out_offset, Lout=c.Lout, **gates)
        assert bool((y_d == first).all()), f"not repeatable: {tag}"


@pytest.mark.parametrize("n", twiddle_fold.SPARSE_SIZES)
def test_sparse_plan_launcher(n):
    """The pre-resolved launcher of a masked FusedConv runs the SPARSE variant with the live
    word, and gives the same bits as prepare's launch."""
    rng = np.random.default_rng(int(np.random.SeedSequence().entropy % (2**32)))
    mask = SPARSE_MASKS["keep_1/4"]
    B, H, L = 4, 3, n
    u_d = cp.asarray(to_bits(rng.standard_normal((B, H, L)), "float16"))
    k = (rng.standard_normal((H, L)) / np.sqrt(L)).astype(np.float32)
    conv = fused.FusedConv(n, "float16", pregate=False, postgate=False, freq_mask=mask)
    kf = conv.filter_spectrum(cp.asarray(k))
    launch = conv.launcher(B, H, L, 0, L)
    assert isinstance(launch, fused.AlignedLauncher)
    assert launch.smem == twiddle_fold.smem(n, True)
    assert int(launch.tail[-1]) == twiddle_fold.live_word(n, mask)
    y1 = cp.full((B, H, L), nan_bits("float16"))
    y2 = cp.full((B, H, L), nan_bits("float16"))
    conv(u_d, kf, y1, L=L, out_offset=0, Lout=L)
    launch(u_d.data.ptr, u_d.data.ptr, kf, y2.data.ptr, y2.data.ptr, cp.cuda.get_current_stream())
    assert bool((y1 == y2).all())


@pytest.mark.parametrize("n", twiddle_fold.SPARSE_SIZES)
@pytest.mark.parametrize("mask_name", ["keep_1/4", "band_0_1_8"])
def test_sparse_many_units_per_block(n, mask_name):
    """More units than the grid has blocks (each block loops, reusing its lists and buffers):
    every sequence against the masked float64 reference."""
    mask = SPARSE_MASKS[mask_name]
    rng = np.random.default_rng(int(np.random.SeedSequence().entropy % (2**32)))
    B, H = 16, 160 if n == 4096 else 80  # 640 units at 4096 and 8192 (over 2 x 132 blocks)
    u = to_bits(rng.standard_normal((B, H, n)), "float16")
    k = (rng.standard_normal((H, n)) / np.sqrt(n)).astype(np.float32)
    conv = fused.FusedConv(n, "float16", pregate=False, postgate=False, freq_mask=mask)
    kf = conv.filter_spectrum(cp.asarray(k))
    u_d = cp.asarray(u)
    y_d = cp.full((B, H, n), nan_bits("float16"))
    assert conv.prepare(u_d, kf, y_d, L=n, out_offset=0, Lout=n)[3] == twiddle_fold.smem(n, True)
    conv(u_d, kf, y_d, L=n, out_offset=0, Lout=n)
    keep = np.asarray(mask)[np.arange(n // 2 + 1) % 16]
    spec = np.fft.rfft(from_bits(u, "float16"), axis=-1) * np.fft.rfft(k.astype(np.float64))[None]
    ref = np.fft.irfft(spec * keep, n=n, axis=-1)
    got = from_bits(cp.asnumpy(y_d), "float16")
    err = np.linalg.norm(got - ref, axis=-1) / np.linalg.norm(ref, axis=-1)
    assert float(err.max()) <= TOL["float16"], (
        f"worst sequence {np.unravel_index(err.argmax(), err.shape)}"
    )


@pytest.mark.parametrize("dtype", fused.DTYPES)
@pytest.mark.parametrize(
    ("n", "B0", "count", "gated"),
    [
        (16384, 2, 5, True),  # odd windows per row: pairs straddle two outer rows
        (16384, 3, 2, False),
        (8192, 2, 7, True),
        (8192, 1, 4, False),
    ],
)
def test_two_level_windows(n, B0, count, gated, dtype):
    """(B0, count, H, n) overlapping windows of (B0, H, total) rows, as the partial path
    builds them (inner stride hop, outer stride the row's): the TWO instantiations take them
    (two-level batch), and each window's circular convolution matches float64. Outputs are
    written to disjoint windows of a NaN-poisoned output row; the rest stays NaN."""
    rng = np.random.default_rng(int(np.random.SeedSequence().entropy % (2**32)))
    H, hop, lk = 3, n - 1000, 700
    total = hop * (count - 1) + n
    u = to_bits(rng.standard_normal((B0, H, total)), dtype)
    pre = to_bits(rng.standard_normal((B0, H, total)), dtype) if gated else None
    post = to_bits(rng.standard_normal((B0, H, hop * count)), dtype) if gated else None
    k = (rng.standard_normal((H, lk)) / np.sqrt(lk)).astype(np.float32)
    conv = fused.FusedConv(n, dtype, pregate=gated, postgate=gated)
    kf = conv.filter_spectrum(cp.asarray(k))
    st = cp.float16 if dtype == "float16" else cp.uint16

    def windows(a, length, step):
        it = a.itemsize
        return cp.lib.stride_tricks.as_strided(
            a, shape=(B0, count, H, length), strides=(a.strides[0], step * it, a.strides[1], it)
        )

    u_d = cp.asarray(u, dtype=st)
    y_d = cp.full((B0, H, hop * count), nan_bits(dtype), dtype=st)
    pre_d = None if pre is None else cp.asarray(pre, dtype=st)
    post_d = None if post is None else cp.asarray(post, dtype=st)
    off = 1000  # window outputs [off, off + hop) go to y[.., i hop : (i + 1) hop]
    args = {
        "L": n,
        "out_offset": off,
        "Lout": hop,
        "pregate": None if pre_d is None else windows(pre_d, n, hop),
        "postgate": None if post_d is None else windows(post_d, hop, hop),
    }
    uw, yw = windows(u_d, n, hop), windows(y_d, hop, hop)
    smem = conv.prepare(uw, kf, yw, **args)[3]
    assert smem == twiddle_fold.smem(n), "the twiddle-folded kernel declined the windows"
    u_before = u_d.copy()
    conv(uw, kf, yw, **args)
    y = from_bits(cp.asnumpy(y_d), dtype)
    assert bool((u_d == u_before).all()), "input written"
    assert not np.isnan(y).any(), "unwritten outputs"
    for b in range(B0):
        for i in range(count):
            x = from_bits(u[b, :, i * hop : i * hop + n], dtype)
            g = None if pre is None else from_bits(pre[b, :, i * hop : i * hop + n], dtype)
            p = None if post is None else from_bits(post[b, :, i * hop : (i + 1) * hop], dtype)
            ref = reference(x[None], k.astype(np.float64), n, off, hop, g, p)[0]
            got = y[b, :, i * hop : (i + 1) * hop]
            err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
            assert err <= TOL[dtype], f"row {b} window {i}: rel err {err:.3e}"
