"""GPU tests of the per-call fast paths of ``fftconv_bwd`` (``backends.adjoint.fast_bwd``)
and of ``fftconv`` with k given on each call (``backends.fused.fast_call_k``).

The first call of a signature takes the general path and builds the fast one; later calls
with the same shapes, dtypes and contiguous PyTorch or CuPy operands take it. Each case
checks that the fast path was built, that its results are bitwise those of the general path
on the same inputs (every gradient), and that they match the float64 reference.
"""

import zlib

import numpy as np
import pytest
from test_grad_gpu import _check_grads, _host, _ref_bwd, _torch

import cufftconv
from cufftconv import api, grad, reference

pytestmark = pytest.mark.gpu


def _bits(a):
    """Raw bytes of a gradient (None stays None), for bitwise comparisons."""
    if a is None:
        return None
    if hasattr(a, "get"):
        return a.get().tobytes()
    return a.detach().cpu().contiguous().view(-1).view(_torch().uint8).numpy().tobytes()


def _operands(torch, rng, B, H, L, Lk, mode, dtype, k_dtype, gated):
    from cufftconv.validation import output_length

    Lout = output_length(L, Lk, mode)
    t = getattr(torch, dtype)

    def x(*shape, scale=1.0):
        return torch.from_numpy(rng.standard_normal(shape) * scale).to("cuda", t)

    u, dy = x(B, H, L), x(B, H, Lout)
    k = torch.from_numpy(rng.standard_normal((H, Lk)) / np.sqrt(Lk)).to(
        "cuda", getattr(torch, k_dtype)
    )
    pre = x(B, H, L) if gated else None
    post = x(B, H, Lout) if gated else None
    return dy, u, k, pre, post


def _fast_entry(dy, u, k, pre, post, mode, needs):
    key = grad._fast_key(dy, u, k, pre, post, mode, needs)
    return grad._fast.get(key)


CASES = [
    # (B, H, L, Lk, mode, dtype, k dtype, gated)
    (4, 16, 128, 128, "causal", "float16", "float32", False),  # FFT 256
    (3, 111, 500, 77, "causal", "bfloat16", "float32", True),  # odd B, H = 111
    (1, 8, 1000, 1000, "causal", "float16", "float16", True),  # B = 1, fp16 k
    (2, 5, 700, 1500, "causal", "bfloat16", "bfloat16", False),  # Lk > L: dk[L:] = 0
    (2, 6, 300, 50, "full", "float16", "float64", True),
    (2, 6, 301, 40, "same", "float16", "float32", False),
    (2, 4, 1024, 1024, "circular", "bfloat16", "float32", True),
    (2, 4, 3000, 3000, "causal", "float16", "float32", True),  # FFT 8192, prime-ish L
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_fast_matches_general_and_reference(case):
    torch = _torch()
    B, H, L, Lk, mode, dtype, k_dtype, gated = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
    grad.clear_bwd_cache()
    ops = _operands(torch, rng, B, H, L, Lk, mode, dtype, k_dtype, gated)
    dy, u, k, pre, post = ops
    needs = (True, True, True, True)
    general = grad._fftconv_bwd(dy, u, k, mode=mode, pregate=pre, postgate=post, needs=needs)
    fast = _fast_entry(dy, u, k, pre, post, mode, needs)
    assert fast is not None, "the first call built no fast path"
    # poison the pool: the fast path must write every element it returns
    junk = torch.full((1 << 22,), float("nan"), device="cuda")
    del junk
    got = fast(dy, u, k, pre, post)
    assert got is not None, "the fast path declined its own signature"
    for i, (a, b) in enumerate(zip(got, general)):
        assert (a is None) == (b is None), i
        assert _bits(a) == _bits(b), f"gradient {i} differs from the general path"
    # and through the public call (which now takes the fast path)
    again = grad._fftconv_bwd(dy, u, k, mode=mode, pregate=pre, postgate=post, needs=needs)
    assert all(_bits(a) == _bits(b) for a, b in zip(again, general))
    ref = _ref_bwd(dy, u, k, pre, post, mode)
    _check_grads(got, ref, (u, k, pre, post), lambda g: isinstance(g, torch.Tensor))


@pytest.mark.parametrize("n_half", [600, 12000])  # FFT 2048 (fused backward), 32768 (blocks)
@pytest.mark.parametrize("needs", [(True, True, False, False), (False, True, True, True),
                                   (False, True, False, False), (True, True, True, False),
                                   (True, False, False, False), (True, False, True, True),
                                   (False, False, False, True)])
def test_fast_needs_subsets(needs, n_half):
    """With dk the fused backward kernel's path (not at 32768: dk by blocks stays general);
    without dk the forward-kernel launches, at every fused size."""
    torch = _torch()
    rng = np.random.default_rng(7)
    grad.clear_bwd_cache()
    dy, u, k, pre, post = _operands(torch, rng, 2, 12, n_half, n_half, "causal", "float16",
                                    "float32", True)
    if needs[1] and n_half > 8192:  # FFT 32768 with dk: no fast path
        grad._fftconv_bwd(dy, u, k, mode="causal", pregate=pre, postgate=post, needs=needs)
        assert _fast_entry(dy, u, k, pre, post, "causal", needs) is None
        return
    general = grad._fftconv_bwd(dy, u, k, mode="causal", pregate=pre, postgate=post, needs=needs)
    fast = _fast_entry(dy, u, k, pre, post, "causal", needs)
    assert fast is not None
    got = fast(dy, u, k, pre, post)
    for i, (a, b, want) in enumerate(zip(got, general, needs)):
        assert (a is not None) == want, i
        assert _bits(a) == _bits(b), i


def test_fast_cupy_operands():
    cp = pytest.importorskip("cupy")
    rng = np.random.default_rng(3)
    grad.clear_bwd_cache()
    B, H, L = 3, 10, 400
    u = cp.asarray(rng.standard_normal((B, H, L)), dtype=cp.float16)
    dy = cp.asarray(rng.standard_normal((B, H, L)), dtype=cp.float16)
    k = cp.asarray(rng.standard_normal((H, L)) / 20, dtype=cp.float32)
    general = grad._fftconv_bwd(dy, u, k, mode="causal", pregate=None, postgate=None)
    fast = _fast_entry(dy, u, k, None, None, "causal", grad.ALL)
    assert fast is not None
    got = fast(dy, u, k, None, None)
    assert isinstance(got[0], cp.ndarray) and isinstance(got[1], cp.ndarray)
    assert got[2] is None and got[3] is None
    for a, b in zip(got[:2], general[:2]):
        assert _bits(a) == _bits(b)
    ref = _ref_bwd(dy, u, k, None, None, "causal")
    assert np.linalg.norm(_host(got[1]) - ref[1]) <= 2e-3 * np.linalg.norm(ref[1])


def test_fast_declines_and_general_still_checks():
    """Non-contiguous operands, another dtype or a bad cotangent leave the fast path; the
    general path then computes (views) or raises (bad input), as without it."""
    torch = _torch()
    rng = np.random.default_rng(11)
    grad.clear_bwd_cache()
    dy, u, k, _, _ = _operands(torch, rng, 2, 8, 256, 256, "causal", "float16", "float32", False)
    grad._fftconv_bwd(dy, u, k, mode="causal", pregate=None, postgate=None)
    fast = _fast_entry(dy, u, k, None, None, "causal", grad.ALL)
    assert fast is not None
    wide = torch.from_numpy(rng.standard_normal((2, 8, 512))).to("cuda", torch.float16)
    view = wide[..., ::2]  # same shape, strided
    assert fast(dy, view, k, None, None) is None
    via_general = grad._fftconv_bwd(dy, view, k, mode="causal", pregate=None, postgate=None)
    direct = grad._fftconv_bwd(dy, view.contiguous(), k, mode="causal", pregate=None,
                               postgate=None)
    assert all(_bits(a) == _bits(b) for a, b in zip(via_general, direct))
    assert fast(dy.float(), u, k, None, None) is None
    with pytest.raises(TypeError, match="dy"):
        grad._fftconv_bwd(dy.float(), u, k, mode="causal", pregate=None, postgate=None)
    with pytest.raises(ValueError, match="dy"):
        grad._fftconv_bwd(dy[..., :100], u, k, mode="causal", pregate=None, postgate=None)
    assert fast(dy, u, k, u, None) is None  # a gate the signature did not have


def test_fast_inputs_untouched_and_on_torch_stream():
    torch = _torch()
    rng = np.random.default_rng(5)
    grad.clear_bwd_cache()
    dy, u, k, pre, post = _operands(torch, rng, 4, 16, 1000, 1000, "causal", "bfloat16",
                                    "float32", True)
    before = [_bits(a) for a in (dy, u, k, pre, post)]
    ref = grad._fftconv_bwd(dy, u, k, mode="causal", pregate=pre, postgate=post)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        got = grad._fftconv_bwd(dy, u, k, mode="causal", pregate=pre, postgate=post)
        for g in got:
            g.record_stream(side)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    assert all(_bits(a) == _bits(b) for a, b in zip(got, ref))
    assert [_bits(a) for a in (dy, u, k, pre, post)] == before


# ---------------------------------------------------------------------------- forward, k per call
FWD_CASES = [
    # (B, H, L, Lk, mode, dtype, k dtype, gated)
    (4, 16, 128, 128, "causal", "float16", "float32", False),
    (3, 111, 500, 77, "causal", "bfloat16", "float32", True),
    (1, 8, 1000, 1000, "causal", "float16", "float16", True),
    (2, 5, 700, 1500, "causal", "bfloat16", "bfloat16", False),  # k cut to L taps
    (2, 6, 300, 50, "full", "float16", "float64", True),
    (2, 6, 301, 40, "valid", "float16", "float32", False),
    (2, 4, 1024, 1024, "circular", "bfloat16", "float32", True),
    (2, 4, 12000, 12000, "causal", "float16", "float32", True),  # FFT 32768
]


@pytest.mark.parametrize("case", FWD_CASES, ids=lambda c: "-".join(map(str, c)))
def test_forward_fast_matches_general_and_reference(case):
    torch = _torch()
    B, H, L, Lk, mode, dtype, k_dtype, gated = case
    rng = np.random.default_rng(zlib.crc32(repr(("fwd", case)).encode()))
    cufftconv.clear_plan_cache()
    _, u, k, pre, post = _operands(torch, rng, B, H, L, Lk, mode, dtype, k_dtype, gated)
    general = cufftconv.fftconv(u, k, mode=mode, pregate=pre, postgate=post)
    fast = api._fast.get(api._fast_key(u, k, pre, post, mode))
    assert fast is not None, "the first call built no fast path"
    junk = torch.full((1 << 22,), float("nan"), device="cuda")
    del junk
    y = fast(u, k, pre, post)
    assert y is not None and y.shape == general.shape and y.dtype == general.dtype
    assert _bits(y) == _bits(general)
    assert _bits(cufftconv.fftconv(u, k, mode=mode, pregate=pre, postgate=post)) == _bits(y)
    h = [_host(a) for a in (u, k, pre, post)]
    want = reference.fftconv_direct(h[0], h[1], mode=mode, pregate=h[2], postgate=h[3])
    tol = 1e-3 if dtype == "float16" else 6e-3
    err = np.linalg.norm(_host(y) - want) / np.linalg.norm(want)
    assert err <= tol, err


def test_forward_fast_declines():
    torch = _torch()
    rng = np.random.default_rng(2)
    cufftconv.clear_plan_cache()
    _, u, k, _, _ = _operands(torch, rng, 2, 8, 256, 256, "causal", "float16", "float32", False)
    cufftconv.fftconv(u, k)
    fast = api._fast.get(api._fast_key(u, k, None, None, "causal"))
    assert fast is not None
    kk = torch.from_numpy(rng.standard_normal((8, 512))).to("cuda", torch.float32)[:, ::2]
    assert fast(u, kk, None, None) is None  # strided k
    assert _bits(cufftconv.fftconv(u, kk)) == _bits(cufftconv.fftconv(u, kk.contiguous()))
    assert fast(u, k.double(), None, None) is None
    assert fast(u, k, u, None) is None
    with pytest.raises(ValueError):
        cufftconv.fftconv(u, k, mode="sideways")
    # frequency-sparse and out= calls never take it
    y = cufftconv.fftconv(u, k, freq_keep=0.25)
    assert y.shape == u.shape


def test_forward_fast_cupy_and_torch_stream():
    cp = pytest.importorskip("cupy")
    torch = _torch()
    rng = np.random.default_rng(9)
    cufftconv.clear_plan_cache()
    u = cp.asarray(rng.standard_normal((3, 10, 400)), dtype=cp.float16)
    k = cp.asarray(rng.standard_normal((10, 400)) / 20, dtype=cp.float32)
    first = cufftconv.fftconv(u, k)
    assert api._fast.get(api._fast_key(u, k, None, None, "causal")) is not None
    again = cufftconv.fftconv(u, k)
    assert isinstance(again, cp.ndarray) and _bits(again) == _bits(first)
    tu = torch.as_tensor(cp.asnumpy(u)).cuda()
    tk = torch.as_tensor(cp.asnumpy(k)).cuda()
    ref = cufftconv.fftconv(tu, tk)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        y = cufftconv.fftconv(tu, tk)
        y.record_stream(side)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    assert _bits(y) == _bits(ref)
