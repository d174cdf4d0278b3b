"""What each output of the fused backward kernel costs (development aid for the backward issue).

    python benchmarks/bwd_outs.py [--sizes 1024 4096 16384]

Times ``FusedBwd`` alone (spectra prepared once, outside the timing) on the bwd_bench workload
(causal, L = N/2, fp16, B*H scaled as in the anchors, ms scaled to B=64, H=768) for output sets
dk; dk+du; dk+du+dpre; dk+dpost; all, with both gates and without, beside the forward plan.
"""

from __future__ import annotations

import argparse

import cupy as cp
import numpy as np
from devtiming import bench

from cufftconv import bench as cb
from cufftconv import fused


def run(n: int) -> None:
    B, H = cb.scaled_batch(64, 768, n)
    scale = 64 * 768 / (B * H)
    L = n // 2
    rng = np.random.default_rng(n)

    def arr():
        return cp.asarray(rng.standard_normal((B, H, L)).astype(np.float16))

    u, dy, pre, post = arr(), arr(), arr(), arr()
    k = cp.asarray((rng.standard_normal((H, L)) / np.sqrt(L)).astype(np.float32))
    outs = {name: cp.empty_like(u) for name in ("du", "dpre", "dpost")}
    row = [f"{n:6d}"]
    for gated in (False, True):
        kern = fused.FusedBwd(n, "float16", pregate=gated, postgate=gated)
        kr, kk = kern.spectra(k, 0, adjoint=True, filt=True)
        base = {"L": L, "out_offset": 0, "Lout": L, "Lk": L,
                "pregate": pre if gated else None, "postgate": post if gated else None}
        sets = [("dk", {}), ("+du", {"du": outs["du"]})]
        if gated:
            sets += [("+du+dpre", {"du": outs["du"], "dpre": outs["dpre"]}),
                     ("+dpost", {"kk": kk, "dpost": outs["dpost"]}),
                     ("all", {"du": outs["du"], "dpre": outs["dpre"], "kk": kk,
                              "dpost": outs["dpost"]})]
        for name, extra in sets:
            kw = {**base, **extra}
            t = bench(lambda f=kern, r=kr, kw=kw: f(u, dy, r, **kw)) * scale
            row.append(f"{'g' if gated else 'p'}:{name} {t:.3f}")
    print(" | ".join(row), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[1024, 4096, 16384])
    args = ap.parse_args()
    for n in args.sizes:
        run(n)


if __name__ == "__main__":
    main()
