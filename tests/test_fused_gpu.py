"""GPU tests of the fused forward convolution kernels (cufftconv.fused).

Every case draws fresh random inputs (the seed is printed in failure messages), poisons the
output buffer with NaN, and compares with a float64 NumPy reference computed from the same
rounded 16-bit inputs:
    y[b,h,t] = post[b,h,t] * sum_s kpad[h,s] * upad[b,h,(t + out_offset - s) mod n].
"""

from __future__ import annotations

import numpy as np
import pytest

cp = pytest.importorskip("cupy")

pytestmark = pytest.mark.gpu  # conftest skips it without a GPU

from cufftconv import fused

TOL = {"float16": 1e-3, "bfloat16": 6e-3}


@pytest.fixture(scope="module", autouse=True)
def _compile_all():
    """Compile every configuration used below in parallel threads (NVRTC, first use only)."""
    cfgs = [
        (n, dt, pre, post)
        for n in fused.SUPPORTED_N
        for dt in fused.DTYPES
        for pre in (False, True)
        for post in (False, True)
    ]
    fused.precompile(cfgs, max_workers=16)


# ------------------------------------------------------------------------------------------------
# 16-bit helpers (bf16 travels as uint16 bits)
# ------------------------------------------------------------------------------------------------
def to_bits(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "float16":
        return x.astype(np.float16)
    b = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return b.astype(np.uint16)


def from_bits(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "float16":
        return x.astype(np.float64)
    return (x.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def nan_bits(dtype: str):
    return np.float16(np.nan) if dtype == "float16" else np.uint16(0x7FC0)


def is_nan(x: np.ndarray, dtype: str) -> np.ndarray:
    return np.isnan(from_bits(x, dtype))


def reference(u, k, n, out_offset, lout, pre=None, post=None):
    """float64 circular convolution of the zero-padded sequences, cropped and gated."""
    x = u if pre is None else u * pre
    spec = np.fft.rfft(x, n=n, axis=-1) * np.fft.rfft(k, n=n, axis=-1)[None]
    y = np.fft.irfft(spec, n=n, axis=-1)[..., out_offset : out_offset + lout]
    return y if post is None else y * post


def strided_view(shape, layout, dtype, fill):
    """(base buffer, (B, H, L) view of it) with the given stride layout, filled with `fill`."""
    b, h, length = shape
    st = np.dtype(np.float16) if dtype == "float16" else np.dtype(np.uint16)
    if layout == "contiguous":
        base = cp.full(shape, fill, dtype=st)
        return base, base
    if layout == "padded":  # offsets and padding on every axis: rows not 16-byte aligned
        base = cp.full((b + 1, h + 3, length + 5), fill, dtype=st)
        return base, base[1:, 1 : h + 1, 3 : length + 3]
    if layout == "hb":  # stored as (H, B, L): B stride < H stride
        base = cp.full((h, b, length + 8), fill, dtype=st)
        return base, base[:, :, 8:].transpose(1, 0, 2)
    raise ValueError(layout)


class Case:
    def __init__(
        self, name, B, H, L, Lk, out_offset, Lout, pre, post, layout="contiguous", scale=1.0
    ):
        self.__dict__.update(locals())
        del self.__dict__["self"]


def cases_for(n: int):
    p = _prime_below(n // 3)
    half = n // 2
    return [
        Case("circular", 3, 5, n, n, 0, n, False, False),
        Case("causal_gated", 2, 7, half, half, 0, half, True, True),
        Case(
            "prime_L_offset", 5, 3, p, p // 2 + 1, 7, max(1, p - 20), True, False, layout="padded"
        ),
        Case("full_linear", 4, 2, n - n // 4, n // 4 + 1, 0, n, False, True, layout="hb"),
        Case("out_half_only", 1, 1, n, 5, 3, half - 3, False, False),
        Case("many_channels", 2, 111, 129, 77, 1, 129, True, True, layout="padded"),
        Case("odd_B_window", 7, 2, n, n // 2, n // 3, n // 3, False, False, layout="padded"),
        Case("large_values", 2, 3, half, 64, 0, half, False, False, scale=None),
    ]


def _prime_below(m: int) -> int:
    def is_p(v):
        return v >= 2 and all(v % d for d in range(2, int(v**0.5) + 1))

    v = m
    while not is_p(v):
        v -= 1
    return v


def run_case(n: int, dtype: str, c: Case, seed: int):
    rng = np.random.default_rng(seed)
    scale = c.scale
    if scale is None:  # far from unit range: exercises the per-pair power-of-two scaling
        scale = 3000.0 if dtype == "float16" else 3e7
    shape_u = (c.B, c.H, c.L)
    shape_y = (c.B, c.H, c.Lout)
    u = to_bits(scale * rng.standard_normal(shape_u), dtype)
    pre = to_bits(rng.standard_normal(shape_u), dtype) if c.pre else None
    post = to_bits(rng.standard_normal(shape_y), dtype) if c.post else None
    k = (rng.standard_normal((c.H, c.Lk)) / np.sqrt(c.Lk)).astype(np.float32)

    poison = nan_bits(dtype)
    _, u_d = strided_view(shape_u, c.layout, dtype, poison)
    u_d[...] = cp.asarray(u)
    pre_d = post_d = None
    if c.pre:
        _, pre_d = strided_view(shape_u, c.layout, dtype, poison)
        pre_d[...] = cp.asarray(pre)
    if c.post:
        _, post_d = strided_view(shape_y, c.layout, dtype, poison)
        post_d[...] = cp.asarray(post)
    ybase, y_d = strided_view(shape_y, c.layout, dtype, poison)

    conv = fused.FusedConv(n, dtype, pregate=c.pre, postgate=c.post)
    kf = conv.filter_spectrum(cp.asarray(k))
    conv(u_d, kf, y_d, L=c.L, out_offset=c.out_offset, Lout=c.Lout, pregate=pre_d, postgate=post_d)
    cp.cuda.runtime.deviceSynchronize()
    y = cp.asnumpy(y_d)
    yb = cp.asnumpy(ybase)
    ref = reference(
        from_bits(u, dtype),
        k.astype(np.float64),
        n,
        c.out_offset,
        c.Lout,
        None if pre is None else from_bits(pre, dtype),
        None if post is None else from_bits(post, dtype),
    )
    return conv, kf, (u_d, pre_d, post_d, y_d, ybase), y, yb, ref


def assert_repeatable(conv, kf, c: Case, ops, dtype: str, tag: str) -> None:
    """Two more calls on the same operands (output re-poisoned) give bitwise the first result."""
    u_d, pre_d, post_d, y_d = ops
    first = y_d.copy()
    for _ in range(2):
        y_d[...] = nan_bits(dtype)
        conv(
            u_d,
            kf,
            y_d,
            L=c.L,
            out_offset=c.out_offset,
            Lout=c.Lout,
            pregate=pre_d,
            postgate=post_d,
        )
        assert bool((y_d.view(cp.uint16) == first.view(cp.uint16)).all()), f"{tag}: runs differ"


@pytest.mark.parametrize("dtype", fused.DTYPES)
@pytest.mark.parametrize("n", fused.SUPPORTED_N)
@pytest.mark.parametrize("case_idx", range(8))
def test_fused_matches_reference(n, dtype, case_idx):
    c = cases_for(n)[case_idx]
    seed = int(np.random.SeedSequence().entropy % (2**32))
    _, _, _, y, yb, ref = run_case(n, dtype, c, seed)
    tag = f"n={n} {dtype} case={c.name} B={c.B} H={c.H} L={c.L} Lk={c.Lk} off={c.out_offset} Lout={c.Lout} seed={seed}"
    assert not is_nan(y, dtype).any(), f"unwritten (NaN) outputs: {tag}"
    # the view holds no NaN, so every NaN left in the base buffer lies outside the view: all of
    # the outside must still be poisoned
    assert int(is_nan(yb, dtype).sum()) == yb.size - y.size, (
        f"writes outside the output view: {tag}"
    )
    err = np.linalg.norm(from_bits(y, dtype) - ref) / np.linalg.norm(ref)
    assert err <= TOL[dtype], f"rel. error {err:.3e} > {TOL[dtype]}: {tag}"


@pytest.mark.parametrize("dtype", fused.DTYPES)
@pytest.mark.parametrize("n", [256, 2048, 4096, 32768])
def test_fused_deterministic(n, dtype):
    c = Case("det", 5, 9, n // 2 + 3, n // 4, 2, n // 2, True, True, layout="padded")
    seed = int(np.random.SeedSequence().entropy % (2**32))
    conv, kf, (u_d, pre_d, post_d, y_d, _), _, _, _ = run_case(n, dtype, c, seed)
    assert_repeatable(conv, kf, c, (u_d, pre_d, post_d, y_d), dtype, f"n={n} {dtype}")


@pytest.mark.parametrize("n", [512, 8192])
def test_fused_single_and_gates_alone(n):
    """B = 1 and H = 1 (lone partner), and each gate on its own."""
    for pre, post in ((True, False), (False, True)):
        c = Case("gate_alone", 1, 1, n // 2 - 1, 33, 0, n // 2, pre, post)
        seed = int(np.random.SeedSequence().entropy % (2**32))
        _, _, _, y, _, ref = run_case(n, "float16", c, seed)
        err = np.linalg.norm(from_bits(y, "float16") - ref) / np.linalg.norm(ref)
        assert err <= TOL["float16"], f"n={n} pre={pre} post={post} err={err:.3e} seed={seed}"


def test_filter_spectrum_layout():
    n = 1024
    conv = fused.FusedConv(n, "float16", pregate=False, postgate=False)
    k = cp.asarray(np.random.default_rng().standard_normal((3, 100)), dtype=cp.float32)
    kf = cp.asnumpy(conv.filter_spectrum(k)).astype(np.float64)
    e = kf[:, 2 * n]
    spec = kf[:, 0 : 2 * n : 2] + 1j * kf[:, 1 : 2 * n : 2]
    full = np.fft.fft(cp.asnumpy(k).astype(np.float64), n=n)[:, fused.freq_index(n)]
    np.testing.assert_allclose(
        spec * 2.0 ** e[:, None], full, rtol=0, atol=2e-3 * np.abs(full).max()
    )
    assert (np.abs(spec).max(axis=1) <= 1.0).all()
