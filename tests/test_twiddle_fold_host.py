"""Host checks (no GPU) of the twiddle-folded kernel's index math (kernels/twiddle_fold.cu).

A float64 mirror of the folded DFT stages against numpy.fft, the filter gather from the Monarch
kernel's spectrum order, the shared-memory layout (injective, conflict-free ldmatrix /
stmatrix rows), the radix-2 passes of FFT 8192 as the kernel's lanes index them, and the
eligibility rules the dispatcher applies.
"""

from __future__ import annotations

import numpy as np
import pytest

from cufftconv import fused, twiddle_fold

D = np.arange(16)


def w(m: int, x) -> np.ndarray:
    return np.exp(-2j * np.pi * np.asarray(x, dtype=np.float64) / m)


def folded_matrices():
    """(F1, F2) as the kernel's build_table defines them: (16 fixed digits, row, column)."""
    a, b = D[:, None], D[None, :]
    f1 = np.stack([w(4096, a * (256 * b + j)) for j in D]) / 4  # F1[n3](k1, n1)
    f2 = np.stack([w(4096, 256 * a * b + 16 * b * j) for j in D]) / 4  # F2[k1](k2, n2) = F3
    return f1, f2


def test_folded_stages_are_a_circular_convolution(rng):
    f1, f2 = folded_matrices()
    x = rng.standard_normal(4096) + 1j * rng.standard_normal(4096)
    k = rng.standard_normal(4096)
    xm = x.reshape(16, 16, 16)  # [n1, n2, n3]
    y1 = np.einsum("ckn,nbc->kbc", f1, xm)  # F1: contract n1, fixed n3
    y2 = np.einsum("akn,anc->akc", f2, y1)  # F2: contract n2, fixed k1
    xf = np.einsum("bkn,abn->abk", f2, y2)  # F3 = F2: contract n3, fixed k2
    f = D[:, None, None] + 16 * D[None, :, None] + 256 * D[None, None, :]  # [k1, k2, k3]
    assert np.allclose(xf * 64, np.fft.fft(x)[f], atol=1e-9)
    z = xf * np.fft.fft(k)[f]
    v3 = np.einsum("bkn,abk->abn", f2.conj(), z)  # inverses: conjugate transposes
    v2 = np.einsum("akn,akc->anc", f2.conj(), v3)
    v1 = np.einsum("ckn,kbc->nbc", f1.conj(), v2)
    ref = np.fft.ifft(np.fft.fft(x) * np.fft.fft(k))
    assert np.allclose(v1.reshape(-1), ref, atol=1e-9)


@pytest.mark.parametrize("n", [4096, 8192, 16384])
def test_filter_gather_reads_the_right_frequencies(n):
    """load_k: sub-transform q, item j (k2), column half ch, lane (g, t), value c."""
    freq = fused.freq_index(n)
    r = n // 4096
    q, j, ch, lane, c = np.meshgrid(
        np.arange(r), D, np.arange(2), np.arange(32), np.arange(4), indexing="ij"
    )
    g, t = lane >> 2, lane & 3
    k3, k1 = g + 8 * (c >> 1), 8 * ch + 2 * t + (c & 1)  # the middle stage's C fragment
    want = q + r * (k1 + 16 * j + 256 * k3)
    tile = 16 * q + 8 * ch + 2 * t + (c & 1)
    pos = tile * 256 + (4 * (j & 7) + (g >> 1)) * 8 + 4 * (c >> 1) + 2 * (j >> 3) + (g & 1)
    assert np.array_equal(freq[pos], want)


def cofs(a, b, h):
    return 35 * a + 2 * b + h + (b >> 2)


def test_layout_is_injective_and_bank_conflict_free():
    a, b, h = np.meshgrid(D, D, np.arange(2), indexing="ij")
    chunks = cofs(a, b, h).ravel()
    assert len(set(chunks.tolist())) == chunks.size and chunks.max() < 16 * 35
    for h in range(2):
        for base in (0, 8):
            for fixed in D:
                rows = base + np.arange(8)  # 8 rows of one ldmatrix / stmatrix tile
                assert len(set((cofs(rows, fixed, h) % 8).tolist())) == 8
                assert len(set((cofs(fixed, rows, h) % 8).tolist())) == 8


def test_radix2_passes_invert_each_other(rng):
    """transpose_r2 / store_r2 of FFT 8192 with the lanes' element positions and twiddle
    indices, around an identity core: the output is the input."""
    x = rng.standard_normal(8192) + 1j * rng.standard_normal(8192)
    lo, hi = x[:4096], x[4096:]
    a = np.zeros(4096, complex)
    d = np.zeros(4096, complex)
    lanes = np.arange(32)
    g, t = lanes >> 2, lanes & 3
    for n1 in D:
        wn = w(32, n1)
        for q in range(4):
            for e in range(2):
                m = 256 * n1 + 16 * (8 * (q & 1) + g) + 8 * (q >> 1) + 2 * t + e
                tw = wn * w(8192, 16 * (8 * (q & 1) + g) + 8 * (q >> 1) + 2 * t + e)
                a[m], d[m] = lo[m] + hi[m], (lo[m] - hi[m]) * tw
    assert np.allclose(d, (lo - hi) * w(8192, np.arange(4096)))
    y = np.zeros(8192, complex)
    for n1 in D:
        wn = w(32, n1)
        for q in range(4):
            for e in range(2):
                m = 256 * n1 + 16 * (8 * (q & 1) + 2 * t + e) + 8 * (q >> 1) + g
                tw = wn * w(8192, 16 * (8 * (q & 1) + 2 * t + e) + 8 * (q >> 1) + g)
                z = d[m] * np.conj(tw)
                y[m], y[m + 4096] = (a[m] + z) / 2, (a[m] - z) / 2
    assert np.allclose(y, x)


def radix_tables(rt: int):
    """build_table<RT>: F1_g[n3] (g < rt, n3 < 16) and G[jj] (jj < 16 rt), phases mod 4096 rt."""
    m = 4096 * rt
    a, b = D[:, None], D[None, :]
    f1 = np.stack(
        [
            [w(m, 256 * rt * a * b + rt * j * a + 256 * g * b + g * j) / 4 for j in D]
            for g in range(rt)
        ]
    )
    big = np.stack([w(m, 256 * rt * a * b + 16 * b * jj) / 4 for jj in range(16 * rt)])
    return f1, big


def test_radix_tables_of_one_are_the_4096_tables():
    f1, f2 = folded_matrices()
    r1, big = radix_tables(1)
    assert np.allclose(r1[0], f1) and np.allclose(big, f2)


@pytest.mark.parametrize("rt", [2, 4])
def test_radix_folded_stages_are_a_circular_convolution(rng, rt):
    """RX (16384: rt = 4): the radix-rt step without twiddles (dft4 / the inverse), the
    4096-point stages with group g's matrices F1_g[n3], G[rt k1 + g], F3 = G[rt k2], the
    filter in the Monarch order's frequency g + rt f', and the kernel's output scale
    2^(ex + ef + 6 - log2 rt) applied to the inverse's raw sum."""
    n = 4096 * rt
    f1, big = radix_tables(rt)
    x = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    kt = np.fft.fft(rng.standard_normal(n))  # the filter spectrum (true scale)
    ef = int(np.ceil(np.log2(np.abs(kt).max())))
    ks = kt * 2.0**-ef  # stored: max |K| <= 1, exponent ef
    ex = 3  # any input exponent: the stages are linear
    xs = x * 2.0**-ex
    q = np.arange(rt)
    z = np.einsum("gq,qm->gm", w(rt, np.outer(q, q)), xs.reshape(rt, 4096))  # Z_g[m']
    f = D[:, None, None] + 16 * D[None, :, None] + 256 * D[None, None, :]  # [k1, k2, k3]
    out = np.zeros((rt, 4096), complex)
    for g in range(rt):
        xm = z[g].reshape(16, 16, 16)  # [n1, n2, n3]
        y1 = np.einsum("ckn,nbc->kbc", f1[g], xm)
        y2 = np.einsum("akn,anc->akc", big[rt * D + g], y1)
        xf = np.einsum("bkn,abn->abk", big[rt * D], y2)
        assert np.allclose(xf * 64, np.fft.fft(xs)[g + rt * f], atol=1e-8)
        zz = xf * ks[g + rt * f] * 2.0**-6
        v3 = np.einsum("bkn,abk->abn", big[rt * D].conj(), zz)
        v2 = np.einsum("akn,akc->anc", big[rt * D + g].conj(), v3)
        out[g] = np.einsum("ckn,kbc->nbc", f1[g].conj(), v2).reshape(-1)
    y = np.einsum("qg,gm->qm", w(rt, -np.outer(q, q)), out).reshape(-1)
    y *= 2.0 ** (ex + ef + 6 - int(np.log2(rt)))
    ref = np.fft.ifft(np.fft.fft(x) * kt)
    assert np.allclose(y, ref, atol=1e-8 * np.abs(ref).max())


def test_dft4_matches_numpy(rng):
    """dft4<false> / dft4<true> as written in the kernel (w4 = -i forward, i inverse)."""
    z = rng.standard_normal(4) + 1j * rng.standard_normal(4)
    for inv in (False, True):
        a0, a1, b0, b1 = z[0] + z[2], z[0] - z[2], z[1] + z[3], z[1] - z[3]
        c1 = 1j * b1 if inv else -1j * b1
        got = np.array([a0 + b0, a1 + c1, a0 - b0, a1 - c1])
        want = np.fft.ifft(z) * 4 if inv else np.fft.fft(z)
        assert np.allclose(got, want)


@pytest.mark.parametrize(
    ("n", "kw", "ok"),
    [
        (4096, {"B": 4, "L": 4096, "out_offset": 0, "Lout": 4096}, True),
        (4096, {"B": 4, "L": 2048, "out_offset": 0, "Lout": 2048}, True),
        (4096, {"B": 2, "L": 4096, "out_offset": 0, "Lout": 4096}, False),  # B % 4
        (8192, {"B": 2, "L": 8192, "out_offset": 0, "Lout": 8192}, True),
        (8192, {"B": 3, "L": 8192, "out_offset": 0, "Lout": 8192}, False),  # odd B
        (16384, {"B": 2, "L": 16384, "out_offset": 0, "Lout": 16384}, True),
        (16384, {"B": 2, "L": 8192, "out_offset": 8192, "Lout": 8192}, True),
        (16384, {"B": 5, "L": 16384, "out_offset": 0, "Lout": 16384}, False),  # odd B
        (4096, {"B": 4, "L": 4093, "out_offset": 0, "Lout": 4093}, False),  # L % 8
        (4096, {"B": 4, "L": 4096, "out_offset": 4, "Lout": 4088}, False),  # offset % 8
        (256, {"B": 2, "L": 256, "out_offset": 0, "Lout": 256}, False),  # 256: causal only
        (256, {"B": 2, "L": 128, "out_offset": 0, "Lout": 128}, True),
        (256, {"B": 2, "L": 128, "out_offset": 8, "Lout": 120}, True),
        (256, {"B": 3, "L": 128, "out_offset": 0, "Lout": 128}, False),  # odd B
        (256, {"B": 2, "L": 120, "out_offset": 0, "Lout": 122}, False),  # Lout % 8
        (2048, {"B": 4, "L": 2048, "out_offset": 0, "Lout": 2048}, False),  # B % 8 (G = 2)
        (2048, {"B": 8, "L": 2048, "out_offset": 0, "Lout": 2048}, True),
        (2048, {"B": 8, "L": 1000, "out_offset": 8, "Lout": 992}, True),
        (2048, {"B": 8, "L": 1020, "out_offset": 0, "Lout": 1020}, False),  # L % 8
        (1024, {"B": 16, "L": 1016, "out_offset": 8, "Lout": 1008}, True),
        (1024, {"B": 16, "L": 1020, "out_offset": 0, "Lout": 1020}, False),  # L % 8
        (1024, {"B": 8, "L": 1024, "out_offset": 0, "Lout": 1024}, False),  # B % 16 (G = 4)
        (512, {"B": 32, "L": 504, "out_offset": 8, "Lout": 496}, True),
        (512, {"B": 32, "L": 512, "out_offset": 4, "Lout": 500}, False),  # offset % 8
        (512, {"B": 16, "L": 512, "out_offset": 0, "Lout": 512}, False),  # B % 32 (G = 8)
        (32768, {"B": 4, "L": 32768, "out_offset": 0, "Lout": 32768}, False),  # no such size
    ],
)
def test_eligibility(n, kw, ok):
    strides = (kw["L"] * 3, kw["L"], kw["Lout"] * 3, kw["Lout"])
    args = dict(kw, BI=kw["B"], strides=strides)
    assert twiddle_fold.eligible(n, **args) is ok
    # frequency-sparse calls: 4096 any mask; 8192 where the SPARSE variant fits or a group is
    # dead; 16384 where a group is dead
    quarter = tuple(r % 4 == 0 for r in range(16))  # 8192: 8 live k1 in group 0, none in 1
    half = tuple(r % 2 == 0 for r in range(16))  # 8192: 16 live k1 in group 0, group 1 dead
    no_dead = tuple(r != 3 for r in range(16))  # 8192: 15 classes, both groups live
    # (the interleaved sizes: any mask, the dense kernel on the masked spectrum)
    fits = ok and n in (*twiddle_fold.SPARSE_SIZES, 16384, *twiddle_fold.IL_SIZES)
    assert twiddle_fold.eligible(n, freq_mask=quarter, **args) is fits
    assert twiddle_fold.eligible(n, freq_mask=half, **args) is fits
    assert twiddle_fold.eligible(n, freq_mask=no_dead, **args) is (
        ok and (n == 4096 or n in twiddle_fold.IL_SIZES)
    )
    # two-level batches (BI < B, e.g. the partial path's windows): TWO at 8192 / 16384, dense
    assert twiddle_fold.eligible(n, **dict(args, BI=1)) is (ok and n in twiddle_fold.TWO_SIZES)
    assert not twiddle_fold.eligible(n, **dict(args, BI=1, freq_mask=half))
    # gated calls: the Monarch kernel at 512 (measured faster there)
    assert twiddle_fold.eligible(n, **dict(args, gated=True)) is (ok and n != 512)
    # a gate's stride that is not granular (strides of u, y, pre, post)
    assert not twiddle_fold.eligible(n, **dict(args, strides=(*strides, 12, 1)))


def test_names_and_shared_memory():
    names = twiddle_fold.all_name_expressions()
    # 512 / 1024 / 2048: dense; 4096: dense, SPARSE; 8192: dense, SPARSE, GSKIP, TWO; 16384:
    # dense, GSKIP, TWO (16 each)
    assert len(names) == len(set(names)) == 8 + 16 * (3 + 2 + 4 + 3)
    assert names[:2] == [
        "pair_fold_fwd<0, false, false, true, 12, 2>",
        "pair_fold_fwd<0, false, true, true, 12, 2>",
    ]
    assert names[8:10] == [
        "twiddle_fold_fwd<512, 0, false, false, false, 0>",
        "twiddle_fold_fwd<512, 0, false, false, true, 0>",
    ]
    assert names[56:60] == [
        "twiddle_fold_fwd<4096, 0, false, false, false, 0>",
        "twiddle_fold_fwd<4096, 0, false, false, false, 1>",
        "twiddle_fold_fwd<4096, 0, false, false, true, 0>",
        "twiddle_fold_fwd<4096, 0, false, false, true, 1>",
    ]
    for n in twiddle_fold.IL_SIZES:  # the 4096 kernel's block
        assert twiddle_fold.smem(n) == twiddle_fold.smem(4096)
        assert twiddle_fold.threads(n) == twiddle_fold.threads(4096)
        with pytest.raises(ValueError, match="frequency-sparse"):
            twiddle_fold.name_expression(n, "float16", sparse=True)
    assert twiddle_fold.name_expression(8192, "bfloat16", True, False, True) == (
        "twiddle_fold_fwd<8192, 1, true, false, true, 0>"
    )
    for n in (4096, 8192):
        for sparse in (False, True):  # two blocks per SM on sm_90
            assert twiddle_fold.smem(n, sparse) <= 227 * 1024 // 2 - 1024
        assert twiddle_fold.smem(n, True) == twiddle_fold.smem(n) + 80
    assert twiddle_fold.smem(8192) == 4 * 8960 + 64 * 1120 + 64  # in place: 4 planes, 64 matrices
    with pytest.raises(ValueError, match="frequency-sparse"):
        twiddle_fold.name_expression(256, "float16", half=True, sparse=True)
    assert twiddle_fold.smem(256) <= 227 * 1024 - 1024  # one block per SM
    # 16384: 8 planes, 128 matrices, 16 warps' maxima (TwiddleFold<16384>::SMEM), one block
    assert twiddle_fold.smem(16384) == 8 * 8960 + 128 * 1120 + 256 <= 227 * 1024 - 1024
    assert twiddle_fold.threads(16384) == 512
    with pytest.raises(ValueError, match="frequency-sparse"):
        twiddle_fold.name_expression(16384, "float16", sparse=True)
    assert twiddle_fold.name_expression(16384, "float16", gskip=True).endswith(", 2>")
    assert twiddle_fold.name_expression(8192, "float16", two=True).endswith(", 3>")
    with pytest.raises(ValueError, match="two-level"):
        twiddle_fold.name_expression(4096, "float16", two=True)
    with pytest.raises(ValueError, match="group-skipping"):
        twiddle_fold.name_expression(4096, "float16", gskip=True)
    with pytest.raises(ValueError, match="FFT size"):
        twiddle_fold.name_expression(32768, "float16")


def test_pair_fold_filter_positions():
    """pair_fold.cuh's stage_mid reads f = c + 16 d (rows d = g, g + 8 of lane (g, t)) at
    32 (c & 7) + 2 (c >> 3) + 8 (g >> 1) + (g & 1) (+ 4 for d = g + 8)."""
    freq = fused.freq_index(256)
    c, g = np.meshgrid(D, np.arange(8), indexing="ij")
    w = 32 * (c & 7) + 2 * (c >> 3) + 8 * (g >> 1) + (g & 1)
    assert np.array_equal(freq[w], c + 16 * g)
    assert np.array_equal(freq[w + 4], c + 16 * (g + 8))


def test_pair_fold_units():
    """One block per PAIR_WARPS warp tiles of PAIR_TILE pairs (the last ones partial)."""
    per_block = twiddle_fold.PAIR_TILE * twiddle_fold.PAIR_WARPS
    assert twiddle_fold.units(2, 1, 256) == 1
    assert twiddle_fold.units(2 * per_block, 1, 256) == 1
    assert twiddle_fold.units(2 * per_block + 2, 1, 256) == 2
    assert twiddle_fold.units(64, 768, 256) == -(-32 * 768 // per_block)


@pytest.mark.parametrize(
    ("n", "L", "out_offset", "Lout", "half"),
    [
        (4096, 2048, 0, 2048, True),  # causal
        (4096, 2048, 8, 2040, True),
        (4096, 2048, 0, 4096, False),  # full linear output
        (4096, 2056, 0, 2048, False),
        (8192, 4096, 0, 4096, True),
        (8192, 8192, 0, 64, False),
    ],
)
def test_half_variant(n, L, out_offset, Lout, half):
    assert twiddle_fold.half(n, L, out_offset, Lout) is half


@pytest.mark.parametrize("n", [4096, 8192])
def test_live_word_matches_filter_layout(n):
    """Bit 16 g + k1 of live_word is set exactly when the filter spectrum's tile of group g and
    first digit k1 (the 256 values at (16 g + k1) * 256 of filter_spectrum's order, the tile
    load_k reads; 4096 has one tile set for both groups) holds kept frequencies; every
    frequency of a tile has the same class f % 16."""
    freq = fused.freq_index(n)
    rng = np.random.default_rng(7)
    masks = [tuple(r % f == 0 for r in range(16)) for f in (2, 4, 8, 16)]
    for _ in range(6):  # random Hermitian-symmetric masks
        half = rng.random(9) < 0.5
        half[0] = True
        masks.append(tuple(bool(half[min(r, 16 - r)]) for r in range(16)))
    for mask in masks:
        word = twiddle_fold.live_word(n, mask) & 0xFFFFFFFF
        for g in range(2):
            for k1 in range(16):
                tile = (16 * g if n == 8192 else 0) + k1
                cls = np.unique(freq[tile * 256 : (tile + 1) * 256] % 16)
                assert len(cls) == 1
                assert bool(word >> (16 * g + k1) & 1) == mask[int(cls[0])]
    with pytest.raises(ValueError, match="frequency-sparse"):
        twiddle_fold.live_word(256, masks[0])


def test_dead_groups():
    """8192's groups are the even / odd frequencies: a mask keeping one parity only kills the
    other group; 16384's are f % 4; 4096 never skips (0)."""
    keep = lambda f: tuple(r % f == 0 for r in range(16))
    odd = tuple(r % 2 == 1 for r in range(16))
    assert twiddle_fold.dead_groups(8192, keep(2)) == 0b10
    assert twiddle_fold.dead_groups(8192, keep(4)) == 0b10
    assert twiddle_fold.dead_groups(8192, odd) == 0b01
    assert twiddle_fold.dead_groups(8192, tuple(r != 3 for r in range(16))) == 0
    assert twiddle_fold.dead_groups(8192, None) == 0
    assert twiddle_fold.dead_groups(4096, keep(2)) == 0
    assert twiddle_fold.dead_groups(16384, keep(2)) == 0b1010  # f % 4 in {0, 2}
    assert twiddle_fold.dead_groups(16384, keep(4)) == 0b1110
    # eligible: 8192 takes a mask the SPARSE variant does not fit when it kills a group
    args = {"B": 2, "BI": 2, "L": 8192, "out_offset": 0, "Lout": 8192, "strides": (8192,) * 4}
    assert not twiddle_fold.sparse_fits(8192, odd)
    assert twiddle_fold.eligible(8192, freq_mask=odd, **args)
    assert not twiddle_fold.eligible(8192, freq_mask=tuple(r != 3 for r in range(16)), **args)


def test_sparse_fits():
    """At most 8 live k1 per group: 4096 at most 8 kept classes; 8192 at most 4 of each parity."""

    def mask(classes):
        return tuple(r in classes for r in range(16))

    evens, band = mask({0, 2, 4, 6, 8, 10, 12, 14}), mask({0, 1, 15, 2, 14, 3, 13, 8})
    twelve = mask(set(range(16)) - {4, 7, 9, 12})
    assert twiddle_fold.live_counts(4096, evens) == (8, 8)
    assert twiddle_fold.live_counts(8192, evens) == (16, 0)
    assert twiddle_fold.live_counts(8192, band) == (8, 8)
    assert twiddle_fold.sparse_fits(4096, evens) and twiddle_fold.sparse_fits(4096, band)
    assert not twiddle_fold.sparse_fits(4096, twelve)
    assert not twiddle_fold.sparse_fits(8192, evens) and twiddle_fold.sparse_fits(8192, band)
    assert not twiddle_fold.use_sparse(4096, None) and twiddle_fold.use_sparse(4096, band)


# Interleaved sizes (TwiddleFold::IL, n = 512, 1024, 2048 on the 4096-point core, G = 4096 / n).
def spec_pos(n: int, f):
    """TwiddleFold::spec_pos: position of frequency f mod n in the FFT-n spectrum order."""
    lr = {512: 1, 1024: 2, 2048: 3}[n]
    f = np.asarray(f) & (n - 1)
    q, m = f & ((1 << lr) - 1), f >> lr
    row, col = m & 15, m >> 4
    return (
        256 * q
        + 8 * (4 * (row & 7) + ((col & 7) >> 1))
        + 4 * (col >> 3)
        + 2 * (row >> 3)
        + (col & 1)
    )


@pytest.mark.parametrize("n", twiddle_fold.IL_SIZES)
def test_interleaved_filter_gather(n):
    """load_k (IL): the value the 4096-point middle stage needs at frequency f is K[f mod n] (the
    spectrum of the filter upsampled by G), read from the FFT-n spectrum; the lane / warp bits
    of f and its compile-time bits map separately (spec_pos is a bit permutation)."""
    freq_n = fused.freq_index(n)
    assert np.array_equal(freq_n[spec_pos(n, np.arange(n))], np.arange(n))
    warp, x, ch, lane, c = np.meshgrid(
        np.arange(8), np.arange(2), np.arange(2), np.arange(32), np.arange(4), indexing="ij"
    )
    g, t = lane >> 2, lane & 3
    j = warp + 8 * x
    f = (8 * ch + 2 * t + (c & 1)) + 16 * j + 256 * (8 * (c >> 1) + g)  # the 4096 kernel's
    tile = 8 * ch + 2 * t + (c & 1)
    pos4096 = tile * 256 + (4 * (j & 7) + (g >> 1)) * 8 + 4 * (c >> 1) + 2 * (j >> 3) + (g & 1)
    assert np.array_equal(fused.freq_index(4096)[pos4096], f)
    base = spec_pos(n, 2 * t + 16 * warp + 256 * g)
    const = spec_pos(n, (c & 1) + 8 * ch + 128 * x + 2048 * (c >> 1))
    assert np.array_equal(freq_n[base + const], f % n)


@pytest.mark.parametrize("n", twiddle_fold.IL_SIZES)
@pytest.mark.parametrize("half", [False, True])
def test_interleaved_pieces_and_convolution(rng, n, half):
    """The IL copies (issue_load: thread tid, round r -> sequence p, chunk q of 8 values, its
    G / 2 pieces at staging rows G / 2 q + i, slots C p ..), the transposition's row slot_n3
    and the store's chunks (lane -> sequence, chunk of the block), mirrored: the
    4096-point sequence the kernel transforms is z[G m + p] = x_p[m], and its circular
    convolution with K[f mod n] gives each x_p's n-point one, written back to x_p's positions."""
    G, C, threads = 4096 // n, 16 // (4096 // n), 256
    rows = 128 if half else 256
    qn = rows * C // 8  # chunks per sequence
    x = rng.standard_normal((G, n))
    if half:
        x[:, n // 2 :] = 0
    staging = np.full((256, 16), np.nan)
    seen = set()
    for tid in range(threads):
        for r in range(1 if half else 2):  # live_chunk
            ci = tid + r * threads
            p, q = ci // qn, ci % qn
            assert (p, q) not in seen
            seen.add((p, q))
            for i in range(G // 2):
                rs = G // 2 * q + i
                staging[rs, C * p : C * p + C] = x[p, 8 * q + C * i : 8 * q + C * i + C]
    assert len(seen) == G * qn
    staging[rows:] = 0  # HALF: never copied; the kernel's first stage skips rows n1 >= 8
    slot_n3 = lambda s: (s % C) * G + s // C
    z = np.empty(4096)
    for rs in range(256):
        for s in range(16):
            z[16 * rs + slot_n3(s)] = staging[rs, s]
    assert np.array_equal(z.reshape(-1, G).T, x)  # z[G m + p] = x_p[m]
    k = rng.standard_normal(n)
    kg = np.fft.fft(k)[np.arange(4096) % n]
    yz = np.fft.ifft(np.fft.fft(z) * kg).real
    nat = np.empty((256, 16))  # the store's transposition (work row slot_n3(s) -> slot s)
    for rs in range(256):
        for s in range(16):
            nat[rs, s] = yz[16 * rs + slot_n3(s)]
    y = np.full((G, n), np.nan)
    qb = 32 // G
    for n1 in range(16):  # block (wp, n1): one chunk of 8 values per lane
        for lane in range(32):
            p, q = lane // qb, lane % qb
            t = 16 * C * n1 + 8 * q
            assert np.isnan(y[p, t : t + 8]).all()
            y[p, t : t + 8] = np.concatenate(
                [nat[16 * n1 + G // 2 * q + i, C * p : C * p + C] for i in range(G // 2)]
            )
    ref = np.fft.ifft(np.fft.fft(x, axis=-1) * np.fft.fft(k)[None], axis=-1).real
    assert np.allclose(y, ref, atol=1e-9)


@pytest.mark.parametrize("n", twiddle_fold.IL_SIZES)
def test_interleaved_backward_alias_sum(rng, n):
    """FoldBwd (IL): conj(Z_u) Z_dy of the interleaved 4096-point rows, summed over the G aliases
    f' + n j, is G sum_p conj(U_p) D_p[f'] (the cross-phase terms cancel); write_sums adds the
    aliases (slot c + 2: bit 11; lane xor 16, 8: bits 10, 9) and writes each f' < n once at
    spec_pos(f'), times 1 / G: monarch_bwd's acc row of FFT n."""
    G = 4096 // n
    xu = rng.standard_normal((G, n)) + 1j * rng.standard_normal((G, n))  # a pair per sequence
    xd = rng.standard_normal((G, n)) + 1j * rng.standard_normal((G, n))
    zu, zd = xu.T.reshape(-1), xd.T.reshape(-1)  # z[G m + p] = x_p[m]
    prod = np.conj(np.fft.fft(zu)) * np.fft.fft(zd)  # the kernel's sums, by frequency
    want = (np.conj(np.fft.fft(xu, axis=-1)) * np.fft.fft(xd, axis=-1)).sum(axis=0)
    assert np.allclose(prod.reshape(G, n).sum(axis=0), G * want)
    warp, x, ch, lane, c = np.meshgrid(
        np.arange(8), np.arange(2), np.arange(2), np.arange(32), np.arange(4), indexing="ij"
    )
    g, t = lane >> 2, lane & 3
    f = (8 * ch + 2 * t + (c & 1)) + 16 * (warp + 8 * x) + 256 * (8 * (c >> 1) + g)
    v = prod[f]  # slot (x, ch, c) of lane `lane` in warp `warp`
    s = v[..., :2] + v[..., 2:]  # bit 11
    m = 16
    while m >= 64 // G:  # __shfl_xor_sync over the lane axis
        s = s + s[:, :, :, np.arange(32) ^ m, :]
        m >>= 1
    fw = f[..., :2]
    out = np.full(n, np.nan + 0j)
    written = fw < n
    pos = spec_pos(n, fw[written])
    assert len(set(pos.tolist())) == n  # each f' once
    out[pos] = s[written] / G
    freq_n = fused.freq_index(n)
    assert np.allclose(out, want[freq_n])  # acc row: position i holds frequency freq_index[i]


def test_backward_eligibility_and_names():
    """The folded backward (fold_bwd.cuh): FFT 512 .. 4096, no gates with dk and at most du, or
    both gates with every gradient (offset granular too), B a multiple of 2 G, 16-byte granular
    rows; every other call keeps monarch_bwd."""
    ok = {
        "pregate": False,
        "postgate": False,
        "outs": 1,
        "B": 4,
        "L": 2048,
        "Lout": 2048,
        "strides": (3 * 2048, 2048, 3 * 2048, 2048, 3 * 2048, 2048),
    }
    assert twiddle_fold.bwd_eligible(4096, **ok)
    assert twiddle_fold.bwd_eligible(4096, **dict(ok, outs=0, L=4096, Lout=1000))
    assert not twiddle_fold.bwd_eligible(16384, **ok)  # size
    assert not twiddle_fold.bwd_eligible(4096, **dict(ok, pregate=True))  # one gate
    assert not twiddle_fold.bwd_eligible(4096, **dict(ok, postgate=True))
    assert not twiddle_fold.bwd_eligible(4096, **dict(ok, outs=2))  # dpregate without gates
    both = dict(ok, pregate=True, postgate=True, outs=7)
    assert twiddle_fold.bwd_eligible(4096, **both)  # the Hyena form, every gradient
    assert twiddle_fold.bwd_eligible(4096, **dict(both, out_offset=992))
    assert not twiddle_fold.bwd_eligible(4096, **dict(both, out_offset=499))  # offset % 8
    assert not twiddle_fold.bwd_eligible(4096, **dict(both, outs=3))  # not every gradient
    modes = [twiddle_fold.bwd_mode(*a) for a in ((0, 0, 0), (0, 0, 1), (1, 1, 7), (1, 0, 7))]
    assert modes == [0, 1, 2, None]
    assert twiddle_fold.bwd_half(4096, 2048, 0, 2048, 2)
    assert not twiddle_fold.bwd_half(4096, 2048, 8, 2048, 2)  # the forward's window too
    assert twiddle_fold.bwd_half(4096, 2048, 8, 2048, 1)
    assert not twiddle_fold.bwd_eligible(4096, **dict(ok, B=5))  # odd B
    assert not twiddle_fold.bwd_eligible(4096, **dict(ok, L=2047))  # L % 8
    assert not twiddle_fold.bwd_eligible(4096, **dict(ok, strides=(3 * 2048, 2052)))  # stride % 8
    assert not twiddle_fold.bwd_eligible(256, **dict(ok, L=128, Lout=128))  # size
    small = dict(ok, L=512, Lout=512)
    for n, grain in ((512, 16), (1024, 8), (2048, 4)):  # a unit: a pair of G sequences per side
        assert twiddle_fold.bwd_grain(n) == grain
        assert twiddle_fold.bwd_eligible(n, **dict(small, B=grain))
        assert twiddle_fold.bwd_eligible(n, **dict(small, B=3 * grain))
        assert not twiddle_fold.bwd_eligible(n, **dict(small, B=grain + 2))
    assert twiddle_fold.bwd_half(1024, 512, 0, 512, 2)
    assert not twiddle_fold.bwd_half(1024, 520, 0, 512, 0)
    names = twiddle_fold.all_bwd_name_expressions()
    gated = twiddle_fold.BWD_GATED_SIZES
    assert len(names) == len(set(names)) == 12 * len(gated) + 8 * (len(twiddle_fold.BWD_SIZES) - len(gated))
    assert twiddle_fold.bwd_eligible(8192, **dict(ok, L=4096, Lout=4096))  # no gates
    assert not twiddle_fold.bwd_eligible(8192, **dict(both, L=4096, Lout=4096))  # MODE 2: <= 4096
    with pytest.raises(ValueError, match="mode must be one of"):
        twiddle_fold.bwd_name_expression(8192, "float16", False, 2)
    assert (
        twiddle_fold.bwd_name_expression(1024, "bfloat16", True, 2)
        == "twiddle_fold_bwd<1024, 1, true, 2>"
    )
    with pytest.raises(ValueError, match="n must be one of"):
        twiddle_fold.bwd_name_expression(16384, "float16", False, 0)
    # two blocks per SM: work, table, maxima, the fp32 sums
    assert twiddle_fold.bwd_smem(4096) == 4 * 8960 + 32 * 1120 + 64 + 4096 * 8 <= 227 * 1024 // 2 - 1024
    # 8192, one block per SM: both sides' 8 planes, 64 matrices, two sides' maxima, the sums
    assert twiddle_fold.bwd_smem(8192) == 8 * 8960 + 64 * 1120 + 128 + 8192 * 8 <= 227 * 1024
