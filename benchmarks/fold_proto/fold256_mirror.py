"""NumPy mirror of a planned twiddle-folded FFT-256 convolution (not built; see fold256.md).

Below 4096 one sequence has no third digit for the folded tiles, so the MMA columns are 8
pairs of sequences instead (any pairs, any channels: the filter is applied per column). Run it
as a script: it checks that the stages compose to the circular convolution, that the planned
shared-memory layouts are injective and conflict-free for every ldmatrix / stmatrix row set
the kernel would issue, and that the per-lane index maps (ldmatrix / stmatrix / mma fragment
layouts) move every value where the stages expect it.

    python benchmarks/fold_proto/fold256_mirror.py
"""

from __future__ import annotations

import numpy as np

D = np.arange(16)
P = 8  # pairs per tile: the MMA's n = 8 columns


def w(m: int, x) -> np.ndarray:
    return np.exp(-2j * np.pi * np.asarray(x, dtype=np.float64) / m)


# m = 16 a + b (time), f = c + 16 d (frequency)
F1 = np.stack([w(16, np.outer(D, D)) * w(256, D[:, None] * b) for b in D]) / 4  # F1[b](c, a)
F2 = w(16, np.outer(D, D)) / 4  # F2(d, b): no twiddle left


def conv_stages(x: np.ndarray, spec: np.ndarray) -> np.ndarray:
    """x: (P, 256) complex (one pair per column), spec: (P, 256) each column's filter spectrum."""
    xm = x.reshape(P, 16, 16)  # [p, a, b]
    y = np.einsum("bca,pab->bcp", F1, xm)  # F1 at fixed b: contract a
    z = np.einsum("db,bcp->cdp", F2, y)  # F2 at fixed c: contract b -> X[c + 16 d] / 16
    f = D[:, None] + 16 * D[None, :]  # [c, d]
    z = z * spec[:, f].transpose(1, 2, 0)  # per column (pair): its own channel's filter
    wv = np.einsum("db,cdp->bcp", F2.conj(), z)  # I2 = F2^H at fixed c
    v = np.einsum("bca,bcp->pab", F1.conj(), wv)  # I1[b] = F1[b]^H at fixed b
    return v.reshape(P, 256)


# Shared memory, in 16-byte chunks (8 fp16 values):
#   staging (natural order, as cp.async writes it): pair p, plane pl, row a, half h of b
#   work: plane pl, row (b, x) holds the 8 pairs (x = a before F1 / after I1, c in between)
def chunk_staging(p, pl, a, h):
    return (8 * pl + p) * 33 + 2 * a + h


def chunk_work(pl, b, x):
    return pl * 16 * 17 + 17 * b + x


def rows_of_matrix_sets():
    """Every 8-row set one ldmatrix / stmatrix matrix touches, per access of the plan."""
    sets = []
    for pl in range(2):
        for a in D:
            for h in range(2):  # transposition in / out: rows p at fixed (pl, a, h)
                sets.append([chunk_staging(p, pl, a, h) for p in range(8)])
        for b in D:
            for x0 in (0, 8):  # F1 / I1 operands and results: rows x at fixed b
                sets.append([chunk_work(pl, b, x0 + r) for r in range(8)])
        for x in D:
            for b0 in (0, 8):  # transposition targets, F2 / I2: rows b at fixed x
                sets.append([chunk_work(pl, b0 + r, x) for r in range(8)])
    return sets


# Fragment layouts (PTX ISA, m16n8k16 / ldmatrix m8n8): lane = 4 g + t.
def ldsm(mem, addr_of_row, trans: bool):
    """x4 ldmatrix: matrix m's row r comes from address addr_of_row(m, r); returns d[lane][m]
    as two values: (M[g][2t], M[g][2t+1]) or, transposed, (M[2t][g], M[2t+1][g])."""
    out = np.zeros((32, 4, 2), dtype=complex)
    for lane in range(32):
        g, t = lane >> 2, lane & 3
        for m in range(4):
            for e in range(2):
                r, col = (2 * t + e, g) if trans else (g, 2 * t + e)
                out[lane, m, e] = mem[addr_of_row(m, r)][col]
    return out


def stsm(mem, addr_of_row, frag, trans: bool):
    for lane in range(32):
        g, t = lane >> 2, lane & 3
        for m in range(4):
            for e in range(2):
                r, col = (2 * t + e, g) if trans else (g, 2 * t + e)
                mem.setdefault(addr_of_row(m, r), np.zeros(8, dtype=complex))[col] = frag[
                    lane, m, e
                ]


def check_transpose_in(rng) -> None:
    """ldmatrix (staging rows p) then stmatrix.trans (work rows b): value (p, a, b) lands in
    work row (b, a) at column p, for both planes and both b halves (matrix m = (pl, h))."""
    x = rng.standard_normal((2, P, 16, 16))  # [pl, p, a, b]
    mem = {
        chunk_staging(p, pl, a, h): x[pl, p, a, 8 * h : 8 * h + 8].astype(complex)
        for pl in range(2)
        for p in range(P)
        for a in D
        for h in range(2)
    }
    work: dict = {}
    for a in D:
        frag = ldsm(mem, lambda m, r, a=a: chunk_staging(r, m >> 1, a, m & 1), trans=False)
        stsm(work, lambda m, r, a=a: chunk_work(m >> 1, 8 * (m & 1) + r, a), frag, trans=True)
    for pl in range(2):
        for b in D:
            for a in D:
                assert np.allclose(work[chunk_work(pl, b, a)], x[pl, :, a, b])


def check_f1_operand(rng) -> None:
    """F1 at fixed b reads work rows (b, a) with ldmatrix.trans; the four matrices
    (pl, a half) give the B fragments {Re k0-7, Re k8-15, Im k0-7, Im k8-15}: lane (g, t) holds
    k = 2t, 2t+1 (+8) of column n = g, i.e. x[pl][pair g][a][b]."""
    x = rng.standard_normal((2, P, 16, 16))
    work = {
        chunk_work(pl, b, a): x[pl, :, a, b].astype(complex)
        for pl in range(2)
        for b in D
        for a in D
    }
    for b in D:
        order = [(0, 0), (0, 1), (1, 0), (1, 1)]  # (pl, a half) of matrix m
        frag = ldsm(
            work, lambda m, r, b=b, o=order: chunk_work(o[m][0], b, 8 * o[m][1] + r), trans=True
        )
        for lane in range(32):
            g, t = lane >> 2, lane & 3
            for m, (pl, ah) in enumerate(order):
                for e in range(2):
                    assert frag[lane, m, e] == x[pl, g, 8 * ah + 2 * t + e, b]


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((P, 256)) + 1j * rng.standard_normal((P, 256))
    k = rng.standard_normal((P, 256))  # each pair may belong to another channel
    spec = np.fft.fft(k)
    ref = np.fft.ifft(np.fft.fft(x) * spec)
    assert np.allclose(conv_stages(x, spec), ref, atol=1e-12)
    z = np.einsum("db,bcp->cdp", F2, np.einsum("bca,pab->bcp", F1, x.reshape(P, 16, 16)))
    f = D[:, None] + 16 * D[None, :]
    assert np.allclose(z * 16, np.fft.fft(x)[:, f].transpose(1, 2, 0))  # X[c + 16 d] / 16
    chunks = [
        chunk_staging(p, pl, a, h) for p in range(P) for pl in range(2) for a in D for h in range(2)
    ]
    assert len(set(chunks)) == len(chunks), "staging layout not injective"
    works = [chunk_work(pl, b, c) for pl in range(2) for b in D for c in D]
    assert len(set(works)) == len(works), "work layout not injective"
    for rows in rows_of_matrix_sets():
        assert len({r % 8 for r in rows}) == 8, f"bank-group conflict in rows {rows}"
    check_transpose_in(rng)
    check_f1_operand(rng)
    print("fold256 mirror: stages, layouts and fragment maps OK")


if __name__ == "__main__":
    main()
