"""The backward row through the forward kernels (``monarch-adjoint``), on the host.

The executor runs unchanged with NumPy arrays and a float64 stand-in for the kernel families'
contract (``y = post * crop(ifft(fft(pre * u, n) * fft(k, n)))``, the same stand-in as the
partial path's host test); its du, dpregate and dpostgate must equal the exact float64 adjoint
of :class:`cufftconv.grad.HostBwdExecutor` for every mode, with and without gates, odd
lengths and Lk > L. The GPU tests run the real kernels (tests/test_grad_gpu.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_partial_host import FakeFused

from cufftconv import grad
from cufftconv.backends import adjoint
from cufftconv.validation import build_spec, linear_length


def _pow2(x: int) -> int:
    return 1 << max(0, x - 1).bit_length()


def case(rng, B, H, L, Lk, mode, pre, post):
    """(fp16 spec, float64 spec, (dy, u, k, pregate, postgate) in float64): the float64 spec's
    exact adjoint is the reference (the fp16 spec's would round du to fp16)."""
    specs = [
        build_spec(
            (B, H, L), (H, Lk), mode=mode, dtype=dt, k_dtype="float64",
            pregate_dtype=dt if pre else None, postgate_dtype=dt if post else None,
        )
        for dt in ("float16", "float64")
    ]
    u = rng.standard_normal((B, H, L))
    k = rng.standard_normal((H, Lk)).astype(np.float32).astype(np.float64)  # spectra are fp32
    g_pre = rng.standard_normal((B, H, L)) if pre else None
    g_post = rng.standard_normal(specs[0].out_shape) if post else None
    dy = rng.standard_normal(specs[0].out_shape)
    return specs[0], specs[1], (dy, u, k, g_pre, g_post)


def run(B, H, L, Lk, mode, pre, post, seed=0):
    spec, spec64, ops = case(np.random.default_rng(seed), B, H, L, Lk, mode, pre, post)
    n = L if mode == "circular" else _pow2(linear_length(L, Lk, mode))
    host = grad.HostBwdExecutor(spec)
    ex = adjoint.AdjointBwdExecutor(
        spec, None, family=("fused", n), xp=np, make_kernel=FakeFused, exact=host
    )
    got = ex.run_bwd(*ops)
    want = list(grad.HostBwdExecutor(spec64).run_bwd(*ops))
    want[1] = host.run_bwd(*ops)[1]  # dk: the same exact executor
    for name, a, b in zip(("du", "dk", "dpre", "dpost"), got, want):
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-9 * max(1.0, np.abs(b).max()),
                                       err_msg=name)


@pytest.mark.parametrize("mode", ["causal", "full", "same", "valid", "circular"])
@pytest.mark.parametrize("pre,post", [(False, False), (True, True), (True, False), (False, True)])
def test_matches_exact_adjoint(mode, pre, post):
    L = 64 if mode == "circular" else 37
    run(3, 2, L, 64 if mode == "circular" else 11, mode, pre, post)


@pytest.mark.parametrize("mode", ["causal", "full", "same", "valid"])
def test_filter_longer_than_input(mode):
    run(2, 3, 20, 45, mode, True, True)


@settings(max_examples=40, deadline=None)
@given(
    L=st.integers(1, 70),
    Lk=st.integers(1, 70),
    mode=st.sampled_from(["causal", "full", "same", "valid"]),
    gates=st.sampled_from([(False, False), (True, True)]),
    B=st.integers(1, 3),
)
def test_any_lengths(L, Lk, mode, gates, B):
    run(B, 2, L, Lk, mode, *gates)


def test_only_requested_gradients(rng=None):
    spec = build_spec((2, 2, 16), (2, 5), mode="same", dtype="float16", k_dtype="float64",
                      pregate_dtype="float16", postgate_dtype="float16")
    host = grad.HostBwdExecutor(spec)
    ex = adjoint.AdjointBwdExecutor(spec, None, family=("fused", 32), xp=np,
                                    make_kernel=FakeFused, exact=host)
    r = np.random.default_rng(1)
    args = [r.standard_normal((2, 2, 16)) for _ in range(2)]
    out = ex.run_bwd(r.standard_normal((2, 2, 16)), args[0], r.standard_normal((2, 5)).astype(np.float32),
                     args[1], r.standard_normal((2, 2, 16)), needs=(True, False, False, True))
    assert out[0] is not None and out[1] is None and out[2] is None and out[3] is not None


def test_row_declines_without_gpu_and_for_fp32():
    from cufftconv.device import DeviceInfo

    dev = DeviceInfo(0, "H200", (9, 0), 132, 227 * 1024, 60 << 20, 141 << 30)
    s16 = build_spec((2, 3, 4000), (3, 4000), mode="causal", dtype="float16", k_dtype="float32")
    s32 = build_spec((2, 3, 4000), (3, 4000), mode="causal", dtype="float32", k_dtype="float32")
    small = build_spec((2, 3, 1000), (3, 1000), mode="causal", dtype="float16", k_dtype="float32")
    assert adjoint.accepts(small, dev) is None  # the fused backward kernel covers FFT 2048
    assert adjoint.accepts(s16, dev) is None
    assert adjoint.accepts(s16, None) is not None
    assert adjoint.accepts(s32, dev) is not None
    assert grad.choose_bwd(s16, dev).name == "monarch-adjoint"
    assert grad.choose_bwd(s32, dev).name == "cufft"
    big = build_spec((1, 2, 1 << 20), (2, 1 << 20), mode="causal", dtype="bfloat16",
                     k_dtype="float32")
    assert adjoint.accepts(big, dev) is None  # long family


# ------------------------------------------------------------------------------------------------
# The fused backward kernel's contract: FakeBwd does in float64 what monarch_bwd does (pairs
# (b, b+1) packed as one complex sequence per side, the product conj(Z_v) Z_g summed over the
# pairs, in the kernel's frequency order; dv through the adjoint filter); the executor's
# finishing step is the real one.
# ------------------------------------------------------------------------------------------------
class FakeBwd:
    def __init__(self, n, dtype, *, pregate, postgate):
        self.n, self.pregate, self.postgate = n, pregate, postgate

    def adjoint_spectrum(self, k, out_offset):
        return ("adjoint", k, out_offset)

    def filter_spectrum(self, k):
        return ("k", k)

    def spectra(self, k, out_offset, *, adjoint, filt):
        return (self.adjoint_spectrum(k, out_offset) if adjoint else None,
                self.filter_spectrum(k) if filt else None)

    def __call__(self, u, dy, kr=None, *, L, out_offset, Lout, Lk, pregate=None, postgate=None,
                 du=None, dpre=None, kk=None, dpost=None):
        from cufftconv import fused

        n = self.n
        assert (pregate is not None) == self.pregate and (postgate is not None) == self.postgate
        assert out_offset + Lout <= n and L <= n
        v = u if pregate is None else u * pregate
        g = dy if postgate is None else dy * postgate
        if du is not None or dpre is not None:  # dv = corr(g at the window, k)[:L]
            tag, k, off = kr
            assert tag == "adjoint" and off == out_offset
            gpad = np.zeros(g.shape[:-1] + (n,))
            gpad[..., out_offset : out_offset + Lout] = g
            kr_f = np.fft.fft(np.asarray(k, dtype=np.float64), n)
            dv = np.fft.ifft(np.fft.fft(gpad) * np.conj(kr_f)).real[..., :L]
            if du is not None:
                du[...] = dv if pregate is None else dv * pregate
            if dpre is not None:
                dpre[...] = dv * u
        if dpost is not None:  # dy * window(conv(v, k))
            tag, k = kk
            assert tag == "k"
            kf = np.fft.fft(np.asarray(k, dtype=np.float64), n)
            y = np.fft.ifft(np.fft.fft(v, n) * kf).real[..., out_offset : out_offset + Lout]
            dpost[...] = dy * y
        if v.shape[0] % 2:  # odd B: the last pair's second sequence is zero
            v = np.concatenate([v, np.zeros_like(v[:1])])
            g = np.concatenate([g, np.zeros_like(g[:1])])
        zv = np.fft.fft(v[0::2] + 1j * v[1::2], n)
        zg = np.fft.fft(g[0::2] + 1j * g[1::2], n)
        prod = (np.conj(zv) * zg).sum(axis=0)[:, fused.freq_index(n)]
        return fused.dk_from_product(prod, Lk, out_offset, fused._inverse_order(n), np)


@pytest.mark.parametrize("mode", ["causal", "full", "same", "valid", "circular"])
@pytest.mark.parametrize("pre,post", [(False, False), (True, True), (True, False), (False, True)])
@pytest.mark.parametrize("B", [1, 4, 5])
def test_fused_bwd_contract(mode, pre, post, B):
    L, Lk = (256, 256) if mode == "circular" else (131, 90)
    if mode == "causal":
        L, Lk = 120, 200  # Lk > L: taps past L get zero
    spec, spec64, ops = case(np.random.default_rng(B), B, 3, L, Lk, mode, pre, post)
    n = 256
    assert mode == "circular" or linear_length(L, Lk, mode) <= n
    host = grad.HostBwdExecutor(spec)
    ex = adjoint.AdjointBwdExecutor(
        spec, None, family=("fused", n), xp=np, make_kernel=FakeFused, make_bwd=FakeBwd, exact=host
    )
    exact64 = grad.HostBwdExecutor(spec64)  # (the fp16 spec's would round du to fp16)
    for needs in [(False, True, False, False), (True, True, True, True)]:
        got = ex.run_bwd(*ops, needs=needs)
        want = exact64.run_bwd(*ops, needs=needs)
        assert got[1].shape == want[1].shape == (3, Lk)
        for name, a, b in zip(("du", "dk", "dpre", "dpost"), got, want):
            assert (a is None) == (b is None), name
            if a is not None:
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-9 * np.abs(b).max(), err_msg=name)


# dk by blocks (FFT sizes beyond the fused backward kernel's): blocks of nb / 2 samples, one
# stand-in kernel call per pair of blocks whose lags reach dk, against the exact adjoint.
@pytest.mark.parametrize("mode,L,Lk", [("causal", 256, 256), ("causal", 200, 350),
                                       ("full", 161, 120), ("same", 230, 133), ("valid", 260, 37)])
@pytest.mark.parametrize("pre,post", [(False, False), (True, True)])
@pytest.mark.parametrize("B", [1, 3])
def test_dk_by_blocks(mode, L, Lk, pre, post, B):
    dt = "float16"
    spec, spec64, ops = case(np.random.default_rng(L * Lk + B), B, 2, L, Lk, mode, pre, post)
    n, nb = _pow2(linear_length(L, Lk, mode)), 256
    assert n > nb
    calls = []

    class CountingBwd(FakeBwd):
        def __call__(self, u, dy, kr=None, **kw):
            calls.append((kw["L"], kw["Lout"]))
            assert kw["L"] <= nb // 2 and kw["Lout"] <= nb // 2
            return super().__call__(u, dy, kr, **kw)

    ex = adjoint.AdjointBwdExecutor(
        spec, None, family=("fused", n), xp=np, make_kernel=FakeFused,
        dk_blocks=(CountingBwd(nb, dt, pregate=pre, postgate=post), nb),
        exact=grad.HostBwdExecutor(spec),
    )
    got = ex.run_bwd(*ops, needs=(False, True, False, False))[1]
    want = grad.HostBwdExecutor(spec64).run_bwd(*ops)[1]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * np.abs(want).max())
    # pairs of blocks that cannot reach a kept lag are skipped: causal needs a >= b only
    if mode == "causal" and L == 256:
        t = nb // 2
        assert len(calls) == (L // t) * (L // t + 1) // 2
