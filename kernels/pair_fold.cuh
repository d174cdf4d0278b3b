// cufftconv: FFT-256 convolutions with every twiddle folded into the tensor-core DFT matrices,
// the MMA columns being 8 pairs of sequences (sm_90: ldmatrix / stmatrix, plain and transposed).
//
// Below 4096 one sequence has no third digit to fill a folded tile's 8 columns (see
// twiddle_fold.cu), so the columns are 8 pairs (two sequences packed as one complex sequence,
// any channels: the filter is applied per column). With m = 16 a + b, f = c + 16 d and
// w_M = exp(-2 pi i / M):
//   F1[b] (c, a) = w16^(ac) w256^(bc) / 4   at fixed b contract a (16 matrices)
//   F2 (d, b)    = w16^(bd) / 4             at fixed c contract b (one matrix)
// The inverse runs I2 = F2^H and I1[b] = F1[b]^H (transposed ldmatrix of the same table, the
// imaginary part negated). benchmarks/fold_proto/fold256_mirror.py checks these stages.
//
// A warp owns a tile of 8 pairs from load to store, so after the table is built no block
// barrier remains. A tile is 2 planes (re, im) of 16 x 17 16-byte chunks: chunk (pl, b, x) at
// pl * 272 + 17 b + x holds the 8 pairs' values at (b, x), x = a around F1 / I1 and x = c in
// between. The loads put the natural chunk (pair p, plane pl, row a, half h of b) at (pl, 8 h
// + p, a), the slots of the very rows b it transposes into, so every transposition and every
// stage reads and rewrites the same 32 chunks in place (one ldmatrix, one stmatrix). Rows x at
// fixed b and rows b at fixed x both fall on 8 bank groups.
//
// Scaling, per pair: 2^-ex brings max |x| into (2^7, 2^8] (fp16 in F1's epilogue, bf16 as F1
// converts its fragments), so the forward stages (1/4 each) stay below 2^12; the filter
// (max |K| <= 1, exponent ef) is applied times 2^-FS; the output is scaled by 2^(ex + ef + FS)
// in I1's epilogue or, with POST, in the store next to the postgate. HALF (causal: L and
// out_offset + Lout at most 128): rows a >= 8 of the input are zero and those of the output
// dropped, so the loads, the transpositions and the store skip them, F1 reads only a < 8 and
// I1 writes only a < 8. Launch contract (cufftconv.twiddle_fold.eligible): B even, L,
// out_offset, Lout, the row strides and the pointers 16-byte granular, a dense spectrum.
#include "fold_prims.cuh"

namespace pf {
using mc::u16;
using mc::u32;
using tf::Acc;
using tf::Mat;

template <int DT, bool PRE, bool POST, bool HALF, int WARPS, int BUFS>
struct PairFold {
  static constexpr int N = 256, THREADS = 32 * WARPS, FS = 4;
  static constexpr int PLANE = 16 * 17 * 16;             // bytes of one tile plane
  static constexpr int BUF = 2 * PLANE;                  // one tile
  static constexpr int TAB = 18 * tf::MAT_BYTES;         // F1[0..15], F2, F2 2^-FS
  static constexpr int SMEM = TAB + WARPS * BUFS * BUF;
  static constexpr int OWN = HALF ? 8 : 16;              // 16-byte chunks per lane and tile (own_p)
  static constexpr int ROWS = HALF ? 8 : 16;             // live rows a

  const u16* __restrict__ u;
  const u16* __restrict__ pre;
  const u32* __restrict__ kf;  // FusedConv.filter_spectrum: (H, n + 4) complex fp16 words
  u16* __restrict__ y;
  const u16* __restrict__ post;
  long long u_sb, u_sh, pre_sb, pre_sh, y_sb, y_sh, post_sb, post_sh;
  int B, H, L, out_offset, Lout;
  int lane, g, t, npairs;
  u32 dm;  // pair_rows' divisor
  u32 tab, lb, lx, lbh;  // table; lane row offsets: fixed b, fixed x, fixed b (x2, HALF)

  static __device__ __forceinline__ constexpr u32 slot(int pl, int b, int x) {
    return static_cast<u32>(pl * 272 + 17 * b + x) * 16u;
  }
  // Own chunks r = 0 .. OWN - 1 of this lane: pair own_p(r), plane r & 1, positions own_pos()
  // .. + 7 (row a, half h of b). Per instruction one sequence's 512 contiguous bytes (HALF: two
  // sequences' 256); the 8 lanes of a shared-memory phase hit rows b = 8 h + p, x = a on 8 bank
  // groups.
  __device__ __forceinline__ int own_a() const { return HALF ? lane & 7 : lane & 15; }
  __device__ __forceinline__ int own_h() const { return HALF ? (lane >> 3) & 1 : lane >> 4; }
  __device__ __forceinline__ int own_p(int r) const { return HALF ? 4 * (lane >> 4) + (r >> 1) : r >> 1; }
  __device__ __forceinline__ int own_pos() const { return 16 * own_a() + 8 * own_h(); }
  __device__ __forceinline__ u32 own_slot(u32 buf, int r) const {
    return buf + slot(r & 1, 8 * own_h() + own_p(r), own_a());
  }
  // Pair pi (clamped to the last one) as (channel, first sequence): pi / (B / 2) as a
  // multiply-high by dm = floor((2^32 - 1) / (B / 2)) and one correction (exact for pi < 2^31).
  __device__ __forceinline__ void pair_rows(int pi, int& ch, int& b0) const {
    const int bp2 = B >> 1;
    pi = min(pi, npairs - 1);
    ch = static_cast<int>(__umulhi(static_cast<u32>(pi), dm));
    int rem = pi - ch * bp2;
    if (rem >= bp2) ++ch, rem -= bp2;
    b0 = 2 * rem;
  }
  // This lane's pairs of a tile in order (own_p(0), own_p(0) + 1, ...), stepped without a
  // division: pair pi = channel ch, sequences 2 rem and 2 rem + 1.
  struct PairWalk {
    int pi, ch, rem;
  };
  __device__ __forceinline__ PairWalk walk(int tile) const {
    PairWalk w;
    w.pi = tile * 8 + own_p(0);
    pair_rows(w.pi, w.ch, w.rem);
    w.rem >>= 1;
    return w;
  }
  __device__ __forceinline__ void step(PairWalk& w) const {
    ++w.pi;
    if (++w.rem == (B >> 1)) w.rem = 0, ++w.ch;
  }
  // The pair's first row in a tensor of strides (sb, sh), or nullptr past the last pair.
  template <class T>
  __device__ __forceinline__ T* row_of(const PairWalk& w, T* base, long long sb, long long sh) const {
    return w.pi < npairs ? base + 2 * w.rem * sb + w.ch * sh : nullptr;
  }
  __device__ __forceinline__ void issue_load(int tile, u32 buf) const {
    const int pos = own_pos();
    PairWalk w = walk(tile);
#pragma unroll
    for (int r = 0; r < OWN; r += 2, step(w)) {
      const u16* row = row_of(w, u, u_sb, u_sh);
      const bool in = row != nullptr && pos < L;
#pragma unroll
      for (int pl = 0; pl < 2; ++pl)
        mc::cp_async16(own_slot(buf, r + pl), in ? row + pl * u_sb + pos : u, in ? 16 : 0);
    }
    if (PRE) prefetch_rows(pre, pre_sb, pre_sh, tile, min(L, N));  // read by gate_in
  }
  // One L2 bulk prefetch per sequence of the tile (lanes 0..15): the first `count` values of
  // its gate row.
  __device__ __forceinline__ void prefetch_rows(const u16* gp, long long sb, long long sh, int tile, int count) const {
    const int pi = tile * 8 + (lane >> 1);
    if (lane < 16 && pi < npairs) {
      int ch, b0;
      pair_rows(pi, ch, b0);
      mc::prefetch_run(gp + (b0 + (lane & 1)) * sb + ch * sh, 2 * count);
    }
  }
  // PRE: this lane's own chunks times the pregate, rounded to the input type, in place (loads
  // in batches of GB: all 16 in flight at once need 64 registers).
  __device__ __forceinline__ void gate_in(int tile, u32 buf) const {
    const int pos = own_pos();
    constexpr int GB = 4;  // (8 spill)
    PairWalk w = walk(tile);
#pragma unroll
    for (int r0 = 0; r0 < OWN; r0 += GB) {
      uint4 gv[GB];
#pragma unroll
      for (int r = r0; r < r0 + GB; r += 2, step(w)) {
        const u16* row = row_of(w, pre, pre_sb, pre_sh);
#pragma unroll
        for (int pl = 0; pl < 2; ++pl)
          gv[r + pl - r0] = row != nullptr && pos < L ? __ldg(reinterpret_cast<const uint4*>(row + pl * pre_sb + pos))
                                                      : make_uint4(0u, 0u, 0u, 0u);
      }
#pragma unroll
      for (int r = r0; r < r0 + GB; ++r) {
        const u32 ad = own_slot(buf, r);
        uint4 v = tf::lds128(ad);
        mc::gate_chunk<DT>(v, gv[r - r0]);
        tf::sts128(ad, v);
      }
    }
  }
  // Natural chunks -> rows b (holding the 8 pairs) in place; returns the largest |x| of pair g
  // (every lane of group g holds it).
  __device__ __forceinline__ u32 transpose_in(u32 buf) const {
    u32 m = 0;
#pragma unroll
    for (int a = 0; a < ROWS; ++a) {
      u32 d[4];
      tf::ldsm_x4(d, buf + lx + 16 * a);
      tf::stsm_x4_t(buf + lx + 16 * a, d);
#pragma unroll
      for (int q = 0; q < 4; ++q) m = mc::absmax2(m, d[q]);
    }
    m = max(m & 0xffffu, m >> 16);
    m = max(m, __shfl_xor_sync(0xffffffffu, m, 1));
    return max(m, __shfl_xor_sync(0xffffffffu, m, 2));
  }
  // Rows b -> natural chunks in place.
  __device__ __forceinline__ void transpose_out(u32 buf) const {
#pragma unroll
    for (int a = 0; a < ROWS; ++a) {
      u32 d[4];
      tf::ldsm_x4_t(d, buf + lx + 16 * a);
      tf::stsm_x4(buf + lx + 16 * a, d);
    }
  }
  // F1 / I1 at each b: contract rows x of (b, x). The epilogue multiplies by NS column scales
  // (columns 2t, 2t + 1): sc, then sc2 (NS = 2: factors that may each be needed to stay in the
  // float range); F1 with bf16 input first converts its fragments (column g) to fp16 times sg.
  // I1 writes the output type unless POST.
  template <bool INV, int NS>
  __device__ __forceinline__ void stage_outer(u32 buf, float sg, const float (&sc)[2], const float (&sc2)[2]) const {
#pragma unroll 4
    for (int b = 0; b < 16; ++b) {
      const Mat m = tf::load_mat<INV>(tab, b, lane);
      u32 x[4];
      if (HALF && !INV) {  // rows a >= 8 are zero
        u32 d[2];
        tf::ldsm_x2_t(d, buf + lbh + 17 * 16 * b);
        x[0] = d[0], x[1] = 0u, x[2] = d[1], x[3] = 0u;
      } else {
        tf::ldsm_x4_t(x, buf + lb + 17 * 16 * b);
      }
      if (!INV && DT == 1) {  // raw bf16 -> fp16 times 2^-ex, exact
#pragma unroll
        for (int q = 0; q < 4; ++q) x[q] = mc::pack_h2(mc::Dt<1>::lo(x[q]) * sg, mc::Dt<1>::hi(x[q]) * sg);
      }
      Acc z = tf::cmma<INV>(m, x);
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        if (NS >= 2) z.r[c] *= sc2[c & 1], z.i[c] *= sc2[c & 1];
        if (NS >= 1) z.r[c] *= sc[c & 1], z.i[c] *= sc[c & 1];
      }
      using D = mc::Dt<(INV && !POST) ? DT : 0>;
      u32 o[4];
      o[0] = D::pack(z.r[0], z.r[1]);
      o[1] = D::pack(z.r[2], z.r[3]);
      o[2] = D::pack(z.i[0], z.i[1]);
      o[3] = D::pack(z.i[2], z.i[3]);
      if (HALF && INV)  // only the output rows a < 8 are kept
        tf::stsm_x2(buf + lbh + 17 * 16 * b, o[0], o[2]);
      else
        tf::stsm_x4(buf + lb + 17 * 16 * b, o);
    }
  }
  // The filter words of this lane's rows d = g, g + 8 at c, for the channel row kr
  // (fused.freq_index(256): f = c + 16 d sits at 32 (c & 7) + 2 (c >> 3) + 8 ((d & 7) >> 1) +
  // 4 (d >> 3) + (d & 1)).
  // kr: the channel's row plus this lane's part 8 (g >> 1) + (g & 1) (k_lane), so that the
  // per-item offsets are immediates.
  static __device__ __forceinline__ void load_k(u32 (&k)[2], const u32* kr, int c) {
    const int w = 32 * (c & 7) + 2 * (c >> 3);
    k[0] = __ldg(kr + w), k[1] = __ldg(kr + w + 4);
  }
  __device__ __forceinline__ int k_lane() const { return 8 * (g >> 1) + (g & 1); }
  static constexpr int KAHEAD = 4;  // filter loads run this many items ahead
  // F2 (times 2^-FS: mm.f), the filter and I2 in registers, at each c; rows b of (b, c). kr0 /
  // kr1: the filter rows of the channels of columns 2t / 2t + 1 (uni: the same, one channel in
  // the tile); k: the words of the first KAHEAD items (column 2t), loaded before F1, which
  // hides their latency; each item issues the loads of item c + KAHEAD.
  struct MidMats {  // F2 2^-FS and I2 (= F2^H) fragments with their negated imaginary parts
    Mat f, v;
    u32 fn[4], vn[4];
  };
  __device__ __forceinline__ void stage_mid(u32 buf, const MidMats& mm, u32 (&k)[16][2], bool uni, const u32* kr0,
                                            const u32* kr1) const {
#pragma unroll  // (k indexed by c: registers only when unrolled)
    for (int c = 0; c < 16; ++c) {
      if (c + KAHEAD < 16) load_k(k[c + KAHEAD], kr0, c + KAHEAD);
      u32 kc[2][2] = {{k[c][0], k[c][1]}, {k[c][0], k[c][1]}};
      if (!uni) load_k(kc[1], kr1, c);
      u32 x[4];
      tf::ldsm_x4_t(x, buf + lx + 16 * c);
      Acc z = tf::cmma_n<false>(mm.f, mm.fn, x);
#pragma unroll
      for (int q = 0; q < 4; ++q) {  // element q: row d = g + 8 (q >> 1), column 2t + (q & 1)
        const u32 kk = kc[q & 1][q >> 1];
        const float kr = mc::h2lo(kk), ki = mc::h2hi(kk);
        const float zr = z.r[q], zi = z.i[q];
        z.r[q] = zr * kr - zi * ki;
        z.i[q] = zr * ki + zi * kr;
      }
      u32 o[4], bb[4];
      tf::pack<0>(o, z, 1.f);
#pragma unroll
      for (int q = 0; q < 4; ++q) bb[q] = mc::movt(o[q]);
      tf::pack<0>(o, tf::cmma_n<true>(mm.v, mm.vn, bb), 1.f);
      tf::stsm_x4(buf + lx + 16 * c, o);
    }
  }
  // Natural chunks -> y (positions out_offset .. out_offset + Lout), POST: times the postgate
  // and the pair's scale (s1 s2 of lane 4 p).
  __device__ __forceinline__ void store(int tile, u32 buf, float s1, float s2) const {
    constexpr int GB = POST ? 4 : 2;  // postgate loads in flight at once
    const int tt = own_pos() - out_offset;
    const bool in = tt >= 0 && tt < Lout;
    PairWalk w = walk(tile);
#pragma unroll
    for (int r0 = 0; r0 < OWN; r0 += GB) {
      uint4 gv[GB];
      u16* row[GB / 2 + 1];
      float f1[GB / 2 + 1], f2[GB / 2 + 1];
#pragma unroll
      for (int r = r0; r < r0 + GB; r += 2, step(w)) {
        const int i = (r - r0) >> 1;
        row[i] = row_of(w, y, y_sb, y_sh);
        f1[i] = POST ? __shfl_sync(0xffffffffu, s1, 4 * own_p(r)) : 1.f;
        f2[i] = POST ? __shfl_sync(0xffffffffu, s2, 4 * own_p(r)) : 1.f;
        if (POST && row[i] != nullptr && in) {
          const u16* grow = row_of(w, post, post_sb, post_sh);
#pragma unroll
          for (int pl = 0; pl < 2 && r + pl < r0 + GB; ++pl)
            gv[r + pl - r0] = __ldg(reinterpret_cast<const uint4*>(grow + pl * post_sb + tt));
        }
      }
#pragma unroll
      for (int r = r0; r < r0 + GB; ++r) {
        const int i = (r - r0) >> 1;
        if (row[i] != nullptr && in) {
          uint4 v = tf::lds128(own_slot(buf, r));
          if (POST) v = tf::finish<DT>(v, gv[r - r0], f1[i], f2[i]);
          __stcs(reinterpret_cast<uint4*>(row[i] + (r & 1) * y_sb + tt), v);
        }
      }
    }
  }

  __device__ __forceinline__ void tile_conv(int tile, u32 buf, const MidMats& mm) const {
    // scales: pair g's exponent and filter exponent (lanes of group g), then per column
    const u32 mx = transpose_in(buf);
    int ch, b0;
    pair_rows(tile * 8 + g, ch, b0);
    const int ex = tf::scale_exp<DT>(mx, 8);
    const int ef = static_cast<int>(mc::h2lo(__ldg(kf + static_cast<long long>(ch) * (N + 4) + N)));
    const float sg = tf::exp2i(-ex);
    float sc[2], one[2] = {1.f, 1.f};
#pragma unroll
    for (int e = 0; e < 2; ++e) sc[e] = DT == 0 ? __shfl_sync(0xffffffffu, sg, 8 * t + 4 * e) : 1.f;
    int c0, c1, cl, bb;
    pair_rows(tile * 8 + 2 * t, c0, bb);
    pair_rows(tile * 8 + 2 * t + 1, c1, bb);
    pair_rows(tile * 8 + 7, cl, bb);
    const bool uni = __shfl_sync(0xffffffffu, c0, 0) == cl;  // one channel in the tile
    const u32* kr0 = kf + static_cast<long long>(c0) * (N + 4) + k_lane();
    u32 k[16][2];
#pragma unroll
    for (int c = 0; c < KAHEAD; ++c) load_k(k[c], kr0, c);
    if (POST) prefetch_rows(post, post_sb, post_sh, tile, Lout);  // read by the store
    __syncwarp();
    stage_outer<false, DT == 0 ? 1 : 0>(buf, sg, sc, one);
    __syncwarp();
    stage_mid(buf, mm, k, uni, kr0, kf + static_cast<long long>(c1) * (N + 4) + k_lane());
    __syncwarp();
    // output scale 2^(ex + ef + FS) as two normal factors (one where every pair's is normal)
    const int e = min(max(ex + ef + FS, -250), 250);
    const float s1 = tf::exp2i(e >> 1), s2 = tf::exp2i(e - (e >> 1));
    if (POST) {  // applied in the store
      stage_outer<true, 0>(buf, 1.f, one, one);
    } else if (__all_sync(0xffffffffu, e >= -126 && e <= 127)) {
      const float s = tf::exp2i(e);
      const float o1[2] = {__shfl_sync(0xffffffffu, s, 8 * t), __shfl_sync(0xffffffffu, s, 8 * t + 4)};
      stage_outer<true, 1>(buf, 1.f, o1, one);
    } else {
      const float o1[2] = {__shfl_sync(0xffffffffu, s1, 8 * t), __shfl_sync(0xffffffffu, s1, 8 * t + 4)};
      const float o2[2] = {__shfl_sync(0xffffffffu, s2, 8 * t), __shfl_sync(0xffffffffu, s2, 8 * t + 4)};
      stage_outer<true, 2>(buf, 1.f, o1, o2);
    }
    __syncwarp();
    transpose_out(buf);
    __syncwarp();
    store(tile, buf, s1, s2);
  }

  __device__ __forceinline__ void run(unsigned char* smem) {
    lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int warp = threadIdx.x >> 5, mi = lane >> 3, i8 = lane & 7;
    tab = mc::smem_u32(smem);
    lb = slot(mi >> 1, 0, 8 * (mi & 1) + i8);
    lx = slot(mi >> 1, 8 * (mi & 1) + i8, 0);
    lbh = slot(mi & 1, 0, i8);
    for (int idx = threadIdx.x; idx < 18 * 256; idx += THREADS) {  // phases exact mod 256
      const int mat = idx >> 8, r = (idx >> 4) & 15, col = idx & 15;
      const int ph = (16 * r * col + (mat < 16 ? mat * r : 0)) & 255;
      float s, c;
      sincospif(static_cast<float>(ph) / 128.f, &s, &c);
      u16* re = reinterpret_cast<u16*>(smem + mat * tf::MAT_BYTES + tf::cofs(0, r, col >> 3)) + (col & 7);
      const float amp = mat < 17 ? 0.25f : 0.25f / (1 << FS);
      re[0] = mc::Dt<0>::from(amp * c);
      re[tf::MAT_BYTES / 4] = mc::Dt<0>::from(-amp * s);
    }
    __syncthreads();
    npairs = (B >> 1) * H;
    dm = static_cast<u32>(0xffffffffull / static_cast<u32>(B >> 1));  // (see pair_rows)
    const int ntiles = (npairs + 7) >> 3, stride = gridDim.x * WARPS;
    const u32 buf0 = tab + TAB + warp * BUFS * BUF;
    MidMats mm;
    mm.f = tf::load_mat<false>(tab, 17, lane), mm.v = tf::load_mat<true>(tab, 16, lane);
#pragma unroll
    for (int q = 0; q < 4; ++q) mm.fn[q] = mc::neg_h2(mm.f.i[q]), mm.vn[q] = mc::neg_h2(mm.v.i[q]);
    int tile = blockIdx.x * WARPS + warp;
    // Loads run BUFS - 1 tiles ahead (BUFS = 1: the next one after the store); one cp.async
    // group per tile, empty past the end, so wait_group counts stay fixed.
#pragma unroll
    for (int j = 0; j < (BUFS > 1 ? BUFS - 1 : 1); ++j) {
      if (tile + j * stride < ntiles) issue_load(tile + j * stride, buf0 + j * BUF);
      mc::cp_async_commit();
    }
    for (int bi = 0; tile < ntiles; tile += stride, bi = bi + 1 == BUFS ? 0 : bi + 1) {
      const u32 buf = buf0 + bi * BUF;
      mc::cp_async_wait<(BUFS > 1 ? BUFS - 2 : 0)>();
      if (PRE) gate_in(tile, buf);
      __syncwarp();
      if (BUFS > 1) {
        const int ahead = tile + (BUFS - 1) * stride, ba = bi == 0 ? BUFS - 1 : bi - 1;
        if (ahead < ntiles) issue_load(ahead, buf0 + ba * BUF);
        mc::cp_async_commit();
      }
      tile_conv(tile, buf, mm);
      __syncwarp();  // the store's reads before the next load overwrites
      if (BUFS == 1) {
        if (tile + stride < ntiles) issue_load(tile + stride, buf);
        mc::cp_async_commit();
      }
    }
  }
};

}  // namespace pf

// Same parameters as monarch_conv_fwd (cufftconv.fused builds either); the outer strides, BI and
// the tile list are unused here, the gates only with PRE / POST.
template <int DT, bool PRE, bool POST, bool HALF, int WARPS, int BUFS>
__global__ void __launch_bounds__(32 * WARPS, 1)
pair_fold_fwd(const unsigned short* __restrict__ u, const unsigned short* __restrict__ pre,
              const unsigned short* __restrict__ kf, unsigned short* __restrict__ y,
              const unsigned short* __restrict__ post, long long u_sb, long long u_sh,
              long long pre_sb, long long pre_sh, long long y_sb, long long y_sh,
              long long post_sb, long long post_sh, long long u_so, long long pre_so,
              long long y_so, long long post_so, int B, int H, int L, int out_offset,
              int Lout, int BI, const int* __restrict__ tiles, int KC, int KZ, int qlive) {
  extern __shared__ __align__(16) unsigned char pf_smem[];
  pf::PairFold<DT, PRE, POST, HALF, WARPS, BUFS> k;
  tf::bind_args(k, u, pre, kf, y, post, u_sb, u_sh, pre_sb, pre_sh, y_sb, y_sh, post_sb, post_sh, B, H, L,
                out_offset, Lout);
  k.run(pf_smem);
}
