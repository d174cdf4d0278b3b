"""Shared test helpers."""

import numpy as np


def rel_err(y, ref) -> float:
    y = np.asarray(y, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert y.shape == ref.shape, (y.shape, ref.shape)
    return float(np.linalg.norm(y - ref) / np.linalg.norm(ref))
