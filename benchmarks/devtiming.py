"""CUDA-event timing shared by the development scripts in this folder (not the library's
benchmark, which is ``python -m cufftconv bench``)."""

from __future__ import annotations

import statistics
from collections.abc import Callable

import cupy as cp


def bench(fn: Callable[[], object], reps: int = 7, warmup: int = 2) -> float:
    """Median milliseconds of ``fn`` on the current stream, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        a, b = cp.cuda.Event(), cp.cuda.Event()
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(cp.cuda.get_elapsed_time(a, b))
    return statistics.median(times)
