"""``python -m cufftconv {info,check,bench}``."""

from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np

from . import dispatch
from .device import cupy_or_none, device_count, device_info, gpu_available
from .validation import MODES, build_spec

NO_GPU = "No CUDA GPU found (or CuPy is not installed): using the NumPy path."

# (dtype, relative-error bound) for the self-test; inputs are rounded before the reference.
CHECK_TOLERANCE = {"float16": 1e-3, "bfloat16": 6e-3, "float32": 2e-5, "float64": 1e-11}
# A handful of outputs cannot average their rounding errors: a gated 16-bit result is rounded
# twice (pre*u on load, y on store), up to one unit in the last place each, i.e. 2**-10 (fp16)
# or 2**-7 (bf16) relative for a single element, plus the FFT's own error.
TINY_OUTPUT = 64
TINY_TOLERANCE = {"float16": 2.5e-3, "bfloat16": 2e-2}


def error_bound(dtype: str, n_out: int) -> float:
    """Relative-error bound against the float64 reference for ``n_out`` output elements."""
    if n_out < TINY_OUTPUT:
        return TINY_TOLERANCE.get(dtype, CHECK_TOLERANCE[dtype])
    return CHECK_TOLERANCE[dtype]


def _info(args: argparse.Namespace) -> int:
    print(f"cufftconv on Python {platform.python_version()}, NumPy {np.__version__}")
    cp = cupy_or_none()
    print(f"CuPy: {cp.__version__ if cp is not None else 'not installed'}")
    dev = None
    if gpu_available():
        rt = cp.cuda.runtime.runtimeGetVersion()
        drv = cp.cuda.runtime.driverGetVersion()
        print(f"CUDA runtime {rt // 1000}.{rt % 1000 // 10}, driver {drv // 1000}.{drv % 1000 // 10}")
        for i in range(device_count()):
            d = device_info(i)
            print(
                f"GPU {i}: {d.name}, compute capability {d.compute_capability[0]}."
                f"{d.compute_capability[1]} ({d.arch}), {d.sm_count} SMs, "
                f"{d.smem_per_block_optin // 1024} KB shared memory per block (opt-in), "
                f"L2 {d.l2_bytes // 2**20} MB, {d.total_memory / 2**30:.1f} GiB"
            )
        dev = device_info(int(cp.cuda.Device().id))
    else:
        print(NO_GPU)
    print("\nDispatch table (first accepting row runs):")
    for route in dispatch.routes():
        print(f"  {route.name:<18} {route.description}")
    from .grad import bwd_routes

    print("\nBackward table (fftconv_bwd; first accepting row runs):")
    for route in bwd_routes():
        print(f"  {route.name:<18} {route.description}")
    print(f"\nPath per length (u (B=2, H=4, L), k (H, L)){' on ' + dev.name if dev else ''}:")
    header = f"{'L':>9}  " + "  ".join(f"{m + '/' + d:>22}" for d in args.dtypes for m in args.modes)
    print(header)
    for L in args.lengths:
        cells = []
        for d in args.dtypes:
            for m in args.modes:
                spec = build_spec(
                    (2, 4, L), (4, L), mode=m, dtype=d, k_dtype="float32",
                    device=None if dev is None else dev.index,
                )
                cells.append(f"{dispatch.choose(spec, dev).name:>22}")
        print(f"{L:>9}  " + "  ".join(cells))
    return 0


def _random(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(shape)


def _check(args: argparse.Namespace) -> int:
    from . import reference
    from .api import fftconv

    rng = np.random.default_rng(args.seed)
    gpu = gpu_available()
    torch = None
    if gpu:
        try:
            import torch as _torch

            torch = _torch if _torch.cuda.is_available() else None
        except ImportError:
            torch = None
    else:
        print(NO_GPU)
    dtypes = ["float16", "float32", "float64"] + (["bfloat16"] if torch is not None else [])
    if gpu and torch is None:
        print("bfloat16 is checked through PyTorch, which is not available: skipped")
    cases = [
        ((2, 3, 1000), (3, 1000)),
        ((1, 1, 4099), (1, 300)),
        ((3, 5, 257), (5, 64)),
        ((2, 111, 2048), (111, 2048)),
        ((4, 333), (333,)),
    ]
    if gpu:  # FFT size 65536 for the linear modes: the long-sequence row (too slow on the host)
        cases.append(((1, 2, 40001), (2, 3000)))
    failures = 0
    print(f"{'shape':>16} {'Lk':>6} {'mode':>9} {'gated':>5} {'dtype':>9} {'route':>16} "
          f"{'rel.err':>9} {'bound':>8}")
    for u_shape, k_shape in cases:
        for mode in MODES:
            if mode == "circular" and k_shape[-1] > u_shape[-1]:
                continue
            for dtype in dtypes:
                gated = bool(rng.integers(2))
                err, bound, route = _check_one(
                    u_shape, k_shape, mode, dtype, gated, rng, gpu, torch, fftconv, reference
                )
                ok = err <= bound
                failures += not ok
                print(f"{u_shape!s:>16} {k_shape[-1]:>6} {mode:>9} {gated!s:>5} "
                      f"{dtype:>9} {route:>16} {err:9.2e} {bound:8.0e}{'' if ok else '  FAIL'}")
    print("check: " + ("all passed" if failures == 0 else f"{failures} FAILED"))
    return 1 if failures else 0


def _check_one(u_shape, k_shape, mode, dtype, gated, rng, gpu, torch, fftconv, reference):
    """One self-test case: returns (relative error, bound, route name)."""
    from .interop import describe
    from .validation import spec_from_operands

    u64 = _random(u_shape, rng)
    k64 = _random(k_shape, rng)
    out_len = {"full": u_shape[-1] + k_shape[-1] - 1,
               "valid": abs(u_shape[-1] - k_shape[-1]) + 1}.get(mode, u_shape[-1])
    pre64 = _random(u_shape, rng) if gated else None
    post64 = _random(u_shape[:-1] + (out_len,), rng) if gated else None

    def conv(a: np.ndarray) -> object:
        if dtype == "bfloat16":
            return torch.tensor(a, dtype=torch.bfloat16, device="cuda")
        if gpu:
            return cupy_or_none().asarray(a.astype(dtype))
        return a.astype(dtype)

    def back(a: object) -> np.ndarray:
        if torch is not None and isinstance(a, torch.Tensor):
            return a.float().cpu().numpy().astype(np.float64)
        if not isinstance(a, np.ndarray):
            a = a.get()
        return np.asarray(a, dtype=np.float64)

    u, k = conv(u64), conv(k64.astype(np.float32) if dtype != "float64" else k64)
    pre = None if pre64 is None else conv(pre64)
    post = None if post64 is None else conv(post64)
    y = fftconv(u, k, mode=mode, pregate=pre, postgate=post)
    ref = reference.fftconv_direct(
        back(u), back(k), mode=mode,
        pregate=None if pre is None else back(pre), postgate=None if post is None else back(post),
    )
    err = float(np.linalg.norm(back(y) - ref) / np.linalg.norm(ref))
    ops = [None if a is None else describe(n, a)
           for n, a in (("u", u), ("k", k), ("pregate", pre), ("postgate", post))]
    spec = spec_from_operands(*ops, None, mode)
    bound = error_bound(dtype, int(np.prod(spec.out_shape)))
    return err, bound, dispatch.choose(spec, dispatch.target_device(spec)).name


def _bench(argv: list[str]) -> int:
    from . import bench

    return bench.main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m cufftconv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="GPU, versions and the path each length takes")
    p_info.add_argument("--lengths", type=int, nargs="+",
                        default=[1, 100, 256, 1000, 1024, 4096, 8191, 32768, 65536, 1 << 20])
    p_info.add_argument("--modes", nargs="+", default=["causal", "circular"], choices=MODES)
    p_info.add_argument("--dtypes", nargs="+", default=["float16", "float32"])
    p_check = sub.add_parser("check", help="accuracy self-test against a float64 reference")
    p_check.add_argument("--seed", type=int, default=None)
    sub.add_parser("bench", help="side-by-side timing table (see bench --help)", add_help=False)
    if argv[:1] == ["bench"]:
        return _bench(argv[1:])
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rc = {"info": _info, "check": _check}[args.command](args)
    if args.command == "check":
        print(f"({time.perf_counter() - start:.1f} s)")
    return rc
