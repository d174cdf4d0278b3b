"""Forward + backward against PyTorch autograd through the rfft conv (issue: backward pass).

    python benchmarks/bwd_bench.py [--sizes 1024 4096 16384] [--gated] [--out FILE]

The anchors' workload (``forward_plus_backward`` in shared/anchors): causal convolution with
L = N/2, fp16 u, fp32 k, the u and k gradients; B=64, H=768 (B*H cut from N = 16384 on as in
``python -m cufftconv bench``), times scaled to B=64, H=768, CUDA events, median. ``--gated``
adds the Hyena form (pre- and postgate, all four gradients). Columns: our forward (plan
holding k), our backward (``fftconv_bwd``) and its du-only / dk-only parts, the exact cuFFT
backward it replaced, PyTorch autograd forward+backward, and the ratios the issue asks for;
then the training path: ``cufftconv.torch.fftconv`` forward + ``backward()`` under autograd,
k given on every call, gates (if any) requiring gradients too (the PyTorch baseline computes
the u and k gradients only). Gradients are checked against the float64 adjoint for two
sequences first.
"""

from __future__ import annotations

import argparse

import cupy as cp
import numpy as np
import torch
from devtiming import bench

import cufftconv
from cufftconv import bench as cb
from cufftconv import grad
from cufftconv.validation import build_spec


def rel(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def run(n: int, gated: bool, rows: list[str]) -> None:
    B, H = cb.scaled_batch(64, 768, n)
    scale = 64 * 768 / (B * H)
    L = n // 2
    dt = "float16"
    rng = np.random.default_rng(n)
    tu = torch.from_numpy(rng.standard_normal((B, H, L)).astype(np.float16)).cuda()
    tk = torch.from_numpy((rng.standard_normal((H, L)) / np.sqrt(L)).astype(np.float32)).cuda()
    tdy = torch.from_numpy(rng.standard_normal((B, H, L)).astype(np.float16)).cuda()
    tpre = torch.randn(B, H, L, device="cuda").half() if gated else None
    tpost = torch.randn(B, H, L, device="cuda").half() if gated else None
    spec = build_spec((B, H, L), (H, L), mode="causal", dtype=dt, k_dtype="float32",
                      pregate_dtype=dt if gated else None, postgate_dtype=dt if gated else None)
    route = grad.choose_bwd(spec, cufftconv.dispatch.target_device(spec)).name

    plan = cufftconv.FFTConv((B, H, L), k=tk, dtype=dt, mode="causal", pregate=gated,
                             postgate=gated)
    t_fwd = bench(lambda: plan(tu, pregate=tpre, postgate=tpost)) * scale

    def bwd(needs=(True, True, True, True)):
        return grad._fftconv_bwd(tdy, tu, tk, mode="causal", pregate=tpre, postgate=tpost,
                                 needs=needs)

    # check two sequences of every gradient against the float64 adjoint
    got = bwd()
    sl = (slice(0, 2), slice(0, 1))
    h = lambda a: None if a is None else a[sl].double().cpu().numpy()
    spec64 = build_spec((2, 1, L), (1, L), mode="causal", dtype="float64", k_dtype="float64",
                        pregate_dtype="float64" if gated else None,
                        postgate_dtype="float64" if gated else None)
    want = grad.HostBwdExecutor(spec64).run_bwd(
        h(tdy), h(tu), tk[:1].double().cpu().numpy(), h(tpre), h(tpost)
    )
    errs = [rel(h(got[i]), want[i]) for i in (0, 2, 3) if got[i] is not None]
    # dk sums over the batch: compare on a run with the same two sequences only
    dk2 = grad._fftconv_bwd(tdy[sl], tu[sl], tk[:1], mode="causal",
                            pregate=None if tpre is None else tpre[sl],
                            postgate=None if tpost is None else tpost[sl])[1]
    errs.append(rel(dk2.double().cpu().numpy(), want[1]))

    t_bwd = bench(bwd) * scale
    t_du = bench(lambda: bwd((True, False, False, False))) * scale
    t_dk = bench(lambda: bwd((False, True, False, False))) * scale
    ex = grad.CufftBwdExecutor(spec)
    cu = [cp.from_dlpack(a) if a is not None else None for a in (tdy, tu, tk, tpre, tpost)]
    t_old = bench(lambda: ex.run_bwd(*cu)) * scale

    lu = tu.clone().requires_grad_()
    lk = tk.clone().requires_grad_()

    def torch_fb():
        x = lu.float() if tpre is None else (lu * tpre).float()
        yy = torch.fft.irfft(torch.fft.rfft(x, n=n) * torch.fft.rfft(lk, n=n), n=n)[..., :L]
        yy = yy.half() if tpost is None else (yy * tpost).half()
        yy.backward(tdy)
        lu.grad = lk.grad = None

    t_torch = bench(torch_fb, reps=5, warmup=1) * scale

    # the training path: cufftconv.torch.fftconv under autograd, k given on every call (no
    # plan holding it), every operand (gates too) requiring a gradient
    import cufftconv.torch as ct

    leaves = [a.clone().requires_grad_() if a is not None else None for a in (tu, tk, tpre, tpost)]

    def ours_fb():
        yy = ct.fftconv(leaves[0], leaves[1], mode="causal", pregate=leaves[2],
                        postgate=leaves[3])
        yy.backward(tdy)
        for a in leaves:
            if a is not None:
                a.grad = None

    t_auto = bench(ours_fb) * scale
    line = (
        f"| {n} | {'gated' if gated else 'plain'} | {route} | {t_fwd:.3f} | {t_bwd:.3f} | "
        f"{t_du:.3f} | {t_dk:.3f} | {t_old:.3f} | {t_bwd / t_fwd:.2f}x | "
        f"{t_fwd + t_bwd:.3f} | {t_torch:.3f} | {t_torch / (t_fwd + t_bwd):.2f}x | "
        f"{t_auto:.3f} | {t_torch / t_auto:.2f}x | {max(errs):.1e} |"
    )
    print(line, flush=True)
    rows.append(line)
    cufftconv.clear_plan_cache()
    grad.clear_bwd_cache()
    torch.cuda.empty_cache()
    cp.get_default_memory_pool().free_all_blocks()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[1024, 4096, 16384])
    ap.add_argument("--gated", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    head = [
        f"device: {torch.cuda.get_device_name()}",
        "",
        ("| N | gates | bwd row | fwd ms | bwd ms | du only | dk only | old bwd (cuFFT) | "
        "bwd / fwd | fwd+bwd ms | torch autograd ms | x torch | cufftconv.torch autograd ms | "
        "x torch (autograd) | max rel err |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(head), flush=True)
    rows: list[str] = []
    for n in args.sizes:
        run(n, False, rows)
        if args.gated:
            run(n, True, rows)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(head + rows) + "\n")


if __name__ == "__main__":
    main()
