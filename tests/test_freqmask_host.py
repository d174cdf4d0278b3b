"""Frequency-sparse convolutions (freq_keep / freq_mask) on the host: the mask semantics, the
float64 reference against an FFT-free construction, and the NumPy path of the public API."""

import numpy as np
import pytest
from helpers import rel_err
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cufftconv
from cufftconv import dispatch, freqmask, reference
from cufftconv.backends import partial as partial_row
from cufftconv.device import DeviceInfo
from cufftconv.validation import MODES, build_spec, output_length, output_offset

H200 = DeviceInfo(0, "H200", (9, 0), 132, 227 * 1024, 60 << 20, 141 << 30)
TOL = {"float16": 1e-3, "float32": 2e-5, "float64": 1e-11}


def classes(mask):
    return None if mask is None else {r for r, keep in enumerate(mask) if keep}


def mask_of(kept):
    return tuple(r in kept for r in range(16))


def symmetric_mask(half):
    """16 classes from the 9 free ones (0..8); the rest mirror them."""
    return tuple(half[min(r, 16 - r)] for r in range(16))


@pytest.fixture(autouse=True)
def host_path(monkeypatch):
    """Run host arrays on the NumPy path even where a GPU exists (the GPU rows are tested in
    test_freqsparse_gpu.py), with plans cached by that choice dropped on the way out."""
    monkeypatch.setattr(dispatch, "target_device", lambda spec: None)
    cufftconv.clear_plan_cache()
    yield
    cufftconv.clear_plan_cache()


masks = st.lists(st.booleans(), min_size=9, max_size=9).filter(any).map(symmetric_mask)


# ------------------------------------------------------------------------ freqmask itself


@pytest.mark.parametrize(
    "keep,kept",
    [
        (0.25, {0, 4, 8, 12}),  # f % 4 == 0
        (0.5, {0, 2, 4, 6, 8, 10, 12, 14}),  # f % 2 == 0
        (0.125, {0, 8}),  # f % 8 == 0
        (0.0625, {0}),  # f % 16 == 0
        (0.1, {0, 8}),  # round(1.6) = 2
        (0.2, {0, 4, 8, 12}),  # round(3.2) = 3, odd: rounded up to 4
        (0.01, {0}),  # at least one class
        (0.75, {0, 1, 2, 4, 6, 8, 10, 12, 14, 15, 3, 13}),
        (1.0, None),  # dense
        (1, None),
    ],
)
def test_from_keep_classes(keep, kept):
    mask = freqmask.from_keep(keep)
    assert classes(mask) == kept
    if mask is not None:
        assert len(mask) == 16 and all(isinstance(v, bool) for v in mask)
        assert freqmask.from_mask(mask) == mask  # symmetric, accepted as is


def test_every_keep_prefix_is_symmetric():
    for m in range(1, 17):
        if m > 1 and m % 2:
            continue
        freqmask.from_mask(mask_of(set(freqmask.KEEP_ORDER[:m])))  # raises if not symmetric


@pytest.mark.parametrize("bad", [0, 0.0, -0.5, 1.5, float("nan")])
def test_from_keep_range(bad):
    with pytest.raises(ValueError, match="freq_keep"):
        freqmask.from_keep(bad)


@pytest.mark.parametrize("bad", ["0.5", True, None, [0.5], 1j])
def test_from_keep_type(bad):
    with pytest.raises(TypeError, match="freq_keep"):
        freqmask.from_keep(bad)


def test_from_mask_accepts_bools_and_01():
    half = mask_of({0, 1, 15})
    assert freqmask.from_mask(half) == half
    assert freqmask.from_mask(np.array(half)) == half
    assert freqmask.from_mask([int(v) for v in half]) == half
    assert freqmask.from_mask([True] * 16) is None
    assert freqmask.from_mask(np.ones(16, dtype=np.uint8)) is None


@pytest.mark.parametrize(
    "bad,match",
    [
        ([True] * 15, "freq_mask: got shape"),
        ([[True] * 16], "freq_mask: got shape"),
        (np.ones(16, dtype=np.float32), "freq_mask: got shape .* dtype float32"),
        ([2] + [1] * 15, "freq_mask: integer entries"),
        ([False] * 16, "freq_mask: keeps no frequency"),
        (mask_of({0, 1}), r"freq_mask: not Hermitian-symmetric at classes \[1, 15\]"),
        (mask_of({3, 12, 0}), r"not Hermitian-symmetric at classes \[3, 4, 12, 13\]"),
    ],
)
def test_from_mask_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        freqmask.from_mask(bad)


def test_resolve():
    assert freqmask.resolve() is None
    assert freqmask.resolve(freq_keep=0.25) == freqmask.from_keep(0.25)
    assert freqmask.resolve(freq_mask=mask_of({0, 8})) == mask_of({0, 8})
    with pytest.raises(ValueError, match="freq_keep or freq_mask, not both"):
        freqmask.resolve(0.5, [True] * 16)


@pytest.mark.parametrize(
    "L,Lk,mode,n",
    [
        (100, 100, "causal", 256),
        (100, 5000, "causal", 256),  # causal: only min(Lk, L) taps matter
        (100, 300, "full", 512),
        (100, 300, "same", 512),
        (300, 100, "valid", 512),
        (1, 1, "full", 16),  # at least one period of the mask
        (5, 3, "causal", 16),
        (128, 128, "circular", 128),
        (48, 7, "circular", 48),
    ],
)
def test_fft_size(L, Lk, mode, n):
    assert freqmask.fft_size(L, Lk, mode) == n
    s = build_spec(
        (2, L), (Lk,), mode=mode, dtype="float32", k_dtype="float32", freq_mask=mask_of({0})
    )
    assert s.freq_n == n


def test_circular_needs_multiple_of_16():
    with pytest.raises(ValueError, match="multiple of 16"):
        freqmask.fft_size(100, 5, "circular")
    u, k = np.ones((2, 100)), np.ones(5)
    with pytest.raises(ValueError, match="freq_keep/freq_mask .* multiple of 16, got L=100"):
        cufftconv.fftconv(u, k, mode="circular", freq_keep=0.5)
    with pytest.raises(ValueError, match="multiple of 16"):
        cufftconv.FFTConv(u.shape, k=k, dtype="float64", mode="circular", freq_keep=0.5)
    with pytest.raises(ValueError, match="multiple of 16"):
        reference.fftconv_direct(u, k, mode="circular", freq_mask=mask_of({0}))
    # dense (an all-True mask or freq_keep=1) has no such condition
    y = cufftconv.fftconv(u, k, mode="circular", freq_keep=1.0)
    assert np.array_equal(y, cufftconv.fftconv(u, k, mode="circular"))


def test_spectrum_mask():
    m = freqmask.spectrum_mask(mask_of({0, 1, 15}), 64)
    assert m.shape == (64,) and m.dtype == bool
    assert np.flatnonzero(m).tolist() == [f for f in range(64) if f % 16 in (0, 1, 15)]
    with pytest.raises(ValueError, match="multiple of 16"):
        freqmask.spectrum_mask(mask_of({0}), 40)


# ------------------------------------------------------- the reference vs an FFT-free build


def comb_conv(u, k, mode, mask, pregate=None, postgate=None):
    """The frequency-sparse convolution without any FFT.

    ``M[f] = mask[f % 16]`` is the DFT of a comb: ``c_j = (1/16) sum_r mask[r] w16**(-r j)``
    at the times ``j N/16``. So the masked filter is ``sum_j c_j roll(k, j N/16)``, and the
    result the N-point circular convolution with it, summed directly, then cropped.
    """
    u = np.asarray(u, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    if pregate is not None:
        u = u * pregate
    L, Lk = u.shape[-1], k.shape[-1]
    n = (
        L
        if mode == "circular"
        else 1 << (L + (min(Lk, L) if mode == "causal" else Lk) - 2).bit_length()
    )
    n = max(n, 16)
    if mode == "causal":
        k = k[..., :L]
    kp = np.zeros(k.shape[:-1] + (n,))
    kp[..., : k.shape[-1]] = k
    up = np.zeros(u.shape[:-1] + (n,))
    up[..., :L] = u
    r = np.arange(16)
    c = [np.sum(np.asarray(mask) * np.exp(2j * np.pi * r * j / 16)).real / 16 for j in range(16)]
    km = sum(c[j] * np.roll(kp, j * n // 16, axis=-1) for j in range(16))
    idx = (np.arange(n)[:, None] - np.arange(n)[None, :]) % n  # [t, s] -> t - s mod n
    y = np.einsum("...s,...ts->...t", km, up[..., idx])
    start = output_offset(L, Lk, mode)
    y = y[..., start : start + output_length(L, Lk, mode)]
    return y if postgate is None else y * postgate


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize(
    "mask", [freqmask.from_keep(0.25), freqmask.from_keep(0.1), mask_of({1, 15}), mask_of({8})]
)
def test_reference_matches_comb(rng, mode, gated, mask):
    L, Lk = (48, 11) if mode == "circular" else (37, 13)
    u = rng.standard_normal((2, 3, L))
    k = rng.standard_normal((3, Lk))
    Lout = output_length(L, Lk, mode)
    pre = rng.standard_normal(u.shape) if gated else None
    post = rng.standard_normal((2, 3, Lout)) if gated else None
    want = comb_conv(u, k, mode, mask, pre, post)
    got = reference.fftconv_direct(u, k, mode=mode, pregate=pre, postgate=post, freq_mask=mask)
    assert got.dtype == np.float64 and got.shape == want.shape
    assert rel_err(got, want) <= 1e-12
    for packing in reference.PACKINGS:  # the Monarch reference the host path runs
        y = reference.fftconv(
            u, k, mode=mode, pregate=pre, postgate=post, freq_mask=mask, packing=packing
        )
        assert rel_err(y, want) <= 1e-12, packing


def test_reference_mask_is_not_the_dense_conv(rng):
    u, k = rng.standard_normal((2, 100)), rng.standard_normal(100)
    dense = reference.fftconv_direct(u, k)
    sparse = reference.fftconv_direct(u, k, freq_mask=freqmask.from_keep(0.25))
    assert rel_err(sparse, dense) > 0.1
    # keeping all 16 classes is the dense convolution
    assert rel_err(reference.fftconv_direct(u, k, freq_mask=[True] * 16), dense) == 0


def test_reference_complementary_masks_add_up(rng):
    # The convolution is linear in the mask: kept + dropped classes give the dense result.
    u, k = rng.standard_normal((3, 70)), rng.standard_normal((3, 40))
    a = mask_of({0, 1, 15, 8})
    b = tuple(not v for v in a)
    for mode in ("causal", "full", "same", "valid"):
        ya = reference.fftconv_direct(u, k, mode=mode, freq_mask=a)
        yb = reference.fftconv_direct(u, k, mode=mode, freq_mask=b)
        assert rel_err(ya + yb, reference.fftconv_direct(u, k, mode=mode)) <= 1e-12


# ------------------------------------------------------------ the public API (NumPy path)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("gated", [False, True])
def test_fftconv_freq_keep(rng, mode, dtype, gated):
    B, H = 2, 3
    L, Lk = (80, 33) if mode == "circular" else (131, 47)  # odd L for the linear modes
    u = rng.standard_normal((B, H, L)).astype(dtype)
    k = rng.standard_normal((H, Lk)).astype(np.float32)
    Lout = output_length(L, Lk, mode)
    pre = rng.standard_normal(u.shape).astype(dtype) if gated else None
    post = rng.standard_normal((B, H, Lout)).astype(dtype) if gated else None
    for kwargs, mask in (
        ({"freq_keep": 0.25}, freqmask.from_keep(0.25)),
        ({"freq_mask": mask_of({0, 2, 14})}, mask_of({0, 2, 14})),
    ):
        y = cufftconv.fftconv(u, k, mode=mode, pregate=pre, postgate=post, **kwargs)
        assert isinstance(y, np.ndarray) and y.dtype == np.dtype(dtype)
        assert y.shape == (B, H, Lout)
        ref = reference.fftconv_direct(u, k, mode=mode, pregate=pre, postgate=post, freq_mask=mask)
        assert rel_err(y, ref) <= TOL[dtype], kwargs
        plan = cufftconv.FFTConv(
            u.shape,
            k=k,
            dtype=dtype,
            mode=mode,
            pregate=gated,
            postgate=gated,
            device="cpu",
            **kwargs,
        )
        assert plan.spec.freq_mask == mask and plan.route == "numpy-reference"
        yp = plan(u, pregate=pre, postgate=post)
        assert np.array_equal(yp, y)
        per_call = cufftconv.FFTConv(
            u.shape,
            k_shape=k.shape,
            k_dtype="float32",
            dtype=dtype,
            mode=mode,
            pregate=gated,
            postgate=gated,
            device="cpu",
            **kwargs,
        )
        assert np.array_equal(per_call(u, k, pregate=pre, postgate=post), y)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    L=st.integers(1, 300),
    Lk=st.integers(1, 300),
    mode=st.sampled_from(MODES),
    mask=masks,
    k_lead=st.sampled_from([(), (3,), (1, 3), (2, 1)]),
    gated=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_fftconv_freq_mask_hypothesis(L, Lk, mode, mask, k_lead, gated, seed):
    rng = np.random.default_rng(seed)
    if mode == "circular":
        L = 16 * max(1, L // 16)
        Lk = min(Lk, L)
    u = rng.standard_normal((2, 3, L))
    k = rng.standard_normal(k_lead + (Lk,))
    Lout = output_length(L, Lk, mode)
    pre = rng.standard_normal(u.shape) if gated else None
    post = rng.standard_normal((2, 3, Lout)) if gated else None
    y = cufftconv.fftconv(u, k, mode=mode, pregate=pre, postgate=post, freq_mask=mask)
    want = reference.fftconv_direct(u, k, mode=mode, pregate=pre, postgate=post, freq_mask=mask)
    assert y.shape == want.shape == (2, 3, Lout)
    if all(mask):
        assert np.array_equal(y, cufftconv.fftconv(u, k, mode=mode, pregate=pre, postgate=post))
    else:
        assert np.allclose(y, want, rtol=0, atol=1e-11 * max(1.0, np.abs(want).max()))


@pytest.mark.parametrize("mode", MODES)
def test_dense_masks_are_the_dense_call(rng, mode):
    L, Lk = 64, 17
    u = rng.standard_normal((2, 3, L)).astype(np.float32)
    k = rng.standard_normal((3, Lk)).astype(np.float32)
    dense = cufftconv.fftconv(u, k, mode=mode)
    for kwargs in (
        {},
        {"freq_keep": None, "freq_mask": None},
        {"freq_keep": 1.0},
        {"freq_mask": [True] * 16},
        {"freq_mask": np.ones(16, dtype=int)},
    ):
        assert np.array_equal(cufftconv.fftconv(u, k, mode=mode, **kwargs), dense), kwargs
        plan = cufftconv.FFTConv(u.shape, k=k, dtype="float32", mode=mode, device="cpu", **kwargs)
        assert plan.spec.freq_mask is None and plan.spec.freq_n is None
        assert (
            plan.spec
            == cufftconv.FFTConv(u.shape, k=k, dtype="float32", mode=mode, device="cpu").spec
        )
        assert np.array_equal(plan(u), dense)


def test_mask_is_part_of_the_plan_key(rng):
    from cufftconv import api

    u = rng.standard_normal((2, 100))
    k = rng.standard_normal(30)
    y1 = cufftconv.fftconv(u, k, freq_keep=0.25)
    y2 = cufftconv.fftconv(u, k, freq_keep=0.5)
    y3 = cufftconv.fftconv(u, k)
    assert rel_err(y1, y2) > 1e-3 and rel_err(y2, y3) > 1e-3
    assert np.array_equal(cufftconv.fftconv(u, k, freq_keep=0.25), y1)  # cached plan
    assert len(api._plans) == 3


def test_both_kwargs_raise():
    u, k = np.ones((2, 64), dtype=np.float32), np.ones(8, dtype=np.float32)
    with pytest.raises(ValueError, match="freq_keep or freq_mask, not both"):
        cufftconv.fftconv(u, k, freq_keep=0.5, freq_mask=[True] * 16)
    with pytest.raises(ValueError, match="freq_keep or freq_mask, not both"):
        cufftconv.FFTConv(u.shape, k=k, dtype="float32", freq_keep=0.5, freq_mask=[True] * 16)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"freq_keep": 0.0}, ValueError, "freq_keep"),
        ({"freq_keep": "half"}, TypeError, "freq_keep"),
        ({"freq_mask": [True] * 8}, ValueError, "freq_mask"),
        ({"freq_mask": mask_of({0, 1})}, ValueError, "freq_mask: not Hermitian"),
    ],
)
def test_api_errors_name_the_argument(kwargs, exc, match):
    u, k = np.ones((2, 64), dtype=np.float32), np.ones(8, dtype=np.float32)
    with pytest.raises(exc, match=match):
        cufftconv.fftconv(u, k, **kwargs)
    with pytest.raises(exc, match=match):
        cufftconv.FFTConv(u.shape, k=k, dtype="float32", **kwargs)


def test_plan_repr_names_the_classes():
    plan = cufftconv.FFTConv(
        (2, 100), k_shape=(100,), dtype="float32", device="cpu", freq_keep=0.25
    )
    assert "freq_classes=(0, 4, 8, 12)" in repr(plan) and "freq_n=256" in repr(plan)


# --------------------------------------------------------------------------- dispatch rows


def masked_spec(L=1 << 20, Lk=4096, mode="causal", mask=None):
    return build_spec(
        (1, 4, L),
        (4, Lk),
        mode=mode,
        dtype="float16",
        k_dtype="float32",
        freq_mask=mask or freqmask.from_keep(0.25),
    )


def test_partial_row_refuses_masked_specs(monkeypatch):
    monkeypatch.setattr(partial_row, "ENABLED", True)
    dense = build_spec(
        (1, 4, 1 << 20), (4, 4096), mode="causal", dtype="float16", k_dtype="float32"
    )
    assert partial_row.accepts(dense, H200) is None
    s = masked_spec()
    reason = partial_row.accepts(s, H200)
    assert reason is not None and "freq_keep/freq_mask" in reason
    assert partial_row.block_size(s) is None
    row = next(r for r in dispatch.routes() if r.name == "partial-blocked")
    assert row.accepts(s, H200) is not None
    for mode in ("full", "same", "valid"):
        assert partial_row.accepts(masked_spec(mode=mode), H200) is not None
    assert dispatch.explain(s, None)[-1] == ("numpy-reference", None)


def test_cufft_row_uses_the_mask_fft_size():
    from cufftconv.backends import cufft

    for L, Lk, mode in [(1000, 1000, "causal"), (1000, 300, "full"), (4800, 16, "circular")]:
        s = build_spec(
            (2, L),
            (Lk,),
            mode=mode,
            dtype="float32",
            k_dtype="float32",
            freq_mask=freqmask.from_keep(0.5),
        )
        assert cufft.fft_size(s) == s.freq_n == freqmask.fft_size(L, Lk, mode)


def test_backward_refuses_masked_specs():
    from cufftconv import grad

    s = masked_spec(L=64, Lk=8)
    with pytest.raises(ValueError, match="freq_keep/freq_mask.*no backward"):
        grad._executor(s)


# ---- the folded row (masks keeping f % F == 0) ----


@pytest.mark.parametrize(
    "keep,factor", [(0.5, 2), (0.25, 4), (0.125, 8), (0.1, 8), (0.0625, 16), (0.75, None)]
)
def test_fold_factor_of_keep_masks(keep, factor):
    from cufftconv.backends import folded

    assert folded.fold_factor(freqmask.from_keep(keep)) == factor
    assert folded.fold_factor(None) is None


@pytest.mark.parametrize(
    "L,Lk,mode,keep,want",
    [
        (4096, 4096, "circular", 0.25, "fused-folded"),  # n = 1024
        (2048, 2048, "causal", 0.25, "fused-folded"),  # N = 4096
        (4096, 4096, "circular", 0.0625, "fused-folded"),  # n = 256
        (4096, 4096, "circular", 0.5, "fused-monarch"),  # F = 2: the kernel's own skipping
        (512, 512, "circular", 0.25, "fused-monarch"),  # n = 128: below the fused table
        (32768, 32768, "circular", 0.25, "fused-folded"),
        (65536, 65536, "circular", 0.25, "long-monarch"),  # N above the fused table
    ],
)
def test_folded_row_routing(L, Lk, mode, keep, want):
    s = build_spec(
        (2, 3, L), (3, Lk), mode=mode, dtype="float16", k_dtype="float32",
        freq_mask=freqmask.from_keep(keep),
    )
    assert next(r.name for r in dispatch.routes() if r.accepts(s, H200) is None) == want


@pytest.mark.parametrize(
    "B,L,mode,keep,want",
    [
        (4, 4096, "circular", 0.25, "fused-monarch"),  # in place (SPARSE twiddle-folded kernel)
        (4, 4096, "circular", 0.0625, "fused-monarch"),
        (4, 2048, "causal", 0.25, "fused-monarch"),
        (4, 2048, "causal", 0.125, "fused-monarch"),
        (2, 4096, "circular", 0.25, "fused-folded"),  # B % 4: the twiddle-folded kernel declines
        (4, 2044, "causal", 0.25, "fused-folded"),  # L % 8
        (4, 8192, "circular", 0.25, "fused-monarch"),  # 8192 in place (since 20561b9)
        (4, 8192, "circular", 0.125, "fused-monarch"),
        (4, 8192, "circular", 0.0625, "fused-folded"),  # 8192 F = 16: the fold measured faster
        (4, 4096, "causal", 0.125, "fused-folded"),  # 8192 causal F = 8: the fold
    ],
)
def test_folded_row_yields_to_the_in_place_kernel(B, L, mode, keep, want):
    """folded.IN_PLACE_FASTER: where the SPARSE twiddle-folded kernel takes the call (sm_90)
    and ran faster, the fused row runs it; elsewhere (and on sm_86) the folded row."""
    from test_dispatch_rows import RTX

    s = build_spec(
        (B, 3, L), (3, L), mode=mode, dtype="float16", k_dtype="float32",
        freq_mask=freqmask.from_keep(keep),
    )
    assert next(r.name for r in dispatch.routes() if r.accepts(s, H200) is None) == want
    assert next(r.name for r in dispatch.routes() if r.accepts(s, RTX) is None) == "fused-folded"


def _folded_numpy(u, k, mode, factor, pre=None, post=None):
    """What the folded row computes, in float64: fold, n-point circular conv, tile."""
    L, Lk = u.shape[-1], k.shape[-1]
    big = freqmask.fft_size(L, Lk, mode)
    n = big // factor
    x = u * pre if pre is not None else u
    xp = np.zeros(u.shape[:-1] + (big,))
    xp[..., :L] = x
    ku = min(Lk, L) if mode == "causal" else Lk
    kp = np.zeros(k.shape[:-1] + (big,))
    kp[..., :ku] = k[..., :ku]
    xf = xp.reshape(u.shape[:-1] + (factor, n)).sum(-2)
    kf = kp.reshape(k.shape[:-1] + (factor, n)).sum(-2) / factor
    yc = np.fft.irfft(np.fft.rfft(xf) * np.fft.rfft(kf), n)
    Lout, off = output_length(L, Lk, mode), output_offset(L, Lk, mode)
    y = yc[..., (np.arange(Lout) + off) % n]
    return y * post if post is not None else y


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("keep,factor", [(0.25, 4), (0.125, 8), (0.0625, 16)])
def test_fold_identity_equals_the_masked_convolution(rng, mode, keep, factor):
    """The folded row's arithmetic is the masked dense convolution (float64, every mode)."""
    L, Lk = (1024, 1024) if mode == "circular" else (1000, 333)
    u = rng.standard_normal((2, 3, L))
    k = rng.standard_normal((3, Lk))
    pre = rng.standard_normal((2, 3, L))
    post = rng.standard_normal((2, 3, output_length(L, Lk, mode)))
    mask = freqmask.from_keep(keep)
    want = reference.fftconv_direct(u, k, mode=mode, pregate=pre, postgate=post, freq_mask=mask)
    got = _folded_numpy(u, k, mode, factor, pre, post)
    assert rel_err(got, want) < 1e-12
