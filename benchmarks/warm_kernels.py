"""Fill CuPy's kernel cache for every fused forward and backward configuration, in parallel
threads (NVRTC releases the GIL), so that GPU tests and benchmarks after it load cubins instead
of compiling one module at a time.

    python benchmarks/warm_kernels.py [THREADS]
"""

from __future__ import annotations

import sys
import time

from cufftconv import fused


def main() -> None:
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    flags = [(dt, pre, post) for dt in fused.DTYPES for pre in (False, True) for post in (False, True)]
    t0 = time.perf_counter()
    count = 0
    for role in (fused.BACKWARD, fused.FORWARD):
        configs = [(n, *f) for n in role.sizes for f in flags]
        fused.precompile(configs, max_workers=workers, role=role)
        count += len(configs)
    print(f"{count} modules ready in {time.perf_counter() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
