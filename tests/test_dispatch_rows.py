"""Which kernel-family row takes a call, decided on the host (no GPU: a described device)."""

import pytest

from cufftconv import dispatch
from cufftconv import long as lc
from cufftconv.backends import fused as fused_row
from cufftconv.backends import long as long_row
from cufftconv.device import DeviceInfo
from cufftconv.validation import build_spec

H200 = DeviceInfo(0, "H200", (9, 0), 132, 227 * 1024, 60 << 20, 141 << 30)
RTX = DeviceInfo(0, "RTX 3090", (8, 6), 82, 99 * 1024, 6 << 20, 24 << 30)


def spec(L, Lk=None, mode="causal", dtype="float16", u_shape=None, k_shape=None, gates=False):
    return build_spec(
        u_shape or (2, 3, L),
        k_shape or (3, Lk or L),
        mode=mode,
        dtype=dtype,
        k_dtype="float32",
        pregate_dtype=dtype if gates else None,
        postgate_dtype=dtype if gates else None,
    )


def route(s, dev=H200):
    return next(r.name for r in dispatch.routes() if r.accepts(s, dev) is None)


@pytest.mark.parametrize(
    "L,Lk,mode,want",
    [
        (4096, 4096, "causal", "fused-monarch"),  # FFT 8192
        (16384, 16384, "causal", "fused-monarch"),  # FFT 32768: the fused table's end
        (16385, 16385, "causal", "long-monarch"),  # FFT 65536
        (32768, 32768, "circular", "fused-monarch"),
        (65536, 65536, "circular", "long-monarch"),
        (1 << 23, 1 << 23, "causal", "long-monarch"),  # FFT 2**24: the long table's end
        (1 << 24, 1 << 24, "circular", "long-monarch"),
        (1 << 24, 1 << 24, "causal", "cufft"),  # FFT 2**25: beyond every kernel table
        (100003, 77, "valid", "partial-blocked"),  # Lk <= L/4 above the fused table
        (1 << 20, 4096, "causal", "partial-blocked"),
        (1 << 22, 8192, "same", "partial-blocked"),
        (1 << 20, (1 << 18) + 1, "causal", "long-monarch"),  # Lk > L/4: dense
        (20000, 77, "causal", "fused-monarch"),  # short filter, but one dense fused pass
        (65537, 65537, "circular", "cufft"),  # circular needs L a power of two
    ],
)
def test_rows_by_length(L, Lk, mode, want):
    assert route(spec(L, Lk, mode)) == want


def test_fp32_and_mixed_gates_fall_back():
    assert route(spec(1 << 17, dtype="float32")) == "cufft"
    s = build_spec(
        (2, 3, 1 << 17),
        (3, 9),
        mode="causal",
        dtype="float16",
        k_dtype="float32",
        pregate_dtype="bfloat16",
    )
    reason = long_row.accepts(s, H200)
    assert reason is not None and "gate" in reason
    assert route(s) == "cufft"


def test_broadcast_k_other_than_channels_falls_back():
    s = spec(1 << 17, u_shape=(2, 3, 1 << 17), k_shape=(2, 1, 5))
    assert "broadcast" in long_row.accepts(s, H200)
    assert route(s) == "cufft"


def test_shared_memory_limit_picks_what_fits():
    # From 2**22 up the long kernels prefer 16K rows (136 KB); on a 99 KB part they take 8K rows
    # (~68 KB up to 2**23), and 2**24 needs 136 KB column tiles either way.
    assert lc.max_shared_bytes(1 << 22, 16384) > RTX.smem_per_block_optin
    assert lc.row_limit(1 << 22, RTX.smem_per_block_optin) == 8192
    assert lc.row_limit(1 << 22, H200.smem_per_block_optin) == 16384
    assert lc.min_shared_bytes(1 << 23) <= RTX.smem_per_block_optin
    assert lc.min_shared_bytes(1 << 24) > RTX.smem_per_block_optin
    assert route(spec(1 << 22, mode="causal"), RTX) == "long-monarch"
    big = spec(1 << 24, mode="circular")
    assert "shared memory" in long_row.accepts(big, RTX)
    assert route(big, RTX) == "cufft"


def test_no_gpu_reasons():
    s = spec(1 << 17)
    assert long_row.accepts(s, None) == fused_row.accepts(s, None) == "no CUDA GPU"
    assert route(s, None) == "numpy-reference"


def test_reason_names_the_table():
    reason = fused_row.accepts(spec(1 << 17), H200)
    assert "256..32768" in reason
    reason = long_row.accepts(spec(1 << 24, mode="full"), H200)
    assert f"{lc.MIN_N}..{lc.MAX_N}" in reason
