"""The partial-convolution path's block arithmetic, on the host.

The executor runs unchanged with NumPy arrays and a NumPy stand-in for the fused kernel that
implements the kernel's contract exactly (circular convolution of size n of the window, zero
beyond its valid length, cropped at out_offset, gated), so the windows, strides, offsets and
edge blocks are checked against the float64 reference without a GPU.
"""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cufftconv import partial, reference
from cufftconv.backends import partial as partial_row
from cufftconv.validation import build_spec


class FakeFused:
    """The fused kernel's contract on NumPy (float64) arrays, any strides."""

    def __init__(self, n, dtype, *, pregate, postgate):
        self.n, self.pregate, self.postgate = n, pregate, postgate
        self.calls = 0

    def filter_spectrum(self, k):
        return np.fft.fft(np.asarray(k, np.float64), n=self.n, axis=-1)

    def __call__(self, u, kf, y, *, L, out_offset, Lout, pregate=None, postgate=None):
        n = self.n
        assert (pregate is not None) == self.pregate and (postgate is not None) == self.postgate
        assert u.ndim in (3, 4) and u.shape[:-1] == y.shape[:-1]  # (B, H) or (B0, B1, H)
        assert u.shape[-1] == L and 1 <= L <= n and y.shape[-1] == Lout
        assert 0 <= out_offset and out_offset + Lout <= n
        x = u * pregate if pregate is not None else np.array(u)
        c = np.fft.ifft(np.fft.fft(x, n=n, axis=-1) * kf[None], axis=-1).real
        r = c[..., out_offset : out_offset + Lout]
        y[...] = r * postgate if postgate is not None else r
        self.calls += 1


def run(L, Lk, mode, B=2, H=3, gated=False, seed=0):
    rng = np.random.default_rng(seed)
    spec = build_spec(
        (B, H, L),
        (H, Lk),
        mode=mode,
        dtype="float16",
        k_dtype="float64",
        pregate_dtype="float16" if gated else None,
        postgate_dtype="float16" if gated else None,
    )
    ex = partial_row.PartialExecutor(spec, None, xp=np, make_kernel=FakeFused)
    u = rng.standard_normal((B, H, L))
    k = rng.standard_normal((H, Lk)).astype(np.float32).astype(np.float64)  # spectrum is fp32
    pre = rng.standard_normal((B, H, L)) if gated else None
    post = rng.standard_normal((B, H, spec.Lout)) if gated else None
    y = ex.run(u, ex.spectrum(k), pre, post)
    want = reference.fftconv_direct(u, k, mode=mode, pregate=pre, postgate=post)
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-9 * max(1.0, np.abs(want).max()))
    return ex


@pytest.mark.parametrize("mode", ["causal", "full", "same", "valid"])
@pytest.mark.parametrize("gated", [False, True])
def test_modes(mode, gated):
    ex = run(5000, 300, mode, gated=gated)
    assert ex.n == 2048 and ex.hop == (2048 - 299 - 7) // 8 * 8 and ex.hop % 8 == 0


@given(
    L=st.integers(16, 6000),
    Lk=st.integers(1, 1500),
    mode=st.sampled_from(["causal", "full", "same", "valid"]),
    B=st.integers(1, 3),
)
@settings(max_examples=60, deadline=None)
def test_any_lengths(L, Lk, mode, B):
    if Lk * partial.MIN_RATIO > L:
        Lk = max(1, L // partial.MIN_RATIO)
    run(L, Lk, mode, B=B, H=2, seed=L * 7 + Lk)


def test_interior_blocks_are_one_launch_for_all_batch_rows():
    ex = run(200_000, 1000, "causal", B=2, H=1)
    interior = [g for g in ex.groups if g.count > 1]
    assert len(interior) == 1 and interior[0].count > 40
    g = interior[0]
    assert g.w0 % 8 == 0 and g.t0 % 8 == 0 and ex.hop % 8 == 0  # 16-byte aligned windows
    assert len(ex.groups) <= 4  # plus the first and the last blocks
    assert ex.kernel.calls == len(ex.groups)  # B = 2 rows in each launch


def test_plan_covers_every_output_once():
    for L, Lk, mode in [(100_000, 4096, "causal"), (70_001, 333, "full"), (9999, 2000, "same")]:
        spec = build_spec((1, 1, L), (1, Lk), mode=mode, dtype="float16", k_dtype="float32")
        n = partial.block_fft_size(Lk)
        hop = partial.hop_size(n, Lk)
        ranges = partial.covered(partial.plan_blocks(L, Lk, spec.offset, spec.Lout, n), hop)
        assert ranges[0][0] == 0 and ranges[-1][1] == spec.Lout
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))


def test_block_sizes():
    assert partial.block_fft_size(1) == 256
    assert partial.block_fft_size(64) == 256
    assert partial.block_fft_size(4096) == 16384
    assert partial.block_fft_size(8192) == 32768
    assert partial.block_fft_size(16384) == 32768  # 2 * Lk when 4 * Lk does not fit
    assert partial.block_fft_size(16385) is None


def test_row_takes_short_filters_unless_switched_off(monkeypatch):
    from cufftconv.device import DeviceInfo

    dev = DeviceInfo(0, "H200", (9, 0), 132, 227 * 1024, 60 << 20, 141 << 30)
    spec = build_spec((1, 4, 1 << 20), (4, 4096), mode="causal", dtype="float16", k_dtype="float32")
    assert partial_row.ENABLED and partial_row.accepts(spec, dev) is None
    monkeypatch.setattr(partial_row, "ENABLED", False)
    assert "switched off" in partial_row.accepts(spec, dev)
    monkeypatch.setattr(partial_row, "ENABLED", True)
    short = build_spec((1, 4, 8192), (4, 64), mode="causal", dtype="float16", k_dtype="float32")
    assert partial_row.accepts(short, dev) is not None  # dense fused is one pass there
    wide = build_spec(
        (1, 4, 1 << 20), (4, 1 << 19), mode="causal", dtype="float16", k_dtype="float32"
    )
    assert partial_row.accepts(wide, dev) is not None  # Lk > L / 4


@pytest.mark.parametrize("out_kind", ["none", "contiguous", "strided"])
def test_fused_executor_run_with_the_stand_in(out_kind):
    """The fused (and long) executor's run: operand views, out= handling, one launch."""
    from cufftconv.backends.fused import FusedExecutor

    rng = np.random.default_rng(3)
    B, H, L, Lk = 3, 2, 700, 90
    spec = build_spec(
        (B, H, L),
        (H, Lk),
        mode="same",
        dtype="float16",
        k_dtype="float64",
        postgate_dtype="float16",
    )
    ex = object.__new__(FusedExecutor)
    ex.xp, ex.spec, ex.B, ex.H, ex.n, ex.k_used = np, spec, B, H, 1024, Lk
    ex.kernel = FakeFused(1024, "float16", pregate=False, postgate=True)
    u = rng.standard_normal((B, H, L))
    k = rng.standard_normal((H, Lk)).astype(np.float32).astype(np.float64)
    post = rng.standard_normal((B, H, L))
    out = {
        "none": None,
        "contiguous": np.full((B, H, L), np.nan),
        "strided": np.full((B, H, 2 * L), np.nan)[:, :, ::2],
    }[out_kind]
    y = ex.run(u, ex.spectrum(k), None, post, out=out)
    assert ex.kernel.calls == 1 and (out is None or y is out)
    want = reference.fftconv_direct(u, k, mode="same", postgate=post)
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-9 * np.abs(want).max())
