"""Where the monarch-adjoint backward's time goes (development aid for the backward issue).

    python benchmarks/bwd_profile.py [--sizes 4096 16384]

The bwd_bench workload (causal, L = N/2, fp16, B*H scaled as in the anchors, times scaled to
B=64, H=768): the reversed-filter spectrum, the du kernel alone, the fused dk call and its
finishing step (order + inverse FFT) alone, against the forward with a plan.
"""

from __future__ import annotations

import argparse

import cupy as cp
import numpy as np
from devtiming import bench

from cufftconv import bench as cb
from cufftconv import fused, grad
from cufftconv.validation import build_spec


def run(n: int) -> None:
    B, H = cb.scaled_batch(64, 768, n)
    scale = 64 * 768 / (B * H)
    L = n // 2
    rng = np.random.default_rng(n)
    u = cp.asarray(rng.standard_normal((B, H, L)).astype(np.float16))
    dy = cp.asarray(rng.standard_normal((B, H, L)).astype(np.float16))
    k = cp.asarray((rng.standard_normal((H, L)) / np.sqrt(L)).astype(np.float32))
    spec = build_spec((B, H, L), (H, L), mode="causal", dtype="float16", k_dtype="float32")
    _, route, ex = grad._executor(spec)
    R, _ = ex._filters(k, True, False)
    du = cp.empty_like(u)
    t = {
        "R spectrum": bench(lambda: ex._filters(k, True, False)),
        "du kernel": bench(lambda: ex.adj_du(dy, R, du, L=L, out_offset=0, Lout=L)),
        "dk call": bench(lambda: ex.dk(u, dy, L=L, out_offset=0, Lout=L, Lk=L)),
    }
    prod = cp.asarray(rng.standard_normal((H, n)) + 1j * rng.standard_normal((H, n))).astype(
        cp.complex64
    )
    inv = cp.asarray(fused._inverse_order(n))
    t["dk finish"] = bench(lambda: fused.dk_from_product(prod, L, 0, inv, cp))
    t["bwd du+dk"] = bench(lambda: ex.run_bwd(dy, u, k, None, None))
    t["bwd via fftconv_bwd"] = bench(lambda: grad._fftconv_bwd(dy, u, k, mode="causal", pregate=None, postgate=None))
    print(f"N={n} route={route} B={B} H={H} (ms scaled to B*H=64*768)")
    for name, ms in t.items():
        print(f"  {name:22s} {ms * scale:8.3f}")
    grad.clear_bwd_cache()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[4096, 16384])
    for n in ap.parse_args().sizes:
        run(n)


if __name__ == "__main__":
    main()
