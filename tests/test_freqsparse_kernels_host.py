"""CPU checks of the block structure the frequency-sparse kernels rely on (no GPU).

The fused kernels skip whole 256-point spectrum tiles and the long kernels whole workspace
rows; that is exact only if every tile (row) holds a single frequency class f % 16, in the
order the kernels assume. These tests check it against each family's own frequency order.
"""

from __future__ import annotations

import numpy as np
import pytest

from cufftconv import freqmask, fused
from cufftconv import long as lc

MASKS = [
    freqmask.from_keep(0.5),
    freqmask.from_keep(0.25),
    freqmask.from_keep(0.0625),
    (True, False, True, False, False, False, True, False,
     True, False, True, False, False, False, True, False),
]


@pytest.mark.parametrize("n", [4096, 8192, 16384, 32768])
@pytest.mark.parametrize("mask", MASKS)
def test_fused_tile_schedule(n, mask):
    order, kc = fused.sparse_tiles(n, mask)
    tiles = fused.freq_index(n).reshape(-1, 256)
    assert sorted(order.tolist()) == list(range(tiles.shape[0]))
    keep = np.asarray(mask)[tiles % 16]  # (tiles, 256)
    assert keep[order[:kc]].all() and not keep[order[kc:]].any()
    assert kc == tiles.shape[0] * sum(mask) // 16
    # the kernel's class formula (q + R k0) mod 16 for tile q * 16 + k0
    R = fused.config(n)["R"]
    t = np.arange(tiles.shape[0])
    assert ((tiles[:, 0] % 16) == (t // 16 + R * (t % 16)) % 16).all()


@pytest.mark.parametrize("n", [256, 512, 1024, 2048])
def test_small_fused_sizes_have_no_tile_schedule(n):
    assert fused.sparse_tiles(n, MASKS[1]) is None


def test_dense_has_no_tile_schedule():
    assert fused.sparse_tiles(8192, None) is None
    assert fused.sparse_tiles(8192, (True,) * 16) is None


@pytest.mark.parametrize("n", lc.SUPPORTED_N)
def test_long_rows_hold_one_class(n):
    n1, n2, _ = lc.split(n)
    f = lc.freq_index(n).reshape(n1, n2) % 16
    assert (f == (np.arange(n1) // (n1 // 16))[:, None]).all()


@pytest.mark.parametrize("n", [1 << 16, 1 << 20, 1 << 24])
@pytest.mark.parametrize("mask", MASKS)
def test_long_keep_bits_and_row_groups(n, mask):
    conv = lc.LongConv(n, "float16", pregate=False, postgate=False, freq_mask=mask)
    assert [bool(conv.keep >> j & 1) for j in range(16)] == list(mask)
    assert conv.row_groups * conv.rows == sum(mask) * conv.n1 // 16
    dense = lc.LongConv(n, "float16", pregate=False, postgate=False)
    assert dense.keep == 0xFFFF and dense.row_groups * dense.rows == dense.n1
