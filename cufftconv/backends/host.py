"""The CPU path: the NumPy Monarch reference in float64, for hosts without a GPU."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import reference
from ..dtypes import from_compute, to_compute
from ..validation import ConvSpec


class HostExecutor:
    """Runs :func:`cufftconv.reference.fftconv` (float64) and rounds to u's dtype; a
    frequency-sparse spec passes its mask (the reference then uses the FFT size
    ``spec.freq_n``)."""

    xp = np

    def __init__(self, spec: ConvSpec) -> None:
        self.spec = spec

    def spectrum(self, k: Any) -> Any:
        # The reference builds its own spectrum; keep k widened once per plan.
        return to_compute(np.asarray(k), self.spec.k_dtype, "float64", np)

    def run(
        self, u: Any, kspec: Any, pregate: Any | None, postgate: Any | None, out: Any = None
    ) -> Any:
        s = self.spec
        pre = None if pregate is None else to_compute(pregate, s.pregate_dtype, "float64", np)
        post = None if postgate is None else to_compute(postgate, s.postgate_dtype, "float64", np)
        y = reference.fftconv(
            to_compute(u, s.dtype, "float64", np),
            kspec,
            mode=s.mode,
            pregate=pre,
            postgate=post,
            freq_mask=s.freq_mask,
        )
        y = from_compute(y, s.dtype, np)
        if out is None:
            # The reference may hand back a read-only broadcast view; callers own the result.
            return y if y.flags.writeable else y.copy()
        out[...] = y
        return out
