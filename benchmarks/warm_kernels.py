"""Fill CuPy's kernel cache for every fused forward and backward configuration, in parallel
threads (NVRTC releases the GIL), so that GPU tests and benchmarks after it load cubins instead
of compiling one module at a time.

    python benchmarks/warm_kernels.py [THREADS]
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor

import cupy as cp

from cufftconv import fused


def main() -> None:
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    flags = [(dt, pre, post) for dt in fused.DTYPES for pre in (False, True) for post in (False, True)]
    jobs = [(fused.BACKWARD, n, *f) for n in fused.DK_SIZES for f in flags]
    jobs += [(fused.FORWARD, n, *f) for n in fused.SUPPORTED_N for f in flags]
    dev = cp.cuda.Device().id
    t0 = time.perf_counter()

    def one(job):
        role, *cfg = job
        with cp.cuda.Device(dev):
            role.kernels(*cfg)

    with ThreadPoolExecutor(max_workers=workers) as ex:
        list(ex.map(one, jobs))
    print(f"{len(jobs)} modules ready in {time.perf_counter() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
