"""Operand checks of the 16-bit kernel families, on the host: CuPy array headers over memory
that is never touched (no GPU needed), so only the validation runs."""

import numpy as np
import pytest

cp = pytest.importorskip("cupy")

from cufftconv import fused
from cufftconv import long as lc

_MEM = cp.cuda.UnownedMemory(1 << 20, 1 << 40, None, device_id=0)  # a header only, never read


def fake(shape, dtype=np.float16, strides=None):
    """A cupy.ndarray header of this shape (no allocation, no device access)."""
    return cp.ndarray(shape, dtype=dtype, memptr=cp.cuda.MemoryPointer(_MEM, 0), strides=strides)


def fused_kf(h, n=4096):
    return fake((h, fused.filter_row_halves(n)))


@pytest.fixture(params=["fused", "long"])
def family(request):
    if request.param == "fused":
        conv = fused.FusedConv(4096, "float16", pregate=True, postgate=False)
        return conv, lambda h: fused_kf(h), conv.prepare
    conv = lc.LongConv(1 << 16, "float16", pregate=True, postgate=False)
    n1, n2, _ = lc.split(1 << 16)
    return conv, lambda h: fake((h, n1, n2), np.complex64), conv


def test_strides_of_views():
    conv = fused.FusedConv(4096, "bfloat16", pregate=True, postgate=True)
    u = fake(
        (2, 3, 1000), np.uint16, strides=(2 * 6 * 1000, 2 * 2 * 1000, 2)
    )  # every other channel
    y = fake((2, 3, 999), np.uint16)
    pre = fake((2, 3, 1000), np.uint16)
    post = fake((2, 3, 999), np.uint16, strides=(2 * 3 * 2000, 2 * 2000, 2))
    op = conv.check_operands(u, y, L=1000, out_offset=1, Lout=999, pregate=pre, postgate=post)
    assert (op.B, op.H, op.L, op.out_offset, op.Lout) == (2, 3, 1000, 1, 999)
    assert op.u_strides == (6000, 2000) and op.y_strides == (3 * 999, 999)
    assert op.pre_strides == (3000, 1000) and op.post_strides == (6000, 2000)
    assert not op.empty


def test_two_level_batch():
    """(B0, B1, H, L) windows of rows: B = B0 * B1 sequences, outer stride of axis 0."""
    conv = fused.FusedConv(4096, "float16", pregate=False, postgate=True)
    u = fake((4, 7, 3, 4000), strides=(2 * 3 * 100000, 2 * 1000, 2 * 100000, 2))
    y = fake((4, 7, 3, 900), strides=(2 * 3 * 50000, 2 * 900, 2 * 50000, 2))
    post = fake((4, 7, 3, 900), strides=(2 * 3 * 50000, 2 * 900, 2 * 50000, 2))
    op = conv.check_operands(u, y, L=4000, out_offset=5, Lout=900, pregate=None, postgate=post)
    assert (op.B, op.H, op.BI) == (28, 3, 7)
    assert op.u_strides == (1000, 100000) and op.u_outer == 300000
    assert op.y_strides == op.post_strides == (900, 50000) and op.y_outer == 150000
    assert op.pre_strides == (0, 0) and op.pre_outer == 0
    flat = conv.check_operands(
        fake((5, 3, 10)), fake((5, 3, 10)), L=10, out_offset=0, Lout=10, pregate=None,
        postgate=fake((5, 3, 10)),
    )
    assert flat.BI == 5 and flat.u_outer == 0


def test_long_family_takes_three_dims_only():
    conv = lc.LongConv(1 << 16, "float16", pregate=False, postgate=False)
    with pytest.raises(ValueError, match=r"u must have shape \(B, H, L\), got \(2, 2, 3, 50\)"):
        conv.check_operands(
            fake((2, 2, 3, 50)), fake((2, 2, 3, 50)), L=50, out_offset=0, Lout=50,
            pregate=None, postgate=None,
        )


def test_absent_gates_have_zero_strides():
    conv = lc.LongConv(1 << 16, "float16", pregate=False, postgate=False)
    op = conv.check_operands(
        fake((1, 2, 50)),
        fake((1, 2, 50)),
        L=50,
        out_offset=0,
        Lout=50,
        pregate=None,
        postgate=None,
    )
    assert op.pre_strides == op.post_strides == (0, 0)


@pytest.mark.parametrize(
    "change,exc,match",
    [
        ({"u": fake((2, 3, 100), np.float32)}, TypeError, "u must have dtype float16"),
        ({"u": np.zeros((2, 3, 100), np.float16)}, TypeError, "u must be a cupy.ndarray"),
        ({"y": fake((2, 3, 99))}, ValueError, r"y must have shape \(2, 3, 100\)"),
        ({"u": fake((2, 3, 100), strides=(1200, 400, 4))}, ValueError, "u: last axis"),
        ({"pregate": None}, ValueError, "pregate/postgate presence"),
        ({"postgate": fake((2, 3, 100))}, ValueError, "pregate/postgate presence"),
        ({"pregate": fake((2, 1, 100))}, ValueError, "pregate must have shape"),
        ({"L": 99}, ValueError, "L=99 must equal"),
        ({"out_offset": 1 << 30}, ValueError, "out_offset"),
        ({"kf": "wrong"}, ValueError, "kf must be the"),
    ],
)
def test_bad_operands_are_named(family, change, exc, match):
    _conv, make_kf, call = family
    kw = {
        "u": fake((2, 3, 100)),
        "kf": make_kf(3),
        "y": fake((2, 3, 100)),
        "L": 100,
        "out_offset": 0,
        "Lout": 100,
        "pregate": fake((2, 3, 100)),
        "postgate": None,
    }
    kw.update(change)
    if isinstance(kw["kf"], str):
        kw["kf"] = make_kf(4)
    with pytest.raises(exc, match=match):
        call(kw.pop("u"), kw.pop("kf"), kw.pop("y"), **kw)


def test_empty_calls_launch_nothing(family):
    _conv, make_kf, call = family
    u = fake((0, 3, 100))
    out = call(
        u, make_kf(3), fake((0, 3, 100)), L=100, out_offset=0, Lout=100, pregate=fake((0, 3, 100))
    )
    assert out is None


@pytest.mark.parametrize(
    "n,freq",
    [(4096, lambda: fused.freq_index(4096)), (1 << 16, lambda: lc.freq_index(1 << 16))],
)
@pytest.mark.parametrize("kdtype", [np.float32, np.float64])
def test_ordered_spectra_match_the_full_fft(n, freq, kdtype):
    """The filter spectrum in a kernel's order, a few channels at a time (NumPy as xp)."""
    from cufftconv.kernel_io import hermitian_order, ordered_spectra

    rng = np.random.default_rng(1)
    k = rng.standard_normal((5, 300)).astype(kdtype)
    f = freq().reshape(-1)
    sel, conj = hermitian_order(f, n)
    assert sel.dtype == np.int32 and sel.max() <= n // 2
    want = np.fft.fft(k.astype(np.float64), n=n, axis=-1)[:, f]
    chunks = list(ordered_spectra(k, n, (sel, conj), np, chunk_bytes=2 * 16 * n))
    assert [(a, b) for a, b, _ in chunks] == [(0, 2), (2, 4), (4, 5)]
    got = np.concatenate([kk for _, _, kk in chunks])
    tol = 1e-12 if kdtype == np.float64 else 1e-4
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * np.abs(want).max())


def test_check_filter_names_the_shape():
    conv = lc.LongConv(1 << 16, "float16", pregate=False, postgate=False)
    with pytest.raises(ValueError, match=r"k must have shape \(H, Lk\)"):
        conv.check_filter(np.zeros(5))
    with pytest.raises(ValueError, match="filter length 65537"):
        conv.check_filter(np.zeros((1, (1 << 16) + 1)))
