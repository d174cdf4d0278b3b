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
    sc = fused.sparse_tiles(n, mask)
    R = fused.config(n)["R"]
    tiles = fused.freq_index(n).reshape(-1, 256)
    keep = np.asarray(mask)[tiles % 16]  # (tiles, 256)
    kept, zeroed = sc.order[: sc.kept], sc.order[sc.kept : sc.kept + sc.zeroed]
    assert len(sc.order) == sc.kept + sc.zeroed
    assert keep[kept].all() and not keep[zeroed].any()
    assert sc.kept == tiles.shape[0] * sum(mask) // 16
    # every tile is listed, or belongs to a dead sub-transform q (no kept tile in it)
    q = np.arange(tiles.shape[0]) // 16
    listed = np.zeros(tiles.shape[0], bool)
    listed[sc.order] = True
    for t in np.flatnonzero(~listed):
        assert not keep[q == q[t]].any() and not sc.live >> q[t] & 1
    for t in sc.order:
        assert sc.live >> q[t] & 1
    # the kernel's class formula (q + R k0) mod 16 for tile q * 16 + k0
    t = np.arange(tiles.shape[0])
    assert ((tiles[:, 0] % 16) == (t // 16 + R * (t % 16)) % 16).all()


def test_keep_quarter_runs_one_sub_transform_at_16k():
    """freq_keep=0.25 keeps f % 4 == 0: at 16K (R = 4) only q = 0 is live, all its tiles kept."""
    sc = fused.sparse_tiles(16384, freqmask.from_keep(0.25))
    assert sc.live == 1 and sc.kept == 16 and sc.zeroed == 0


@pytest.mark.parametrize("n", [256, 512, 1024, 2048])
def test_small_fused_sizes_have_no_tile_schedule(n):
    assert fused.sparse_tiles(n, MASKS[1]) is None


def test_dense_has_no_tile_schedule():
    assert fused.sparse_tiles(8192, None) is None
    assert fused.sparse_tiles(8192, (True,) * 16) is None


@pytest.mark.parametrize("n", lc.SUPPORTED_N)
@pytest.mark.parametrize("max_row", lc.ROW_CHOICES)
def test_long_rows_hold_one_class(n, max_row):
    n1, n2, _ = lc.split(n, max_row)
    f = lc.freq_index(n, max_row).reshape(n1, n2) % 16
    assert (f == (np.arange(n1) // (n1 // 16))[:, None]).all()


@pytest.mark.parametrize("n", [1 << 16, 1 << 20, 1 << 24])
@pytest.mark.parametrize("mask", MASKS)
def test_long_keep_bits_and_row_groups(n, mask):
    conv = lc.LongConv(n, "float16", pregate=False, postgate=False, freq_mask=mask)
    assert [bool(conv.keep >> j & 1) for j in range(16)] == list(mask)
    assert conv.row_groups * conv.rows == sum(mask) * conv.n1 // 16
    dense = lc.LongConv(n, "float16", pregate=False, postgate=False)
    assert dense.keep == 0xFFFF and dense.row_groups * dense.rows == dense.n1
