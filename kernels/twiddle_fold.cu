// cufftconv: FFT-4096, 8192 and 16384 convolutions with every twiddle of the 4096-point transform
// (and of the outer radix-2 / radix-4 step) folded into the tensor-core DFT matrices (sm_90:
// ldmatrix / stmatrix, plain and transposed).
// FFT 256, with 8 pairs of sequences as the tile columns, is pair_fold.cuh (included at the end:
// one NVRTC program for the family; shared pieces in fold_prims.cuh).
//
// The Monarch kernel (monarch_conv.cu) multiplies its tiles by twiddles elementwise in fp32,
// which is most of its instructions. Here a tile is 16 values of the digit a stage contracts
// x 8 values of a digit the stage's twiddle does not depend on, the third digit fixed per tile,
// so the twiddle is a constant diagonal of the tile and folds into its 16x16 matrix:
//   m = 256 n1 + 16 n2 + n3, f = k1 + 16 k2 + 256 k3, w_M = exp(-2 pi i / M):
//   F1[n3] (k1, n1) = w16^(n1 k1) w4096^(n3 k1) / 4   contract n1, columns n2, fixed n3
//   F2[k1] (k2, n2) = w16^(n2 k2) w256^(n2 k1) / 4    contract n2, columns n3, fixed k1
//   F3[k2] (k3, n3) = w16^(n3 k3) w256^(n3 k2) / 4    contract n3, columns k1, fixed k2
// (F2 and F3 are the same 16 matrices.) The inverse runs the conjugate transposes in reverse
// order (transposed ldmatrix of the same table, imaginary part negated). A stage reads its
// tiles with ldmatrix (plain or transposed) and writes them with stmatrix, so every shared-
// memory row holds 16 contiguous values of some digit; F3, the filter and the first inverse
// stage stay in registers. tests/test_twiddle_fold_host.py mirrors these stages in NumPy.
//
// Scaling: the fp32 accumulators are rounded to fp16 between stages. Per pair of sequences,
// 2^-ex brings max |x| into (2^7, 2^8] (fp16 input: in the first stage's epilogue; bf16: as
// the first stage converts its tiles to fp16), so the forward stages (1/4 each) stay below 2^14; the filter spectrum
// (max |K| <= 1, exponent ef, FusedConv.filter_spectrum's layout) is applied with 2^-6, so
// the inverse stages stay below 2^14 too; the output is scaled by 2^(ex + ef + 6).
//
// IL, N = 512 / 1024 / 2048: the 4096-point kernel on G = 4096 / N sequences x_p of one
// channel interleaved, z[G m + p] = x_p[m]; with the spectrum K[f mod N] (the filter upsampled
// by G) its circular convolution is each x_p's N-point one. The interleave is free: a staging
// row holds C = 16 / G values of each sequence and the transposition maps slot C p + i to
// n3 = G i + p (slot_n3); the filter is read from the FFT-N spectrum (spec_pos). B % (4 G) == 0.
// 8192 / 16384 add an outer radix-2 / radix-4 step (see TwiddleFold). HALF (causal: L and
// out_offset + Lout at most N / 2): the upper half of the input is zero and that of the output is dropped, so the
// loads, the input transposition / radix-2 step and the store skip it, and at 4096 the first
// stage reads only the lower half of its contracted digit (n1 < 8) and the last stage writes
// only its rows n1 < 8. Gates: PRE multiplies the staged input by
// the pregate (rounded to the input type, as the Monarch kernel does) before the transposition;
// POST keeps the last stage in fp16 at the working scale and the store applies the output scale
// and the postgate in fp32, rounding once. Launch contract (checked by
// cufftconv.twiddle_fold.eligible): B % 4 == 0 (4096) or B % 2 == 0 (8192, 16384), L, out_offset,
// Lout, the row strides and the pointers (gates included) 16-byte granular, a dense spectrum
// (or, SPARSE, one masked by 16 frequency classes).
// Input positions >= L are zero; outputs are positions [out_offset, out_offset + Lout) of the
// circular result.
#include "fold_prims.cuh"

namespace tf {
// Each thread writes table entries idx = tid, tid + threads, ...: phases reduced exactly mod
// M = 4096 RT. RT = 1: F1[j] (0..15) and F2[j] = F3[j] (16..31). RT > 1 (TwiddleFold::RX, the
// radix-RT step's twiddle w_M^(g m') folded in): F1_g[n3] at 16 g + n3 and G[jj] at 16 RT + jj,
// with F2 of group g = G[RT k1 + g] and F3 = G[RT k2] (see TwiddleFold).
template <int RT>
__device__ __forceinline__ void build_table(unsigned char* tab, int tid, int threads) {
  constexpr int M = 4096 * RT;
  for (int idx = tid; idx < 32 * RT * 256; idx += threads) {
    const int mat = idx >> 8, a = (idx >> 4) & 15, b = idx & 15;
    int p;
    if (mat < 16 * RT) {  // F1_g[j] (k1 = a, n1 = b): w16^(n1 k1) w4096^(j k1) w_M^(256 g n1 + g j)
      const int g = mat >> 4, j = mat & 15;
      p = (256 * RT * a * b + RT * j * a + 256 * g * b + g * j) & (M - 1);
    } else {  // G[jj] (k2 = a, n2 = b): w16^(n2 k2) w_M^(16 n2 jj)
      const int jj = mat - 16 * RT;
      p = (256 * RT * a * b + 16 * b * jj) & (M - 1);
    }
    float s, c;
    sincospif(static_cast<float>(p) / static_cast<float>(M / 2), &s, &c);
    u16* re = reinterpret_cast<u16*>(tab + mat * MAT_BYTES + cofs(0, a, b >> 3)) + (b & 7);
    re[0] = mc::Dt<0>::from(0.25f * c);
    re[MAT_BYTES / 4] = mc::Dt<0>::from(-0.25f * s);
  }
}

// N = 4096: a unit is 2 pairs of one channel, group g = pair g, staged (the next unit's input
// is copied into a staging buffer while this one computes). N = 8192 / 16384: RX, below.
// SPARSE (frequency-sparse masks): `live` bit 16 g + k1 says whether the frequencies of group g
// with first digit k1 are kept (4096: f % 16 = k1, both groups alike; 8192: f % 16 = (2 k1 +
// g) % 16; at most 8 live k1 per group, cufftconv.twiddle_fold.sparse_fits). Their filter
// spectrum is zero, so only the live k1 are computed, kept compact: F1 (transposed: the live
// rows of F1 gathered as the B operand) writes the c-th live k1 to row c, F2 / I2 run the live
// blocks only (each with its k1's matrix), F3 / filter / I3 one column group (the filter
// gathered by k1), and I1 contracts rows 0..7 only (m16n8k8, the padding columns zeroed).
// Compact rows keep the 8 rows of an ldmatrix / stmatrix on distinct bank groups, which the
// live k1 themselves (e.g. 0, 4, 8, 12) would not be. Fixed trip counts matter: with a run-time
// group count the compiler predicated both groups' code (no instructions saved).
//
// RX (N = 8192, 16384: R = 2, 4): a unit is one pair and P = R groups, the sub-transforms of
// the frequencies g + R f' (8192: the even and odd ones). At 16384 the radix-4 step's twiddle
// w16384^(g m'), m' = 256 n1 + 16 n2 + n3, is folded into per-group matrices (build_table<4>):
// w64^(g n1) w16384^(g n3) into F1_g[n3] and w1024^(g n2) into F2 of group g, G[4 k1 + g];
// F3[k2] = G[4 k2]. 128 matrices (140 KB) leave no room for a staging buffer, so the input
// lands in the work planes (natural order) and the radix steps run in place, each warp on its
// own 16-row blocks, which are also the ones its copies fill: the next unit's copies start
// right after the warp's own stores, and its rows are put into L2 (bulk prefetch) a unit ahead.
// One 16-warp block per SM (8192: two 8-warp blocks, 64 matrices).
// MASK: 0 dense; 1 SPARSE (at most 8 live k1 per group, the compact path); 2 GSKIP (RX: whole
// groups dead, see dead()); 3 TWO (RX, dense: a two-level batch, see seq_at()). Each its own
// instantiation: GSKIP's group branches and TWO's offsets cost the dense kernels 4-11 %
// (8192 causal / gated, 16384), measured.
template <int N, int DT, bool PRE, bool POST, bool HALF, int MASK>
struct TwiddleFold {
  static constexpr bool SPARSE = MASK == 1, TWO = MASK == 3;
  // IL (N = 512, 1024, 2048): G = 4096 / N sequences of one channel interleaved (see the top).
  static constexpr int G = N < 4096 ? 4096 / N : 1;
  static constexpr bool IL = G > 1;
  static_assert(G == 1 || G == 2 || G == 4 || G == 8, "FFT size 512 .. 16384");
  static_assert(!IL || MASK == 0, "IL: dense only (a mask is in the spectrum it reads)");
  static constexpr int R = IL ? 1 : N / 4096;
  static constexpr bool RX = R >= 2;
  static constexpr int LOG2R = R == 1 ? 0 : R == 2 ? 1 : 2;
  static constexpr int P = RX ? R : 2, PAIRS = P / R, WARPS = R == 4 ? 16 : 8, THREADS = 32 * WARPS;
  static constexpr int MINB = R == 4 ? 1 : 2;  // blocks per SM (__launch_bounds__)
  static constexpr int ITEMS = 16 / WARPS;
  static constexpr int PG = RX ? 1 : P;  // groups per matrix in F1 / F2 / I2 / I1 (RX: each its own)
  static_assert(R == 1 || R == 2 || R == 4, "FFT size 4096, 8192 or 16384");
  static_assert(!(SPARSE && R == 4), "SPARSE: 4096 / 8192 (the live word holds two groups)");
  static constexpr int WORK = 2 * P * PLANE;  // re, im planes of the unit's groups
  static constexpr int STG = RX ? 0 : WORK;   // staging (RX: the work planes)
  static constexpr int RT = RX ? R : 1;       // the table's radix (build_table<RT>)
  static constexpr int TAB = 32 * RT * MAT_BYTES;
  // 2^-ex brings max |x| into (2^(TOP - 1), 2^TOP]: at most 2^10 after a radix step.
  static constexpr int TOP = R == 1 ? 8 : 10 - LOG2R;
  // Table matrices: F1 of group g (fixed n3 = j), F2 of group g (fixed k1), F3 (fixed k2).
  static __device__ __forceinline__ constexpr int f1_mat(int g, int j) { return RX ? 16 * g + j : j; }
  static __device__ __forceinline__ constexpr int f2_mat(int g, int k1) { return RX ? 16 * R + R * k1 + g : 16 + k1; }
  static __device__ __forceinline__ constexpr int f3_mat(int k2) { return RX ? 16 * R + R * k2 : 16 + k2; }
  // GSKIP (RX dense) with a frequency mask that zeroes whole groups (8192 keep 1/2: the odd
  // frequencies): their F1 / F2 / I2 / I1 are skipped and their output is zero (uniform
  // branches). The middle stage skips them at 8192 only: at 16384 its four groups' branches
  // spilled registers; there it runs on the dead groups' radix-step values against their
  // zero spectrum, and nothing reads the result.
  static constexpr bool GSKIP = MASK == 2, MIDSKIP = GSKIP && R == 2;
  static_assert(MASK >= 0 && MASK <= 3 && (!GSKIP || RX) && (!TWO || RX), "MASK: 0, 1, 2 / 3 at 8192 / 16384");
  __device__ __forceinline__ bool dead(int g) const { return GSKIP && ((live >> g) & 1u); }
  // SPARSE lists (bytes): live k1 of group g at LST_K + 16 g (padded with the last one), the
  // live blocks at LST_JOB (as ci | g << 4: block ci of group g holds k1 = list[ci]), counts
  // at LST_N (g 0, g 1, live blocks).
  static constexpr int LST_K = 0, LST_JOB = 32, LST_N = 64, LST = SPARSE ? 80 : 0;
  static constexpr int SMEM = WORK + STG + TAB + WARPS * P * 4 + LST;  // work, staging, table, maxima, lists
  static constexpr int JOBS = 2 * P * 16 / WARPS;                      // 16x16 blocks per warp in a transpose
  static_assert(WARPS == 8 || RX, "HALF: job x of a warp has n1 < 8 exactly when x is even");
  static constexpr int RR = 4096 * 2 / 16 / THREADS;  // 16-byte chunks per thread and plane
  // IL: a staging row (32 bytes) holds C = 16 / G values of each of the G sequences (a piece
  // of WDS words); a 16-byte chunk of a sequence is G / 2 pieces in consecutive rows.
  static constexpr int C = 16 / G, WDS = C / 2;
  // HALF: which staged chunks / 16x16 blocks hold positions below N / 2.
  static __device__ __forceinline__ constexpr bool live_chunk(int wp, int r) {
    return !HALF || (R == 1 ? r < RR / 2 : wp < R);
  }
  static __device__ __forceinline__ constexpr bool live_block(int x) { return !HALF || R >= 2 || x % 2 == 0; }

  const u16* __restrict__ u;
  const u16* __restrict__ pre;
  const u32* __restrict__ kf;  // FusedConv.filter_spectrum: (H, n + 4) complex fp16 words
  u16* __restrict__ y;
  const u16* __restrict__ post;
  long long u_sb, u_sh, pre_sb, pre_sh, y_sb, y_sh, post_sb, post_sh;
  long long u_so, pre_so, y_so, post_so;  // TWO: the outer strides of the two-level batch
  int B, H, L, out_offset, Lout, BI;
  u32 live;  // SPARSE: the live word; GSKIP: bit g set when group g's spectrum is all zero
  u32 work, staging, tab, red, lst;  // shared addresses (lst: SPARSE lists)
  int lane, warp, tid, mi, i8;

  // A 16x16 block (row a = n1 of a plane) as four 8x8 ldmatrix / stmatrix tiles: this lane's row
  // address in natural order (rows n2, chunks of n3) and in the work layout (rows n3, chunks
  // of n2); matrix mi = lane >> 3 is (n2 half mi & 1, n3 half mi >> 1) in both.
  __device__ __forceinline__ u32 natural_row(int n1) const { return cofs(n1, 8 * (mi & 1) + i8, mi >> 1); }
  __device__ __forceinline__ u32 work_row(int n1) const { return cofs(n1, 8 * (mi >> 1) + i8, mi & 1); }
  // IL: work_row with the staging slot's digit n3 (slot_n3): the transpositions' other side.
  __device__ __forceinline__ u32 il_row(int n1) const { return cofs(n1, slot_n3(8 * (mi >> 1) + i8), mi & 1); }

  // f(wp, n1) for each of this warp's JOBS 16x16 blocks (plane wp, rows a = n1).
  template <class F>
  __device__ __forceinline__ void each_block(F&& f) const {
#pragma unroll
    for (int x = 0; x < JOBS; ++x)
      if (live_block(x)) f(x * WARPS / 16, (warp + WARPS * x) & 15);
  }

  // The unit's pairs: sequences b0 .. b0 + 2 PAIRS - 1 of channel h (IL: 2 PAIRS G sequences,
  // plane wp holding b0 + G wp .. b0 + G wp + G - 1).
  __device__ __forceinline__ void unit_rows(int unit, int& h, int& b0) const {
    const int pi = unit * PAIRS, bp2 = (B / G) >> 1;
    h = pi / bp2;
    b0 = 2 * G * (pi - h * bp2);
  }
  // Staging / work plane sp = 2 g + pl: sequence b0 + seq_of(sp), positions from pos_of(sp).
  static __device__ __forceinline__ constexpr int seq_of(int sp) { return R == 1 ? sp : (sp & 1); }
  static __device__ __forceinline__ constexpr int pos_of(int sp) { return R == 1 ? 0 : (sp >> 1) * 4096; }

  // Chunk r of staging plane wp that this thread copies (issue_load) and then reads back
  // (gate_in, stage_max): its first position and its shared address (natural order).
  __device__ __forceinline__ int chunk_pos(int wp, int r) const { return pos_of(wp) + 8 * (tid + r * THREADS); }
  __device__ __forceinline__ u32 chunk_at(int wp, int r) const {
    const int ci = tid + r * THREADS, rs = ci >> 1;  // rs = 16 n1 + n2, ci & 1: n3 half
    return staging + wp * PLANE + cofs(rs >> 4, rs & 15, ci & 1);
  }
  // IL: chunk r of plane wp that this thread copies, gates and reads back: positions 8 q ..
  // 8 q + 7 of sequence b0 + G wp + p, whose piece i (C values) sits at slots C p .. of
  // staging row G / 2 q + i. Consecutive threads take consecutive chunks of one sequence
  // (contiguous global memory); HALF: positions below 2048 / G only (rows below 128).
  static constexpr int QN = (HALF ? 128 : 256) * C / 8;  // chunks per sequence
  __device__ __forceinline__ int il_seq(int r) const { return (tid + r * THREADS) / QN; }
  __device__ __forceinline__ int il_chunk(int r) const { return (tid + r * THREADS) % QN; }
  static __device__ __forceinline__ u32 piece_at(int wp, int rs, int p) {
    return wp * PLANE + cofs(rs >> 4, rs & 15, (C * p) >> 3) + ((4 * WDS * p) & 15);
  }
  // IL: the work row (digit n3) of staging slot s: the transposition puts slot C p + i at n3 =
  // G i + p, so x_p[m] sits at z[G m + p].
  static __device__ __forceinline__ constexpr int slot_n3(int s) { return (s % C) * G + s / C; }
  // IL: chunk r of plane wp from sequence G wq + il_seq(r) of the rows row0 + seq * sb (its
  // positions 8 q .. 8 q + 7, zeros from len on) as its G / 2 pieces.
  __device__ __forceinline__ void copy_il(int wp, int r, const u16* row0, long long sb, int len, int wq) const {
    const int p = il_seq(r), q = il_chunk(r);
    const bool in = 8 * q < len;
    const u16* src = row0 + (G * wq + p) * sb + (in ? 8 * q : 0);
#pragma unroll
    for (int i = 0; i < G / 2; ++i)
      cp_async_words<WDS>(staging + piece_at(wp, G / 2 * q + i, p), src + (in ? C * i : 0), in ? 4 * WDS : 0);
  }
  // IL: the 8 gate values of chunk r (rows as copy_il), zeros from len on.
  __device__ __forceinline__ uint4 gate_il_load(int r, const u16* row0, long long sb, int len, int wq) const {
    const int p = il_seq(r), q = il_chunk(r);
    return 8 * q < len ? __ldg(reinterpret_cast<const uint4*>(row0 + (G * wq + p) * sb + 8 * q))
                       : make_uint4(0u, 0u, 0u, 0u);
  }
  // IL: chunk r of plane wp times its gate values g, rounded to the input type, in place.
  __device__ __forceinline__ void gate_il(int wp, int r, const uint4& g) const {
    const int p = il_seq(r), q = il_chunk(r);
    const u32* gw = reinterpret_cast<const u32*>(&g);
#pragma unroll
    for (int i = 0; i < G / 2; ++i) {
      const u32 a = staging + piece_at(wp, G / 2 * q + i, p);
      Words<WDS> v = lds_words<WDS>(a);
      gate_words<DT>(v, gw + WDS * i);
      sts_words(a, v);
    }
  }
  // This lane's 16 bytes of the natural-order block (wp, n1): chunk q of the block's part of
  // sequence p (IL: gathered from its G / 2 pieces; else p = 0, q = lane).
  __device__ __forceinline__ uint4 out_chunk(int wp, int n1, int p, int q) const {
    uint4 v;
    if constexpr (IL) {
      u32* vw = reinterpret_cast<u32*>(&v);
#pragma unroll
      for (int i = 0; i < G / 2; ++i) {
        const Words<WDS> pc = lds_words<WDS>(work + piece_at(wp, 16 * n1 + G / 2 * q + i, p));
#pragma unroll
        for (int k = 0; k < WDS; ++k) vw[WDS * i + k] = pc.w[k];
      }
    } else {
      v = lds128(work + wp * PLANE + cofs(n1, lane >> 1, lane & 1));
    }
    return v;
  }
  // Element offset of sequence b of the batch axis: TWO, (b / BI, b % BI) of a two-level batch
  // (a pair may straddle two outer rows); else b * sb.
  __device__ __forceinline__ long long seq_at(int b, long long sb, long long so) const {
    if (!TWO) return b * sb;
    const int q = b / BI;
    return q * so + (b - q * BI) * sb;
  }
  // One L2 bulk prefetch per sequence of the unit: the first `count` values of its gate row.
  __device__ __forceinline__ void prefetch_rows(const u16* g, long long sb, long long sh, long long so, int unit,
                                                int count) const {
    if (tid < 2 * PAIRS * G) {
      int h, b0;
      unit_rows(unit, h, b0);
      mc::prefetch_run(g + (TWO ? seq_at(b0 + tid, sb, so) : (b0 + tid) * sb) + h * sh, 2 * count);
    }
  }

  __device__ __forceinline__ void issue_load(int unit) {
    static_assert(RR * THREADS * 16 == 4096 * 2, "whole chunk rounds");
    int h, b0;
    unit_rows(unit, h, b0);
    if constexpr (IL) {
      const u16* row0 = u + b0 * u_sb + h * u_sh;
#pragma unroll
      for (int wp = 0; wp < 2 * P; ++wp)
#pragma unroll
        for (int r = 0; r < RR; ++r) {
          if (live_chunk(wp, r)) copy_il(wp, r, row0, u_sb, L, wp);
        }
      mc::cp_async_commit();
      if (PRE) prefetch_rows(pre, pre_sb, pre_sh, pre_so, unit, min(L, N));  // read by gate_in
      return;
    }
    const u16* row0 = u + (TWO ? seq_at(b0, u_sb, u_so) : b0 * u_sb) + h * u_sh;
    // the pair's second sequence: u_sb further (TWO: maybe in the next outer row)
    const long long s1 = TWO ? seq_at(b0 + 1, u_sb, u_so) - seq_at(b0, u_sb, u_so) : u_sb;
#pragma unroll
    for (int wp = 0; wp < 2 * P; ++wp)
#pragma unroll
      for (int r = 0; r < RR; ++r) {
        if (!live_chunk(wp, r)) continue;
        const int pos = chunk_pos(wp, r);
        const bool in = pos < L;
        const u16* row = row0 + seq_of(wp) * s1;
        mc::cp_async16(chunk_at(wp, r), in ? row + pos : row, in ? 16 : 0);
      }
    mc::cp_async_commit();
    if (PRE) prefetch_rows(pre, pre_sb, pre_sh, pre_so, unit, min(L, N));  // read by gate_in
  }
  // PRE: this thread's own staged chunks (issue_load's) times the pregate, rounded to the input
  // type, in place; positions >= L stay zero.
  __device__ __forceinline__ void gate_in(int unit) {
    int h, b0;
    unit_rows(unit, h, b0);
    const u16* row0 = pre + (TWO ? seq_at(b0, pre_sb, pre_so) : b0 * pre_sb) + h * pre_sh;
    const long long s1 = TWO ? seq_at(b0 + 1, pre_sb, pre_so) - seq_at(b0, pre_sb, pre_so) : pre_sb;
    uint4 g[2 * P][RR];
#pragma unroll
    for (int wp = 0; wp < 2 * P; ++wp)
#pragma unroll
      for (int r = 0; r < RR; ++r) {
        if (!live_chunk(wp, r)) continue;
        if constexpr (IL) {  // chunk il_chunk(r) of sequence b0 + G wp + il_seq(r)
          g[wp][r] = gate_il_load(r, row0, pre_sb, L, wp);
        } else {
          const int pos = chunk_pos(wp, r);
          g[wp][r] = pos < L ? __ldg(reinterpret_cast<const uint4*>(row0 + seq_of(wp) * s1 + pos))
                             : make_uint4(0u, 0u, 0u, 0u);
        }
      }
#pragma unroll
    for (int wp = 0; wp < 2 * P; ++wp)
#pragma unroll
      for (int r = 0; r < RR; ++r) {
        if (!live_chunk(wp, r)) continue;
        if constexpr (IL) {  // its G / 2 pieces
          gate_il(wp, r, g[wp][r]);
        } else {
          const u32 a = chunk_at(wp, r);
          uint4 v = lds128(a);
          mc::gate_chunk<DT>(v, g[wp][r]);
          sts128(a, v);
        }
      }
  }
  // Staging (rows n2 of contiguous n3) -> work (rows n3 of contiguous n2); the largest |x| of
  // each pair goes to red[warp][pair].
  __device__ __forceinline__ void transpose_in() {
    u32 m[P] = {};
    each_block([&](int wp, int n1) {
      u32 d[4];
      ldsm_x4(d, staging + wp * PLANE + natural_row(n1));
      stsm_x4_t(work + wp * PLANE + (IL ? il_row(n1) : work_row(n1)), d);
#pragma unroll
      for (int q = 0; q < 4; ++q) m[wp >> 1] = mc::absmax2(m[wp >> 1], d[q]);
    });
#pragma unroll
    for (int p = 0; p < P; ++p) {
      const u32 v = __reduce_max_sync(0xffffffffu, max(m[p] & 0xffffu, m[p] >> 16));
      if (lane == 0) asm volatile("st.shared.u32 [%0], %1;" ::"r"(red + (warp * P + p) * 4), "r"(v));
    }
  }
  // RX: the largest |x| of the unit's pair over this thread's copied chunks (red[warp][0]).
  __device__ __forceinline__ void stage_max() {
    u32 m = 0;
#pragma unroll
    for (int sp = 0; sp < 2 * P; ++sp)
#pragma unroll
      for (int r = 0; r < RR; ++r) {
        if (!live_chunk(sp, r)) continue;
        const uint4 v = lds128(chunk_at(sp, r));
        m = mc::absmax2(mc::absmax2(mc::absmax2(mc::absmax2(m, v.x), v.y), v.z), v.w);
      }
    const u32 v = __reduce_max_sync(0xffffffffu, max(m & 0xffffu, m >> 16));
    if (lane == 0) asm volatile("st.shared.u32 [%0], %1;" ::"r"(red + warp * P * 4), "r"(v));
  }
  // The tiles of the 2 P planes at this lane's row offset (STAGED: the natural-order input,
  // whose planes 2 q + s of the upper half (q >= R / 2) are zero and not loaded for HALF).
  template <bool STAGED>
  __device__ __forceinline__ void load_planes(u32 (&d)[2 * P][4], u32 base, u32 ofs) const {
#pragma unroll
    for (int sp = 0; sp < 2 * P; ++sp)
      if (!STAGED || live_chunk(sp, 0)) ldsm_x4(d[sp], base + sp * PLANE + ofs);
  }
  // RX: the radix-R DFT of z (INV: conjugate), no twiddle (folded into the tables).
  template <bool INV>
  static __device__ __forceinline__ void dft(mc::cf (&z)[2]) {
    const mc::cf a{z[0].x + z[1].x, z[0].y + z[1].y};
    z[1] = {z[0].x - z[1].x, z[0].y - z[1].y}, z[0] = a;
  }
  template <bool INV>
  static __device__ __forceinline__ void dft(mc::cf (&z)[4]) {
    const mc::cf a0{z[0].x + z[2].x, z[0].y + z[2].y}, a1{z[0].x - z[2].x, z[0].y - z[2].y};
    const mc::cf b0{z[1].x + z[3].x, z[1].y + z[3].y}, b1{z[1].x - z[3].x, z[1].y - z[3].y};
    // w4 b1 = -i b1 (forward) or i b1 (inverse)
    const mc::cf c1 = INV ? mc::cf{-b1.y, b1.x} : mc::cf{b1.y, -b1.x};
    z[0] = {a0.x + b0.x, a0.y + b0.y}, z[2] = {a0.x - b0.x, a0.y - b0.y};
    z[1] = {a1.x + c1.x, a1.y + c1.y}, z[3] = {a1.x - c1.x, a1.y - c1.y};
  }
  // RX: the work planes in natural order (plane 2 q + s: sequence b0 + s, positions 4096 q + m')
  // -> the work layout, in place (this warp's own 16-row blocks), with the radix-R step: group g
  // gets sum_q x_q w_R^(q g) 2^-ex in fp16.
  __device__ __forceinline__ void transpose_rx(int ex) {
    const float s = exp2i(-ex);
#pragma unroll
    for (int x = 0; x < 16 / WARPS; ++x) {
      const int n1 = warp + WARPS * x;
      u32 d[2 * P][4], o[2 * P][4];
      load_planes<true>(d, work, natural_row(n1));
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        float v[2 * P][2];
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          using D = mc::Dt<DT>;
          mc::cf z[R];
#pragma unroll
          for (int c = 0; c < R; ++c) {
            if (live_chunk(2 * c, 0))
              z[c] = {(e ? D::hi(d[2 * c][q]) : D::lo(d[2 * c][q])) * s,
                      (e ? D::hi(d[2 * c + 1][q]) : D::lo(d[2 * c + 1][q])) * s};
            else  // HALF: the upper half is zero
              z[c] = {0.f, 0.f};
          }
          dft<false>(z);
#pragma unroll
          for (int g = 0; g < R; ++g) v[2 * g][e] = z[g].x, v[2 * g + 1][e] = z[g].y;
        }
#pragma unroll
        for (int sp = 0; sp < 2 * P; ++sp) o[sp][q] = mc::pack_h2(v[sp][0], v[sp][1]);
      }
#pragma unroll
      for (int sp = 0; sp < 2 * P; ++sp) stsm_x4_t(work + sp * PLANE + work_row(n1), o[sp]);
    }
  }
  // RX: the inverse radix-R step into natural order in place (this warp's own blocks), then
  // 16-byte stores: y_q = sum_g Z_g w_R^(-q g), times 2^e (two factors); POST: in fp16 times 1/R
  // (the sum of R may exceed the working range) and the store applies R s1 s2 and the gate.
  __device__ __forceinline__ void store_rx(int unit, float s1, float s2) {
#pragma unroll
    for (int x = 0; x < 16 / WARPS; ++x) {
      const int n1 = warp + WARPS * x;
      u32 d[2 * P][4], o[2 * P][4];
      load_planes<false>(d, work, work_row(n1));
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        float v[2 * P][2];
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          mc::cf z[R];
#pragma unroll
          for (int g = 0; g < R; ++g) {
            z[g] = {e ? mc::h2hi(d[2 * g][q]) : mc::h2lo(d[2 * g][q]),
                    e ? mc::h2hi(d[2 * g + 1][q]) : mc::h2lo(d[2 * g + 1][q])};
            if constexpr (GSKIP)  // (its planes hold the forward step's values)
              if (dead(g)) z[g] = {0.f, 0.f};
          }
          dft<true>(z);
#pragma unroll
          for (int c = 0; c < R; ++c) {
            if (POST) {
              v[2 * c][e] = z[c].x * (1.f / R), v[2 * c + 1][e] = z[c].y * (1.f / R);
            } else {
              v[2 * c][e] = z[c].x * s1 * s2, v[2 * c + 1][e] = z[c].y * s1 * s2;
            }
          }
        }
#pragma unroll
        for (int sp = 0; sp < 2 * P; ++sp) o[sp][q] = mc::Dt<POST ? 0 : DT>::pack(v[sp][0], v[sp][1]);
      }
#pragma unroll
      for (int sp = 0; sp < 2 * P; ++sp)  // HALF: the upper half is not stored
        if (live_chunk(sp, 0)) stsm_x4_t(work + sp * PLANE + natural_row(n1), o[sp]);
    }
    __syncwarp();
    store_natural(unit, POST ? R * s1 : s1, s2);
  }
  // Natural-order planes (2 q + s: sequence b0 + s, positions 4096 q + ...) -> y: this warp's
  // 16-row blocks, 16-byte stores of the positions in [out_offset, out_offset + Lout).
  __device__ __forceinline__ void store_natural(int unit, float s1, float s2) {
    int ch, b0;
    unit_rows(unit, ch, b0);
    u16* row0 = y + (TWO ? seq_at(b0, y_sb, y_so) : b0 * y_sb) + ch * y_sh;
    const u16* grow0 = POST ? post + (TWO ? seq_at(b0, post_sb, post_so) : b0 * post_sb) + ch * post_sh : nullptr;
    const long long ys1 = TWO ? seq_at(b0 + 1, y_sb, y_so) - seq_at(b0, y_sb, y_so) : y_sb;
    const long long ps1 = TWO && POST ? seq_at(b0 + 1, post_sb, post_so) - seq_at(b0, post_sb, post_so) : post_sb;
#pragma unroll
    for (int x = 0; x < 16 / WARPS; ++x) {
      const int n1 = warp + WARPS * x;
#pragma unroll
      for (int sp = 0; sp < 2 * P; ++sp) {
        const int t0 = (sp >> 1) * 4096 + 256 * n1 + 8 * lane - out_offset;
        if (live_chunk(sp, 0) && t0 >= 0 && t0 < Lout) {
          uint4 val = lds128(work + sp * PLANE + cofs(n1, lane >> 1, lane & 1));
          if (POST)  // loaded at use: ahead of the loop it spills (128 registers)
            val = finish<DT>(val, __ldg(reinterpret_cast<const uint4*>(grow0 + (sp & 1) * ps1 + t0)), s1, s2);
          __stcs(reinterpret_cast<uint4*>(row0 + (sp & 1) * ys1 + t0), val);
        }
      }
    }
  }
  // Exponent of pair p: 2^-ex brings its largest |x| into (2^7, 2^8] (0 for zero or non-finite).
  __device__ __forceinline__ int pair_exp(int p) const {
    u32 mx = 0;
#pragma unroll
    for (int w = 0; w < WARPS; ++w) {
      u32 v;
      asm volatile("ld.shared.u32 %0, [%1];" : "=r"(v) : "r"(red + (w * P + p) * 4));
      mx = max(mx, v);
    }
    return scale_exp<DT>(mx, TOP);
  }
  // Planes first .. 2 P - 1, this warp's 16x16 blocks: work -> natural order in place.
  __device__ __forceinline__ void to_natural(int first = 0) {
    each_block([&](int wp, int n1) {
      if (wp < first) return;
      u32 d[4];
      ldsm_x4(d, work + wp * PLANE + (IL ? il_row(n1) : work_row(n1)));
      stsm_x4_t(work + wp * PLANE + natural_row(n1), d);
    });
    __syncwarp();
  }
  // Work -> natural order in place (each warp rewrites its own 16x16 blocks), then 16-byte
  // stores of the positions in [out_offset, out_offset + Lout). POST: the work holds fp16 at
  // the working scale; s1 s2 and the postgate are applied here (its loads issued first).
  __device__ __forceinline__ void store(int unit, const float (&s1)[P], const float (&s2)[P]) {
    int ch, b0;
    unit_rows(unit, ch, b0);
    to_natural();
    // job x: this lane's 16 bytes of block (wp, n1) (each_block's): position t of sequence
    // b0 + G wp + p (IL: 32 / G chunks of each of the G sequences, one per lane, gathered from
    // G / 2 pieces; else p = 0, the lane's chunk of the block's 256 positions)
    constexpr int QB = IL ? 32 / G : 32;
    const int p = IL ? lane / QB : 0, q = IL ? lane % QB : lane;
    u16* row0 = y + (b0 + p) * y_sb + ch * y_sh;
    const u16* grow0 = POST ? post + (b0 + p) * post_sb + ch * post_sh : nullptr;
    constexpr int GB = POST ? 4 : JOBS;  // postgate loads in flight at once (8 spill)
    const auto t_of = [&](int x) { return 16 * C * ((warp + WARPS * x) & 15) + 8 * q - out_offset; };
#pragma unroll
    for (int x0 = 0; x0 < JOBS; x0 += GB) {
      uint4 g[GB];
      if (POST) {
#pragma unroll
        for (int x = x0; x < x0 + GB; ++x) {
          if (!live_block(x)) continue;
          const int wp = x * WARPS / 16, t = t_of(x);
          if (t >= 0 && t < Lout) g[x - x0] = __ldg(reinterpret_cast<const uint4*>(grow0 + G * wp * post_sb + t));
        }
      }
#pragma unroll
      for (int x = x0; x < x0 + GB; ++x) {
        if (!live_block(x)) continue;
        const int wp = x * WARPS / 16, n1 = (warp + WARPS * x) & 15, t = t_of(x);
        if (t >= 0 && t < Lout) {
          uint4 v = out_chunk(wp, n1, p, q);
          if (POST) v = finish<DT>(v, g[x - x0], s1[wp >> 1], s2[wp >> 1]);
          __stcs(reinterpret_cast<uint4*>(row0 + G * wp * y_sb + t), v);
        }
      }
    }
  }

  // The groups of item j in batches of PG (RX: one group and its matrix at a time; else all P
  // with one matrix), GSKIP's dead groups skipped: f(first group, the batch's matrix mat_of(pb)).
  template <bool INV, class M, class F>
  __device__ __forceinline__ void each_group(M&& mat_of, F&& f) const {
#pragma unroll
    for (int pb = 0; pb < P; pb += PG) {
      if constexpr (GSKIP)
        if (dead(pb)) continue;
      f(pb, load_mat<INV>(tab, mat_of(pb), lane));
    }
  }
  // F1 / I1: item n3 (fixed b), tiles h = column half (n2); rows a = contracted / output digit.
  // Epilogue scale s[p] per group; I1 also scales by s2[p] (ONE: s[p] is the whole scale) and
  // writes the output type (4096); F1 with bf16 input (4096) converts its tiles to fp16 times
  // s2[p] first. Groups below G0 are skipped (the backward's u side, whose inverse nobody reads).
  template <bool INV, bool ONE = false, int G0 = 0>
  __device__ __forceinline__ void stage_outer(const float (&s)[P], const float (&s2)[P]) {
    constexpr bool CUT = HALF && R == 1;  // (8192: the sub-transforms are full)
    const int pl = mi >> 1, kh = mi & 1;
#pragma unroll
    for (int x = 0; x < ITEMS; ++x) {
      const int j = warp + WARPS * x;
      each_group<INV>([&](int g) { return f1_mat(g, j); }, [&](int pb, const Mat& m) {
        u32 b[PG][2][4];
#pragma unroll
        for (int pp = 0; pp < PG; ++pp)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int p = pb + pp;
            if (p < G0) continue;
            if (CUT && !INV) {  // F1, HALF: rows n1 >= 8 are zero: matrices (Re, n1 < 8), (Im, n1 < 8) only
              u32 d[2];
              ldsm_x2_t(d, work + (2 * p + (mi & 1)) * PLANE + cofs(i8, j, h));
              b[pp][h][0] = d[0], b[pp][h][1] = 0u, b[pp][h][2] = d[1], b[pp][h][3] = 0u;
            } else {
              ldsm_x4_t(b[pp][h], work + (2 * p + pl) * PLANE + cofs(8 * kh + i8, j, h));
            }
          }
#pragma unroll
        for (int pp = 0; pp < PG; ++pp)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int p = pb + pp;
            if (p < G0) continue;
            if (!INV && DT == 1 && R == 1) {  // raw bf16 input: to fp16 times 2^-ex (s2), exact
#pragma unroll
              for (int q = 0; q < 4; ++q) {
                const u32 v = b[pp][h][q];
                b[pp][h][q] = mc::pack_h2(mc::Dt<1>::lo(v) * s2[p], mc::Dt<1>::hi(v) * s2[p]);
              }
            }
            u32 o[4];
            Acc z = cmma<INV>(m, b[pp][h]);
            if (INV && !ONE) {
#pragma unroll
              for (int c = 0; c < 4; ++c) z.r[c] *= s2[p], z.i[c] *= s2[p];
            }
            pack<(INV && R == 1 && !POST) ? DT : 0>(o, z, s[p]);  // (else fp16: radix step / postgate)
            if (CUT && INV)  // I1, HALF: only the output rows n1 < 8 are kept
              stsm_x2(work + (2 * p + (mi & 1)) * PLANE + cofs(i8, j, h), o[0], o[2]);
            else
              stsm_x4(work + (2 * p + pl) * PLANE + cofs(8 * kh + i8, j, h), o);
          }
      });
    }
  }
  // F2 (INV false): item k1 (fixed a); tiles nh = column half (n3); read rows n3 (contiguous
  // n2), write rows k2 (contiguous n3). I2: read rows k2 transposed, write rows n3 transposed.
  // Groups below G0 are skipped (as stage_outer).
  template <bool INV, int G0 = 0>
  __device__ __forceinline__ void stage_second() {
    const int pl = mi >> 1;
#pragma unroll
    for (int x = 0; x < ITEMS; ++x) {
      const int j = warp + WARPS * x;
      each_group<INV>([&](int g) { return f2_mat(g, j); }, [&](int pb, const Mat& m) {
        u32 b[PG][2][4];
#pragma unroll
        for (int pp = 0; pp < PG; ++pp)
          if (pb + pp >= G0) load_block<INV>(b[pp], work + (2 * (pb + pp) + pl) * PLANE, j);
#pragma unroll
        for (int pp = 0; pp < PG; ++pp)
          if (pb + pp >= G0) second_block<INV>(m, b[pp], work + (2 * (pb + pp) + pl) * PLANE, j);
      });
    }
  }
  // One 16x16 block (row a of a plane pair) of F2 / I2: its two column halves as B fragments,
  // and the products written back in place.
  template <bool INV>
  __device__ __forceinline__ void load_block(u32 (&b)[2][4], u32 base, int a) const {
    const int kh = mi & 1;
#pragma unroll
    for (int nh = 0; nh < 2; ++nh) {
      if (INV)
        ldsm_x4_t(b[nh], base + cofs(a, 8 * kh + i8, nh));
      else
        ldsm_x4(b[nh], base + cofs(a, 8 * nh + i8, kh));
    }
  }
  template <bool INV>
  __device__ __forceinline__ void second_block(const Mat& m, const u32 (&b)[2][4], u32 base, int a) const {
    const int kh = mi & 1;
    u32 o[2][4];
#pragma unroll
    for (int nh = 0; nh < 2; ++nh) pack<0>(o[nh], cmma<INV>(m, b[nh]), 1.f);
#pragma unroll
    for (int nh = 0; nh < 2; ++nh) {
      if (INV)
        stsm_x4_t(base + cofs(a, 8 * nh + i8, kh), o[nh]);
      else
        stsm_x4(base + cofs(a, 8 * kh + i8, nh), o[nh]);
    }
  }
  // SPARSE F1, transposed: (n2 x live k1) = D^T (n2 x n1) F1[n3]^T (n1 x live k1), the data as
  // the A operand and the live rows of F1 gathered as B (8 columns: half the dense stage's
  // products), written to the compact rows 0..7 (stmatrix.trans).
  __device__ __forceinline__ void stage_first_sparse(const float (&s)[P], const float (&s2)[P]) {
    constexpr bool CUT = HALF && R == 1;  // rows n1 >= 8 are zero: A's k 8..15 half
    const int mh = mi & 1, kh = mi >> 1;   // this lane's ldmatrix matrix: (n2 half, n1 half)
    u32 tofs[R];
    bool glive[R];
    table_cols(tofs, glive);
#pragma unroll
    for (int x = 0; x < ITEMS; ++x) {
      const int j = warp + WARPS * x;
      u32 a[P][2][4];  // per group: Re, Im of D^T as A fragments
#pragma unroll
      for (int p = 0; p < P; ++p) {
        if (!glive[R == 1 ? 0 : p]) continue;
#pragma unroll
        for (int pl = 0; pl < 2; ++pl) {
          const u32 at = work + (2 * p + pl) * PLANE + cofs(8 * kh + i8, j, mh);
          if (CUT) {
            ldsm_x2_t(a[p][pl], at);
            a[p][pl][2] = a[p][pl][3] = 0u;
          } else {
            ldsm_x4_t(a[p][pl], at);
          }
          if (DT == 1 && R == 1) {  // raw bf16 input: to fp16 times 2^-ex (s2), exact
#pragma unroll
            for (int q = 0; q < 4; ++q) {
              const u32 v = a[p][pl][q];
              a[p][pl][q] = mc::pack_h2(mc::Dt<1>::lo(v) * s2[p], mc::Dt<1>::hi(v) * s2[p]);
            }
          }
        }
      }
      u32 f[R][4];  // F1[j] rows k1 = the live columns: {Re n1 0-7, Re n1 8-15, Im .., Im ..}
#pragma unroll
      for (int q = 0; q < R; ++q)
        if (glive[q]) ldsm_x4(f[q], tab + f1_mat(q, j) * MAT_BYTES + tofs[q]);
#pragma unroll
      for (int p = 0; p < P; ++p) {
        const int q = R == 1 ? 0 : p;
        if (!glive[q]) continue;
        const u32 fn0 = mc::neg_h2(f[q][2]), fn1 = mc::neg_h2(f[q][3]);
        Acc z;
#pragma unroll
        for (int e = 0; e < 4; ++e) z.r[e] = z.i[e] = 0.f;
        mc::mma16816(z.r, a[p][0], f[q][0], f[q][1]);  // Re = Dr Fr - Di Fi
        mc::mma16816(z.r, a[p][1], fn0, fn1);
        mc::mma16816(z.i, a[p][0], f[q][2], f[q][3]);  // Im = Dr Fi + Di Fr
        mc::mma16816(z.i, a[p][1], f[q][0], f[q][1]);
        u32 o[4];
        pack<0>(o, z, s[p]);
        stsm_x4_t(work + (2 * p + (mi >> 1)) * PLANE + cofs(i8, j, mi & 1), o);  // compact rows
      }
    }
  }
  // SPARSE I1 on the compact live rows only: (n1 x n2) = I1[n3] (n1 x 8 gathered columns) X (8
  // rows x n2) on m16n8k8, so the dead rows are never read; the padding columns (repeats of the
  // last live k1) are zeroed in the matrix, since here they would add up. Epilogue and stores
  // as stage_outer<true, ONE>.
  template <bool ONE>
  __device__ __forceinline__ void stage_last_sparse(const float (&s)[P], const float (&s2)[P]) {
    constexpr bool CUT = HALF && R == 1;  // only the output rows n1 < 8 are kept
    u32 tofs[R], keep[R];
    bool glive[R];
    table_cols(tofs, glive);
#pragma unroll
    for (int q = 0; q < R; ++q) {
      const int kc = lst_at(LST_N + q), t2 = 2 * (lane & 3);  // this lane's k: t2, t2 + 1
      keep[q] = (t2 < kc ? 0xffffu : 0u) | (t2 + 1 < kc ? 0xffff0000u : 0u);
    }
#pragma unroll
    for (int x = 0; x < ITEMS; ++x) {
      const int j = warp + WARPS * x;
      u32 b[P][4];  // per group: {Re n2 0-7, Re n2 8-15, Im .., Im ..} of rows 0..7
#pragma unroll
      for (int p = 0; p < P; ++p)
        if (glive[R == 1 ? 0 : p]) ldsm_x4_t(b[p], work + (2 * p + (mi >> 1)) * PLANE + cofs(i8, j, mi & 1));
      u32 m[R][4];  // I1[j] columns k1 = the live ones: {Re n1 0-7, Re n1 8-15, Im .., Im ..}
#pragma unroll
      for (int q = 0; q < R; ++q) {
        if (!glive[q]) continue;
        ldsm_x4_t(m[q], tab + f1_mat(q, j) * MAT_BYTES + tofs[q]);
#pragma unroll
        for (int e = 0; e < 4; ++e) m[q][e] &= keep[q];
      }
#pragma unroll
      for (int p = 0; p < P; ++p) {
        const int q = R == 1 ? 0 : p;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          Acc z;
#pragma unroll
          for (int e = 0; e < 4; ++e) z.r[e] = z.i[e] = 0.f;
          if (glive[q]) {  // (a dead group's spectrum is zero: so is its output)
            const u32 xr = b[p][h], xi = b[p][2 + h];
            mma1688(z.r, m[q][0], m[q][1], xr);  // Re = Mr xr + Mi xi
            mma1688(z.r, m[q][2], m[q][3], xi);
            mma1688(z.i, m[q][0], m[q][1], xi);  // Im = Mr xi - Mi xr
            mma1688(z.i, m[q][2], m[q][3], mc::neg_h2(xr));
          }
          if (!ONE) {
#pragma unroll
            for (int e = 0; e < 4; ++e) z.r[e] *= s2[p], z.i[e] *= s2[p];
          }
          u32 o[4];
          pack<(R == 1 && !POST) ? DT : 0>(o, z, s[p]);
          if (CUT)
            stsm_x2(work + (2 * p + (mi & 1)) * PLANE + cofs(i8, j, h), o[0], o[2]);
          else
            stsm_x4(work + (2 * p + (mi >> 1)) * PLANE + cofs(8 * (mi & 1) + i8, j, h), o);
        }
      }
    }
  }
  // SPARSE: per group list, this lane's offset into a table matrix for the ldmatrix that
  // gathers the live rows k1 (row list[i8]; matrices Re / Im x n1 halves), and whether the
  // group has any live k1 (8192: a sub-transform may have none).
  __device__ __forceinline__ void table_cols(u32 (&tofs)[R], bool (&glive)[R]) const {
#pragma unroll
    for (int q = 0; q < R; ++q) {
      tofs[q] = (mi >> 1) * (MAT_BYTES / 2) + cofs(0, lst_at(LST_K + 16 * q + i8), mi & 1);
      glive[q] = R == 1 || lst_at(LST_N + q) > 0;
    }
  }
  // SPARSE F2 / I2: one live (k1, g) block per job, both column halves in one warp (the block
  // is rewritten in place).
  template <bool INV>
  __device__ __forceinline__ void stage_second_sparse() {
    const int pl = mi >> 1, nlive = lst_at(LST_N + 2);
    for (int jb = warp; jb < nlive; jb += WARPS) {
      const int e = lst_at(LST_JOB + jb), g = e >> 4, ci = e & 15;  // block ci holds k1 = list[ci]
      const int k1 = lst_at(LST_K + 16 * (R == 1 ? 0 : g) + ci);
      const u32 base = work + (2 * g + pl) * PLANE;
      const Mat m = load_mat<INV>(tab, f2_mat(g, k1), lane);
      u32 b[2][4];
      load_block<INV>(b, base, ci);
      second_block<INV>(m, b, base, ci);
    }
  }
  // SPARSE: byte i of the lists.
  __device__ __forceinline__ int lst_at(int i) const {
    u32 v;
    asm volatile("ld.shared.u8 %0, [%1];" : "=r"(v) : "r"(lst + i));
    return static_cast<int>(v);
  }
  // IL: position of frequency f mod N in the FFT-N spectrum's order (cufftconv.fused.freq_index:
  // f = q + r (row + 16 col), r = N / 256). A bit permutation, so the lane / warp bits and the
  // compile-time bits of f map separately.
  static __device__ __forceinline__ constexpr int spec_pos(int f) {
    constexpr int LR = N == 512 ? 1 : N == 1024 ? 2 : 3;
    f &= N - 1;
    const int q = f & ((1 << LR) - 1), m = f >> LR, row = m & 15, col = m >> 4;
    return 256 * q + 8 * (4 * (row & 7) + ((col & 7) >> 1)) + 4 * (col >> 3) + 2 * (row >> 3) + (col & 1);
  }
  // This warp's filter values for the middle stage, from the spectrum in monarch_conv's order
  // (position tile * 256 + lane' * 8 + e' holds f = tile + 16 row + 256 col); loaded before the
  // barrier ahead of the stage so the loads hide behind it.
  // N = 8192: sub-transform q holds the frequencies q + 2 f', at tiles q * 16 + tile.
  __device__ __forceinline__ void load_k(u32 (&k)[R][ITEMS][2][4], int& ef, int h) const {
    const u32* row = kf + static_cast<long long>(h) * (N + 4);
    const int g = lane >> 2, t = lane & 3;
    int ktile[R][2] = {};  // SPARSE: the k1 of this lane's columns 2 t, 2 t + 1
    // IL: K_G[f] = K[f mod N] from the FFT-N spectrum (spec_pos), lane / warp bits once
    const int il_base = IL ? spec_pos(2 * t + 16 * warp + 256 * g) : 0;
    if constexpr (SPARSE) {
#pragma unroll
      for (int q = 0; q < R; ++q)
#pragma unroll
        for (int e = 0; e < 2; ++e) ktile[q][e] = lst_at(LST_K + 16 * q + 2 * t + e);
    }
#pragma unroll
    for (int q = 0; q < R; ++q)
#pragma unroll
      for (int x = 0; x < ITEMS; ++x) {
        const int j = warp + WARPS * x, lp = 4 * (j & 7) + (g >> 1);
#pragma unroll
        for (int ch = 0; ch < 2; ++ch)
#pragma unroll
          for (int c = 0; c < 4; ++c) {
            if (SPARSE && ch) continue;  // (one column group)
            int tile = 16 * q + 8 * ch + 2 * t + (c & 1);
            if constexpr (SPARSE) tile = 16 * q + ktile[q][c & 1];  // the live column's k1
            const int ep = 4 * (c >> 1) + 2 * (j >> 3) + (g & 1);
            if constexpr (IL)  // frequency f = tile + 16 j + 256 (8 (c >> 1) + g): its bits split
              k[q][x][ch][c] = __ldg(row + il_base + spec_pos((c & 1) + 8 * ch + 16 * WARPS * x + 2048 * (c >> 1)));
            else
              k[q][x][ch][c] = __ldg(row + tile * 256 + lp * 8 + ep);
          }
      }
    ef = static_cast<int>(mc::h2lo(__ldg(row + N)));
  }
  // F3, filter (times 2^-6), I3 in registers: item k2 (fixed b), tiles ch = column half (k1);
  // rows a = k1 hold 16 contiguous n3.
  __device__ __forceinline__ void stage_mid(const u32 (&k)[R][ITEMS][2][4]) {
    constexpr int CB = RX ? 1 : 2;  // column halves loaded at once (RX: 4 groups' tiles each)
    const int pl = mi >> 1, kh = mi & 1;
    bool glive[R];  // SPARSE: one column group (compact rows 0..7); 8192: a group may be dead
#pragma unroll
    for (int q = 0; q < R; ++q) glive[q] = !SPARSE || R == 1 || lst_at(LST_N + q) > 0;
#pragma unroll
    for (int x = 0; x < ITEMS; ++x) {
      const int j = warp + WARPS * x;
      const Mat mf = load_mat<false>(tab, f3_mat(j), lane), mv = load_mat<true>(tab, f3_mat(j), lane);
#pragma unroll
      for (int c0 = 0; c0 < 2; c0 += CB) {
        u32 b[CB][P][4];
#pragma unroll
        for (int cc = 0; cc < CB; ++cc)
#pragma unroll
          for (int p = 0; p < P; ++p) {
            const int q = R == 1 ? 0 : p, ch = c0 + cc;
            if constexpr (SPARSE) {
              if (ch == 0 && glive[q]) ldsm_x4(b[cc][p], work + (2 * p + pl) * PLANE + cofs(8 * ch + i8, j, kh));
            } else {
              if (!MIDSKIP || !dead(p)) ldsm_x4(b[cc][p], work + (2 * p + pl) * PLANE + cofs(8 * ch + i8, j, kh));
            }
          }
#pragma unroll
        for (int cc = 0; cc < CB; ++cc) {
          const int ch = c0 + cc;
          float kr[R][4], ki[R][4];
#pragma unroll
          for (int q = 0; q < R; ++q)
#pragma unroll
            for (int c = 0; c < 4; ++c)
              kr[q][c] = mc::h2lo(k[q][x][ch][c]) * 0.015625f, ki[q][c] = mc::h2hi(k[q][x][ch][c]) * 0.015625f;
#pragma unroll
          for (int p = 0; p < P; ++p) {
            const int q = R == 1 ? 0 : p;
            if (SPARSE && (ch > 0 || !glive[q])) continue;
            if constexpr (MIDSKIP)
              if (dead(p)) continue;
            u32 o[4], bb[4];
            Acc z = cmma<false>(mf, b[cc][p]);
#pragma unroll
            for (int c = 0; c < 4; ++c) {
              const float zr = z.r[c], zi = z.i[c];
              z.r[c] = zr * kr[q][c] - zi * ki[q][c];
              z.i[c] = zr * ki[q][c] + zi * kr[q][c];
            }
            pack<0>(o, z, 1.f);
#pragma unroll
            for (int w = 0; w < 4; ++w) bb[w] = mc::movt(o[w]);
            pack<0>(o, cmma<true>(mv, bb), 1.f);
            stsm_x4_t(work + (2 * p + pl) * PLANE + cofs(8 * ch + i8, j, kh), o);
          }
        }
      }
    }
  }

  // SPARSE: the lists from `live` (one thread).
  __device__ __forceinline__ void build_lists(unsigned char* l) const {
    int nj = 0;
#pragma unroll 1
    for (int q = 0; q < 2; ++q) {
      int c = 0;
#pragma unroll 1
      for (int k1 = 0; k1 < 16; ++k1)
        if ((live >> (16 * q + k1)) & 1) l[LST_K + 16 * q + c++] = static_cast<unsigned char>(k1);
      l[LST_N + q] = static_cast<unsigned char>(c);
#pragma unroll 1
      for (int i = c; i < 16; ++i) l[LST_K + 16 * q + i] = c ? l[LST_K + 16 * q + c - 1] : 0;
    }
#pragma unroll 1
    for (int ci = 0; ci < 16; ++ci)
#pragma unroll 1
      for (int g = 0; g < 2; ++g)
        if (ci < l[LST_N + g]) l[LST_JOB + nj++] = static_cast<unsigned char>(ci | g << 4);
    l[LST_N + 2] = static_cast<unsigned char>(nj);
  }

  // Barriers: every shared-memory hand-over between warps is separated by a __syncthreads;
  // the staging buffer is refilled (next unit) only after the barrier that ends transpose_in,
  // and red[] is rewritten only in the next unit's transpose_in.
  __device__ __forceinline__ void run(unsigned char* smem) {
    work = mc::smem_u32(smem);
    staging = work + STG;  // (RX: the work planes)
    tab = work + WORK + STG;
    red = tab + TAB;
    lst = red + WARPS * P * 4;
    tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, mi = lane >> 3, i8 = lane & 7;
    build_table<RT>(smem + WORK + STG, tid, THREADS);
    if (SPARSE && tid == 0) build_lists(smem + (lst - work));  // read after the loop's first barrier
    const int nunits = ((B / G) >> 1) * H / PAIRS;
    if (static_cast<int>(blockIdx.x) < nunits) issue_load(blockIdx.x);
    for (int unit = blockIdx.x; unit < nunits; unit += gridDim.x) {
      mc::cp_async_wait<0>();
      if (PRE) gate_in(unit);  // own chunks only: no barrier needed before
      if (!RX) __syncthreads();  // (RX: stage_max and transpose_rx read this warp's own rows)
      int ex[P];
      float s[P], s2[P];
      if constexpr (R == 1) {
        transpose_in();
        __syncthreads();
#pragma unroll
        for (int p = 0; p < P; ++p) {
          ex[p] = pair_exp(p);
          s[p] = DT == 0 ? exp2i(-ex[p]) : 1.f;  // fp16: scaled in F1's epilogue
          s2[p] = exp2i(-ex[p]);                 // bf16: scaled as F1 converts its tiles
        }
      } else {
        stage_max();
        __syncthreads();
        const int e0 = pair_exp(0);
#pragma unroll
        for (int p = 0; p < P; ++p) ex[p] = e0, s[p] = s2[p] = 1.f;
        transpose_rx(e0);
        __syncthreads();
      }
      const bool next = unit + static_cast<int>(gridDim.x) < nunits;
      if (!RX && next) issue_load(unit + gridDim.x);
      if (RX && next) {  // (RX: copied after this unit's stores; into L2 now)
        prefetch_rows(u, u_sb, u_sh, u_so, unit + gridDim.x, min(L, N));
        if (PRE) prefetch_rows(pre, pre_sb, pre_sh, pre_so, unit + gridDim.x, min(L, N));
      }
      if (POST) prefetch_rows(post, post_sb, post_sh, post_so, unit, Lout);  // read by the store
      if (SPARSE)
        stage_first_sparse(s, s2);
      else
        stage_outer<false>(s, s2);
      __syncthreads();
      if (SPARSE)
        stage_second_sparse<false>();
      else
        stage_second<false>();
      int ch, b0, ef;
      unit_rows(unit, ch, b0);
      u32 k[R][ITEMS][2][4];
      load_k(k, ef, ch);
      __syncthreads();
      stage_mid(k);
      __syncthreads();
      if (SPARSE)
        stage_second_sparse<true>();
      else
        stage_second<true>();
      __syncthreads();
      // The output scale goes to I1's epilogue, or (LATE) to the radix step / the postgate.
      // 2^(ex + ef + 6 - log2 R) as two factors, each a normal float; I1 multiplies once by
      // the single factor where that is a normal float too (every pair of the unit).
      constexpr bool LATE = R >= 2 || POST;
      bool one = !LATE;
      float sc[P];
#pragma unroll
      for (int p = 0; p < P; ++p) {
        const int e = min(max(ex[p] + ef + 6 - LOG2R, -250), 250);
        s[p] = exp2i(e >> 1), s2[p] = exp2i(e - (e >> 1));
        sc[p] = exp2i(min(max(e, -126), 127));
        one = one && e >= -126 && e <= 127;
      }
      float o1[P], o2[P];
#pragma unroll
      for (int p = 0; p < P; ++p) o1[p] = LATE ? 1.f : s[p], o2[p] = LATE ? 1.f : s2[p];
      if (one) {
        if (SPARSE)
          stage_last_sparse<true>(sc, sc);
        else
          stage_outer<true, true>(sc, sc);
      } else {
        if (SPARSE)
          stage_last_sparse<false>(o1, o2);
        else
          stage_outer<true>(o1, o2);
      }
      __syncthreads();
      if constexpr (RX) {
        store_rx(unit, s[0], s2[0]);
        if (next) issue_load(unit + gridDim.x);  // into this warp's own rows, just stored
      } else {
        store(unit, s, s2);
      }
    }
  }
};

}  // namespace tf

// Same parameters as monarch_conv_fwd (cufftconv.fused.Launcher / prepare build either); the
// outer strides and BI are used by TWO only, the tile list not at all, the gates only with PRE / POST; qlive
// carries SPARSE's live word (cufftconv.twiddle_fold.live_word) or GSKIP's dead groups
// (cufftconv.twiddle_fold.dead_groups).
template <int N, int DT, bool PRE, bool POST, bool HALF, int MASK>
__global__ void __launch_bounds__(tf::TwiddleFold<N, DT, PRE, POST, HALF, MASK>::THREADS,
                                  tf::TwiddleFold<N, DT, PRE, POST, HALF, MASK>::MINB)
twiddle_fold_fwd(const unsigned short* __restrict__ u, const unsigned short* __restrict__ pre,
                 const unsigned short* __restrict__ kf, unsigned short* __restrict__ y,
                 const unsigned short* __restrict__ post, long long u_sb, long long u_sh,
                 long long pre_sb, long long pre_sh, long long y_sb, long long y_sh,
                 long long post_sb, long long post_sh, long long u_so, long long pre_so,
                 long long y_so, long long post_so, int B, int H, int L, int out_offset,
                 int Lout, int BI, const int* __restrict__ tiles, int KC, int KZ, int qlive) {
  extern __shared__ __align__(16) unsigned char tf_smem[];
  tf::TwiddleFold<N, DT, PRE, POST, HALF, MASK> k;
  tf::bind_args(k, u, pre, kf, y, post, u_sb, u_sh, pre_sb, pre_sh, y_sb, y_sh, post_sb, post_sh, B, H, L,
                out_offset, Lout);
  k.live = static_cast<unsigned>(qlive);
  k.u_so = u_so, k.pre_so = pre_so, k.y_so = y_so, k.post_so = post_so, k.BI = BI;
  k.run(tf_smem);
}

// FFT 256 (pairs as the MMA columns): the same family, one NVRTC program.
#include "pair_fold.cuh"

// The backward (FFT 512 .. 4096) on the same stages: the same family, one NVRTC program.
#include "fold_bwd.cuh"
