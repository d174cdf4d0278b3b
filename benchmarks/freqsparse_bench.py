"""Frequency-sparse convolutions against our own dense kernel at the same FFT size (issue #6).

    python benchmarks/freqsparse_bench.py [--sizes 4096 ... 1048576] [--variants conv causal]
                                          [--out results.md]

For each FFT size N and variant (circular ``conv``, or ``causal`` with L = N/2), fp16, the
workloads of ``python -m cufftconv bench`` (B=64, H=768, B*H cut from 16K on, B=8 with H cut
for the long rows; times scaled to B=64, H=768), the dense plan and plans with 50 %, 75 %,
87.5 % and 93.75 % of the spectrum zeroed are timed side by side in one process with CUDA
events (median), after a float64 check of two sequences against the reference with the same
mask. Two kinds of masks:

- ``keep``: ``freq_keep`` = 0.5, 0.25, 0.125, 0.0625 (f % 2, 4, 8, 16 == 0: whole radix
  sub-transforms of the kernels drop out);
  where a ``keep`` mask folds (f % F == 0, F >= 4), a ``keep, other row`` row times the same
  mask forced through the row the dispatcher did not pick: the folded row (fold, dense kernel
  at N / F, tile) or the fused row's in-place skipping (the SPARSE twiddle-folded kernel at
  4096 / 8192 where the call fits it, the Monarch kernel's tile skipping elsewhere);
- ``band``: explicit masks of the classes nearest 0 (r and 16 - r for r = 0, 1, ..., and 8 to
  make an even count: 8, 4, 3, 1 classes), which zero tiles / rows but rarely a whole
  sub-transform.
"""

from __future__ import annotations

import argparse

import cupy as cp
import numpy as np
from devtiming import bench

import cufftconv
from cufftconv import bench as cb
from cufftconv import freqmask, reference
from cufftconv.backends import folded as folded_row

KEEPS = (1.0, 0.5, 0.25, 0.125, 0.0625)
# classes nearest 0 (r and 16 - r), with 8 to make an even count: 8, 4, 3 and 1 classes
BANDS = ({0, 1, 15, 2, 14, 3, 13, 8}, {0, 1, 15, 8}, {0, 1, 15}, {0})


def band_mask(kept: set[int]) -> tuple[bool, ...]:
    return tuple(r in kept for r in range(16))


MASKS = {
    "keep": [("keep", k, None) for k in KEEPS],
    "band": [("band", None, band_mask(b)) for b in BANDS],
}
SIZES = (4096, 8192, 16384, 32768, 65536, 262144, 1048576)


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def run(n: int, variant: str, rows: list[str]) -> None:
    B, H = cb.scaled_batch(64, 768, n)
    scale = 64 * 768 / (B * H)
    L = n // 2 if variant == "causal" else n
    mode = "causal" if variant == "causal" else "circular"
    rng = np.random.default_rng(n)
    u = cp.asarray(rng.standard_normal((B, H, L)).astype(np.float16))
    k = cp.asarray((rng.standard_normal((H, L)) / np.sqrt(L)).astype(np.float32))
    y = cp.full((B, H, L), np.nan, dtype=np.float16)
    u64 = u[:2, :1].get().astype(np.float64)
    k64 = k[:1].get().astype(np.float64)
    dense_ms = None
    cases = []
    for kind, keep, explicit in MASKS["keep"] + MASKS["band"]:
        cases.append((kind, keep, explicit, None))
        f = folded_row.fold_factor(freqmask.resolve(keep, None)) if kind == "keep" else None
        if f is not None and f >= folded_row.MIN_FOLD:
            cases.append(("keep, other row", keep, explicit, "other"))
    chosen = None
    for kind, keep, explicit, path in cases:
        if path == "other":  # the row the dispatcher did not pick for the row above
            path = "fused-monarch" if chosen == "fused-folded" else "fused-folded"
        mask = freqmask.resolve(keep, explicit)
        in_place = folded_row.IN_PLACE_FASTER
        if path == "fused-folded":  # force the folded row even where the fused one is faster
            folded_row.IN_PLACE_FASTER = frozenset()
        try:
            plan = cufftconv.FFTConv(
                u.shape, k=k, dtype="float16", mode=mode, freq_keep=keep, freq_mask=explicit,
                path=path,
            )
        except ValueError:  # the forced row does not take this size
            continue
        finally:
            folded_row.IN_PLACE_FASTER = in_place
        if path is None:
            chosen = plan.route
        y[...] = np.nan
        plan(u, out=y)
        want = reference.fftconv_direct(u64, k64, mode=mode, freq_mask=mask)
        err = rel_err(y[:2, :1].get().astype(np.float64), want)
        ms = bench(lambda plan=plan: plan(u, out=y), reps=9, warmup=2) * scale
        if dense_ms is None:
            dense_ms = ms
        zeroed = 100 * (1 - freqmask.kept_fraction(mask))
        line = (
            f"| {n} | {variant} | {kind} | {zeroed:.2f}% | {plan.route} | {ms:.3f} | "
            f"{dense_ms / ms:.2f}x | {err:.1e} |"
        )
        print(line, flush=True)
        rows.append(line)
        del plan
    cufftconv.clear_plan_cache()
    cp.get_default_memory_pool().free_all_blocks()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    ap.add_argument("--variants", nargs="*", default=["conv", "causal"])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    dev = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)["name"].decode()
    head = [
        f"device: {dev}",
        "",
        "| N | variant | mask | zeroed | route | ms (B=64, H=768) | vs dense | rel err |",
        "|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(head), flush=True)
    rows: list[str] = []
    for n in args.sizes:
        for v in args.variants:
            run(n, v, rows)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(head + rows) + "\n")


if __name__ == "__main__":
    main()
