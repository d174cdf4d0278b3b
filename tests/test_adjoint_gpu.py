"""GPU tests of the backward row through the forward kernels (``monarch-adjoint``).

FFT sizes 256..16384 run the fused backward kernel (all four gradients); above, du, dpregate
and dpostgate run on the forward (fused or long) kernels and dk on the cuFFT adjoint; all four
against the float64 adjoint of the same rounded inputs, fresh random inputs, every mode, gated
and not, fp16 and bf16, odd lengths, Lk > L, B = 1.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import rel_err

cp = pytest.importorskip("cupy")
torch = pytest.importorskip("torch")

pytestmark = pytest.mark.gpu  # conftest skips it without a GPU

import cufftconv
from cufftconv import dispatch, grad
from cufftconv.validation import build_spec

TOL = {"float16": 2e-3, "bfloat16": 1e-2}  # the gradient figures
CASES = [  # (B, H, L, Lk, mode): FFT sizes 4096 .. 131072
    (2, 3, 2100, 2000, "causal"),
    (3, 5, 4000, 77, "same"),
    (1, 4, 4096, 4096, "circular"),
    (2, 3, 5001, 3000, "full"),
    (2, 2, 3000, 5000, "valid"),
    (3, 2, 8000, 9000, "causal"),  # Lk > L
    # FFT 32768: dk by blocks through the 16K backward kernel, du / gates on forward kernels
    (3, 2, 16000, 16384, "causal"),
    (2, 2, 20000, 9000, "full"),
    (1, 3, 17000, 12000, "same"),
    (2, 1, 30000, 1500, "valid"),
    (2, 3, 40000, 30011, "full"),  # long family, 131072
    (1, 2, 50000, 77, "same"),  # long family (a short filter: the forward takes blocks)
]


def _ref(dy, u, k, pre, post, mode):
    h = [None if a is None else a.float().double().cpu().numpy() for a in (dy, u, k, pre, post)]
    spec = build_spec(
        h[1].shape, h[2].shape, mode=mode, dtype="float64", k_dtype="float64",
        pregate_dtype=None if pre is None else "float64",
        postgate_dtype=None if post is None else "float64",
    )
    return grad.HostBwdExecutor(spec).run_bwd(*h)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("B,H,L,Lk,mode", CASES)
def test_against_float64(rng, dtype, gated, B, H, L, Lk, mode):
    tdt = getattr(torch, dtype)
    spec = build_spec((B, H, L), (H, Lk), mode=mode, dtype=dtype, k_dtype="float32",
                      pregate_dtype=dtype if gated else None,
                      postgate_dtype=dtype if gated else None)
    assert grad.choose_bwd(spec, dispatch.target_device(spec)).name == "monarch-adjoint"

    def t(shape, scale=1.0):
        return (torch.from_numpy(rng.standard_normal(shape)) * scale).to(tdt).cuda()

    u, dy = t((B, H, L)), t(spec.out_shape)
    k = torch.from_numpy((rng.standard_normal((H, Lk)) / np.sqrt(Lk)).astype(np.float32)).cuda()
    pre = t((B, H, L)) if gated else None
    post = t(spec.out_shape) if gated else None
    got = cufftconv.grad.fftconv_bwd(dy, u, k, mode=mode, pregate=pre, postgate=post)
    want = _ref(dy, u, k, pre, post, mode)
    for name, g, w, op in zip(("du", "dk", "dpre", "dpost"), got, want, (u, k, pre, post)):
        if op is None:
            assert g is None, name
            continue
        assert g.dtype == op.dtype and tuple(g.shape) == tuple(op.shape), name
        hg = g.float().double().cpu().numpy()
        assert np.isfinite(hg).all(), name
        err = rel_err(hg, w)
        assert err <= TOL[dtype], f"{name}: rel err {err:.2e} ({dtype}, {mode}, L={L}, Lk={Lk})"


def test_32k_dk_runs_by_blocks():
    spec = build_spec((2, 2, 16000), (2, 16000), mode="causal", dtype="float16", k_dtype="float32")
    _, name, ex = grad._executor(spec)
    assert name == "monarch-adjoint" and ex.bwd is None and ex.dk_blocks is not None
    circ = build_spec((2, 2, 32768), (2, 32768), mode="circular", dtype="float16",
                      k_dtype="float32")
    assert grad._executor(circ)[2].dk_blocks is None  # circular wraps: the exact dk


def test_small_sizes_take_the_fused_row():
    spec = build_spec((2, 3, 100), (3, 100), mode="causal", dtype="float16", k_dtype="float32")
    ex = grad.choose_bwd(spec, dispatch.target_device(spec))
    assert ex.name == "monarch-adjoint"


def test_torch_autograd_uses_the_row(rng):
    """cufftconv.torch's backward goes through the same row (gates and all gradients)."""
    import cufftconv.torch as ct

    B, H, L = 2, 3, 4096
    u = torch.randn(B, H, L, device="cuda", dtype=torch.float16, requires_grad=True)
    pre = torch.randn(B, H, L, device="cuda", dtype=torch.float16, requires_grad=True)
    post = torch.randn(B, H, L, device="cuda", dtype=torch.float16, requires_grad=True)
    k = (torch.randn(H, L, device="cuda") / L**0.5).requires_grad_()
    y = ct.fftconv(u, k, mode="causal", pregate=pre, postgate=post)
    dy = torch.randn_like(y)
    y.backward(dy)
    want = _ref(dy, u.detach(), k.detach(), pre.detach(), post.detach(), "causal")
    for g, w in zip((u.grad, k.grad, pre.grad, post.grad), want):
        assert rel_err(g.double().cpu().numpy(), w) <= TOL["float16"]
