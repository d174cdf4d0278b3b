// cufftconv: fused forward FFT convolution, one templated kernel family for FFT sizes 256..32768.
//
//   y[b,h,t] = post[b,h,t] * sum_s kpad[h,s] * upad[b,h,(t + out_offset - s) mod N],  t < Lout,
//   upad = (pre * u)[b,h,:L] zero padded to N.
//
// One thread block holds P "pairs" on chip; a pair is the two sequences (b, b+1) of one channel h
// packed as x = u_b + i u_{b+1} (k is real, so conv(x) = y_b + i y_{b+1} with no unpacking).
// The FFT of size N = R * M, M = 16^A (A = 2 or 3), R in {1, 2, 4, 8}, is a decimation-in-
// frequency Monarch chain: a radix-R stage in fp32 on CUDA cores (most significant digit), then
// A radix-16 stages on tensor cores, each followed by an fp32 twiddle on the accumulators. The
// spectrum stays in digit-reversed order; the filter spectrum (fused.py) is stored in the same
// order, so no transpose is ever needed, and the inverse is the exact reverse chain.
//
// Data never leaves the chip between the load and the store:
//   L0  global -> smem (raw 16-bit u or pre*u), per-pair max |x| for a power-of-two scale
//   L1  radix-R stage + scale + twiddle, in place, to fp16
//   (A = 3) stage 0 on tensor cores over smem tiles
//   core: two radix-16 stages in registers, * K, two inverse stages in registers
//   (A = 3) inverse stage 0 over smem tiles
//   S   inverse radix-R stage, unscale, postgate, crop, global store
// The per-pair power-of-two scale maps max |x| into [1, 2), so the fp16 intermediates cannot
// overflow whatever the input range, and bf16 inputs run on fp16 tensor cores (8x finer than
// bf16). With a pregate, pre*u is rounded once to the input dtype before the scale is taken.
#include "monarch_tile.cuh"

// Profiling hook (benchmarks/fused_dev.py --breakdown): bit 0 skips the forward radix-R pass,
// bit 1 the tensor-core phases, bit 2 the inverse radix-R math. 0 (the default) is the kernel.
#ifndef MONARCH_SKIP
#define MONARCH_SKIP 0
#endif

// L2 prefetches ahead of synchronous global loads (bit 0: the store's postgate, bit 1: the
// next unit's input at 32K, bit 2: the backward's next unit, both sides); a switch for A/B
// timing (benchmarks/fused_ab.py, bwd_ab.py).
#ifndef MONARCH_PF
#define MONARCH_PF 7
#endif

namespace mc {

template <int N_>
struct Cfg {
  static constexpr int N = N_;
  static_assert(N >= 256 && N <= 32768 && (N & (N - 1)) == 0, "FFT size must be a power of two in [256, 32768]");
  static constexpr int A = N >= 4096 ? 3 : 2;     // radix-16 stages
  static constexpr int M = A == 3 ? 4096 : 256;   // 16^A
  static constexpr int R = N / M;                 // fp32 radix stage (1, 2, 4, 8)
  static constexpr int LOGR = R == 1 ? 0 : R == 2 ? 1 : R == 4 ? 2 : 3;
  // pairs per block; R = 8 takes 2 pairs so that every thread has work in the radix-R passes
  static constexpr int P = A == 2 ? (R == 8 ? 2 : 8 / R) : 1;
  static constexpr int THREADS = N >= 16384 ? 512 : 256;
  static constexpr int WARPS = THREADS / 32;
  static constexpr int MINB = 65536 / (THREADS * 128);  // keeps registers <= 128 per thread
  static constexpr int TBL1 = N / 64;             // coarse twiddle table entries
  static constexpr int DATA_HALVES = P * R * 2 * M;
  static constexpr int DATA_BYTES = DATA_HALVES * 2;
  // Raw input staging buffers (cp.async prefetch of the next unit while this one computes):
  // RAWB buffers of [u | pre][P pairs][2 planes][N] 16-bit values. 0: no prefetch (the data
  // buffer is loaded directly; 32K has no room for a second copy).
  static constexpr int RAWB = N <= 4096 ? 2 : N <= 16384 ? 1 : 0;
  static constexpr int RAW_HALVES = P * 2 * N;  // one source (u or pre) of one buffer
  static constexpr int RAW_BYTES = RAWB * 2 * RAW_HALVES * 2;
  static constexpr int TBL_BYTES = (64 + TBL1) * 8;
  static constexpr int SMEM_BYTES = DATA_BYTES + RAW_BYTES + TBL_BYTES + WARPS * 4;
  static constexpr int KSTRIDE = 2 * N + 8;       // halves per channel in the filter spectrum
};

// XOR swizzle of 16-byte chunks inside one M-long plane: conflict-free ldmatrix over rows of any
// radix-16 digit, conflict-free fragment stores, and conflict-free contiguous runs.
__device__ __forceinline__ int swz(int m) {
  const int c = m >> 3;
  return ((c ^ (((c >> 3) & 1) ^ ((c >> 5) & 7))) << 3) | (m & 7);
}

// DK = false: the forward convolution (run). DK = true: the filter gradient (run_dk), where PRE
// and POST say whether the u side (pregate) and the dy side (postgate) are gated.
template <int N, int DT, bool PRE, bool POST, int PAD, bool DK = false>
struct MonarchConv {
  using C = Cfg<N>;
  static constexpr int A = C::A, M = C::M, R = C::R, P = C::P, THREADS = C::THREADS, WARPS = C::WARPS;
  // dk: no staging buffers; the region after sdata is the second (dy side) working buffer
  static constexpr int RAWB = DK ? 0 : C::RAWB;
  static constexpr int AFTER_DATA = DK ? C::DATA_BYTES : C::RAW_BYTES;
  // consecutive columns per thread in the radix-R passes (registers: V * R complex values)
  // (capped so that every thread of a pair still has a column group: JN / V >= threads per pair)
  static constexpr int VR = R <= 2 ? 8 : R == 4 ? 4 : 2;
  static constexpr __host__ __device__ int vcols(int jn) {
    int v = VR;
    while (v > 2 && jn / v < THREADS / P) v /= 2;
    return v;
  }
  static constexpr bool IN_HALF = (PAD & 1) != 0;   // u (after padding) is zero on [N/2, N)
  static constexpr bool OUT_HALF = (PAD & 2) != 0;  // only outputs in [0, N/2) are stored
  // PAD 4: a two-level batch (BI < B); otherwise sequence b sits at b * stride (no division)
  static constexpr bool TWO = (PAD & 4) != 0;
  // postgate words per thread that stage_r_inv_store may hold up front for R > 1 (16 spills 2K)
  static constexpr int GPRE_WORDS = 8;
  // separate registers for the DFT-16 B fragments (make_dft16); off where it spills (16K, both
  // gates, zero-padded input: 8 bytes)
  static constexpr bool SPLIT_F = !DK && !(N >= 8192 && PRE && POST && PAD == 1) && !(R == 1 && PAD == 2);
  // The lean load and store paths (unit-uniform fast paths: cp.async runs without per-chunk
  // tests, a packed max |x|, stores without per-run tests). Off for the 16K pregated kernels,
  // which sit at 128 registers and spill with them.
  static constexpr bool LEAN = !(N == 16384 && PRE);
  // load_raw's fast path (the 32K forward, the backward): off where it spills 8 bytes
  static constexpr bool LEAN_LOAD = LEAN && !(DK && N == 8192 && DT == 1 && PRE && !POST);
  // R = 1, fp16 input: no radix-R pass at all. The raw staging buffer is laid out like sdata
  // (swizzled chunks) and the first tensor stage reads it directly: fp16 input needs no scaling
  // to enter an fp16 mma (the fp32 accumulators take any fp16 range); the pair's 2^ex is folded
  // into the twiddle that follows. (bf16 would need a bf16 mma with a split F.)
  static constexpr bool RAWIN = LEAN && !DK && R == 1 && DT == 0 && C::RAWB > 0 && !(TWO && PRE);
  static constexpr int KS0 = (IN_HALF && R == 1) ? 1 : 2;   // k-steps of the first tensor stage
  // geometry of stage_r_inv_store (S_: store pass)
  static constexpr int JN_S = (R == 1 && OUT_HALF) ? M / 2 : M;
  static constexpr int QOUT = (R > 1 && OUT_HALF) ? R / 2 : R;
  static constexpr int V_S = vcols(JN_S);
  static constexpr int UPP_S = JN_S / V_S, TPP = THREADS / P;
  // postgate of the whole iteration loaded up front (registers): R = 1, and the A = 2 sizes
  // where each thread has a single column group (512, 1K: 8 words); larger R/V spill
  static constexpr bool GPRE = R == 1 || (A == 2 && UPP_S <= TPP && QOUT * V_S <= GPRE_WORDS);
  // postgate staged in shared memory instead (2K): each thread cp.async-copies its own vector
  // runs into the raw buffer of the current unit once the radix-R pass has consumed it; the
  // buffer is then refilled one unit ahead instead of RAWB = 2 units ahead (see run()).
  static constexpr bool PSTAGE = POST && !GPRE && RAWB == 2;
  static_assert(!PSTAGE || (UPP_S <= TPP && QOUT * 2 * V_S * THREADS <= P * 2 * N),
                "staged postgate: one column group per thread, fits one raw source region");
  static constexpr int JN0 = (OUT_HALF && R == 1) ? 1 : 2;  // n-halves of the last tensor stage

  const u16* __restrict__ u;
  const u16* __restrict__ pre;
  const u16* __restrict__ kf;
  u16* __restrict__ y;
  const u16* __restrict__ post;
  // Sequence b of the batch axis is (b / BI, b % BI) of a two-level batch: element offset
  // (b / BI) * *_so + (b % BI) * *_sb (BI = B for a plain (B, H, L) operand).
  long long u_sb, u_sh, pre_sb, pre_sh, y_sb, y_sh, post_sb, post_sh;
  long long u_so, pre_so, y_so, post_so;
  int B, H, L, out_offset, Lout, BI;
  // Frequency-sparse (A = 3). Tile q * 16 + k0 of the spectrum holds one frequency class,
  // (q + R k0) mod 16. tiles[0, KC) run through the core; tiles[KC, KC + KZ) are zeroed classes
  // of live sub-transforms (zero-filled, the last forward stage reads every k0); sub-transform
  // q (the radix-R output digit) is live iff bit q of qlive is set; a dead one (all its tiles
  // zeroed) is zero-filled by the first tensor stage and skips the others.
  // Dense: KC >= R * 16 (tiles unused), qlive all ones.
  const int* __restrict__ tiles;
  int KC, KZ, qlive;
  __device__ __forceinline__ bool live(int q) const { return (qlive >> q) & 1; }
  int nBP, npairs;

  u16* sdata;
  u16* sraw;     // raw staging buffers (RAWB > 0)
  const cf* T0;  // exp(-2 pi i k / N), k < 64
  const cf* T1;  // exp(-2 pi i 64 k / N), k < N / 64
  u32* red;      // per-warp max |x| bits
  int tid, lane, warp, g, t;

  // The two batch rows (b0, b0 + 1) of a pair, split once per unit (one division). Scalars,
  // not arrays: indexing by a run-time plane would put an array on the stack.
  struct Rows {
    int q0, r0, q1, r1;  // TWO: (outer, inner) index of b0 and b0 + 1; else r0 = b0
    __device__ __forceinline__ long long off(int plane, long long sb, long long so) const {
      if constexpr (!TWO) return (long long)(r0 + plane) * sb;
      return plane ? (long long)q1 * so + (long long)r1 * sb : (long long)q0 * so + (long long)r0 * sb;
    }
  };
  __device__ __forceinline__ Rows rows_of(int b0) const {
    Rows w;
    if constexpr (!TWO) {
      w.q0 = w.q1 = w.r1 = 0;
      w.r0 = b0;
      return w;
    }
    w.q0 = b0 / BI;
    w.r0 = b0 - w.q0 * BI;
    const bool wrap = w.r0 + 1 == BI;
    w.q1 = w.q0 + wrap;
    w.r1 = wrap ? 0 : w.r0 + 1;
    return w;
  }

  Dft16 F;
  // (DK: both twiddle sets live in shared memory instead, wtab, to leave registers to the
  // second side's tile; see w256 / w4096)
  cf W256[DK ? 1 : 8];   // 0.25 * w_256^(row*col) for this lane's tile elements
  // 0.25 * w_4096^(row*(col + 16*warp)) (A == 3 only): the stage-0 twiddle of this lane's tile
  // elements for n1 = warp, row twiddle folded in (n1 = warp + 8 multiplies by w_32^row)
  cf W4096[DK ? 1 : 8];
  cf* wtab;  // DK: [8][32] W256 values, then (A = 3) [WARPS][8][32] W4096 values (lane fastest)
  static constexpr int WTAB_BYTES = DK ? (8 + (A == 3 ? 8 * WARPS : 0)) * 32 * 8 : 0;
  // DK, A = 2: each warp's running batch sum of one 256-point row, [WARPS][4][32] float4 (lane
  // fastest: conflict-free), in shared memory rather than 16 more registers per thread
  static constexpr int ASUM_BYTES = DK && A == 2 ? WARPS * 256 * 8 : 0;
  float4* asum;
  __device__ __forceinline__ cf w256(int e) const {
    if constexpr (DK) return wtab[e * 32 + lane];
    else return W256[e];
  }
  __device__ __forceinline__ cf w4096(int e) const {
    if constexpr (DK) return wtab[256 + (warp * 8 + e) * 32 + lane];
    else return W4096[e];
  }

  // exp(-2 pi i p / N), exact integer phase reduction, two accurate table entries.
  __device__ __forceinline__ cf tw(int p) const {
    p &= N - 1;
    return cmul(T1[p >> 6], T0[p & 63]);
  }
  __device__ __forceinline__ int sidx(int p, int q, int plane, int m) const {
    return ((p * R + q) * 2 + plane) * M + swz(m);
  }
  __device__ __forceinline__ u32 sdata_addr(int p, int q, int plane, int m) const {
    return smem_u32(sdata + sidx(p, q, plane, m));
  }
  __device__ __forceinline__ int tile_row(int e) const { return g + 8 * ((e & 3) >> 1); }
  __device__ __forceinline__ int tile_col(int e) const { return 8 * (e >> 2) + 2 * t + (e & 1); }

  // Power-of-two scale exponent E of pair p: max |x| * 2^E in [1, 2).
  __device__ __forceinline__ int pair_exp(int p) const { return pair_exp(red, p); }
  __device__ __forceinline__ int pair_exp(const u32* rd, int p) const {
    constexpr int WPP = WARPS / P;
    u32 m = 0;
#pragma unroll
    for (int w = 0; w < WPP; ++w) m = max(m, rd[p * WPP + w]);
    const float f = Dt<DT>::one((u16)m);
    if (!(f > 0.f)) return 0;
    const int ex = (int)((__float_as_uint(f) >> 23) & 0xff);
    return min(max(127 - ex, -126), 126);
  }

  // ------------------------------------------------------------------------------------------
  __device__ __forceinline__ void setup(unsigned char* smem) {
    sdata = (u16*)smem;
    sraw = (u16*)(smem + C::DATA_BYTES);
    cf* t0 = (cf*)(smem + C::DATA_BYTES + AFTER_DATA);
    cf* t1 = t0 + 64;
    red = (u32*)(t1 + C::TBL1);
    wtab = (cf*)(red + 2 * WARPS);  // DK only (8-byte aligned: TBL and WARPS are even)
    asum = (float4*)(wtab + WTAB_BYTES / 8);  // DK, A = 2 (16-byte aligned: WARPS is even)
    T0 = t0;
    T1 = t1;
    tid = threadIdx.x;
    lane = tid & 31;
    warp = tid >> 5;
    g = lane >> 2;
    t = lane & 3;
    for (int k = tid; k < 64 + C::TBL1; k += THREADS) {
      const int ph = k < 64 ? k : 64 * (k - 64);
      double s, c;
      sincospi(-2.0 * (double)ph / (double)N, &s, &c);
      if (k < 64)
        t0[k] = {(float)c, (float)s};
      else
        t1[k - 64] = {(float)c, (float)s};
    }
    __syncthreads();
    // B >> 31 is 0 for every launch that has work (B >= 1)
    F = make_dft16<SPLIT_F>(lane, [&](int m) { return tw(m * (N / 16)); }, (u32)(B >> 31));
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int rc = tile_row(e) * tile_col(e);
      const cf w1 = cscale(tw((rc & 255) * (N / 256)), 0.25f);
      const cf w2 = A == 3 ? cscale(tw(((tile_row(e) * (tile_col(e) + 16 * warp)) & 4095) * (N / 4096)), 0.25f)
                           : cf{0.f, 0.f};
      if constexpr (DK) {  // (W256 is written by warp 0 for every warp: barrier below)
        if (warp == 0) wtab[e * 32 + lane] = w1;
        if (A == 3) wtab[256 + (warp * 8 + e) * 32 + lane] = w2;
      } else {
        W256[e] = w1;
        if (A == 3) W4096[e] = w2;
      }
    }
    if constexpr (DK) __syncthreads();
  }

  // ------------------------------------------------------------------------------------------
  // Running max |x| bits over a chunk: PACKED keeps one maximum per 16-bit half (absmax2),
  // folded by absmax_fold at the end; otherwise a single maximum (absmax_bits).
  template <bool PACKED>
  static __device__ __forceinline__ u32 chunk_absmax(u32 m, const uint4& v) {
    if constexpr (PACKED) {
      return absmax2(absmax2(absmax2(absmax2(m, v.x), v.y), v.z), v.w);
    } else {
      return absmax_bits(absmax_bits(absmax_bits(absmax_bits(m, v.x), v.y), v.z), v.w);
    }
  }
  template <bool PACKED>
  static __device__ __forceinline__ u32 absmax_fold(u32 m) {
    return PACKED ? max(m & 0xffffu, m >> 16) : m;
  }
  // ------------------------------------------------------------------------------------------
  // L0: global -> smem raw copy of x = (pre *) u, zero padded; per-warp max |x|.
  template <bool GATE = PRE>
  __device__ __forceinline__ void load_raw(int unit) {
    constexpr int TPP = THREADS / P, CH = CH_IN;
    const int p = tid / TPP, lt = tid % TPP;
    const int pair = unit * P + p;
    u32 mx = 0;
    if (pair < npairs) {
      const int h = pair / nBP, b0 = 2 * (pair % nBP);
      const Rows rw = rows_of(b0);
      // Whole pair in range with 16-byte aligned rows: 16-byte loads with no per-chunk tests
      // (as issue_load's fast path; plane 1's row is plane 0's plus the batch stride). (The
      // same few lines as there, on purpose: moving them into a shared helper changed the
      // register allocation of these kernels, which sit at 128 registers.)
      const u16* const u0 = u + rw.off(0, u_sb, u_so) + h * u_sh;
      const long long du = TWO ? rw.off(1, u_sb, u_so) - rw.off(0, u_sb, u_so) : u_sb;
      const u16* const g0 = GATE ? pre + rw.off(0, pre_sb, pre_so) + h * pre_sh : nullptr;
      const long long dg = GATE ? (TWO ? rw.off(1, pre_sb, pre_so) - rw.off(0, pre_sb, pre_so) : pre_sb) : 0;
      const unsigned long long al = (unsigned long long)u0 | (unsigned long long)(u0 + du) |
                                    (GATE ? (unsigned long long)g0 | (unsigned long long)(g0 + dg) : 0ull);
      if (LEAN_LOAD && b0 + 1 < B && L >= 8 * CH && (al & 15) == 0) {
        u32 m2 = 0;
#pragma unroll 4
        for (int ci = lt; ci < 2 * CH; ci += TPP) {
          const int plane = ci >= CH;
          const int n = (ci - plane * CH) * 8;
          uint4 v = ldg_stream16(u0 + (plane ? du : 0) + n);
          if (GATE) {
            const uint4 gv = ldg_stream16(g0 + (plane ? dg : 0) + n);
            gate_chunk<DT>(v, gv);
          }
          m2 = chunk_absmax<true>(m2, v);
          *(uint4*)(sdata + sidx(p, n / M, plane, n % M)) = v;
        }
        mx = absmax_fold<true>(m2);
      } else {
#pragma unroll 4
        for (int ci = lt; ci < 2 * CH; ci += TPP) {
          const int plane = ci >= CH;
          const int n = (ci - plane * CH) * 8;
          const int b = b0 + plane;
          uint4 v = make_uint4(0u, 0u, 0u, 0u);
          if (b < B) {
            const u16* row = u + rw.off(plane, u_sb, u_so) + h * u_sh;
            v = load_chunk8(row, n, L, ((unsigned long long)row & 15) == 0);
            if (GATE) {
              const u16* prow = pre + rw.off(plane, pre_sb, pre_so) + h * pre_sh;
              const uint4 gv = load_chunk8(prow, n, L, ((unsigned long long)prow & 15) == 0);
              gate_chunk<DT>(v, gv);
            }
            mx = chunk_absmax<false>(mx, v);
          }
          *(uint4*)(sdata + sidx(p, n / M, plane, n % M)) = v;
        }
      }
    }
    mx = __reduce_max_sync(0xffffffffu, mx);
    if (lane == 0) red[warp] = mx;
  }

  // ------------------------------------------------------------------------------------------
  // L0 (RAWB > 0): asynchronous global -> raw staging copy of u (and pre) of one unit.
  // Chunks that cannot go through cp.async (row not 16-byte aligned) are loaded synchronously.
  __device__ __forceinline__ u16* raw_ptr(int buf, int src, int p, int plane) const {
    return sraw + ((buf * 2 + src) * P + p) * (2 * N) + plane * N;
  }
  // Element n (a multiple of 8) of a raw plane: swizzled like sdata when RAWIN.
  static __device__ __forceinline__ int raw_at(int n) { return RAWIN ? swz(n) : n; }
  // The 16-byte chunks of both planes' loaded length (N, or N / 2 when IN_HALF) that thread lt
  // of a pair copies (issue_load) and then prepares (prep_raw): chunk lt + i * TPP, i <
  // chunk_iters(), as (plane, first element); plane is a constant per i where CH % TPP == 0.
  static constexpr int CH_IN = (IN_HALF ? N / 2 : N) / 8;
  static constexpr __host__ __device__ int chunk_iters() { return 2 * CH_IN / (THREADS / P); }
  static_assert((2 * CH_IN) % (THREADS / P) == 0, "every thread of a pair copies the same chunk count");
  static __device__ __forceinline__ void chunk_of(int lt, int i, int& plane, int& n) {
    constexpr int TPP = THREADS / P;
    if constexpr (CH_IN % TPP == 0) {
      plane = i >= CH_IN / TPP;
      n = (lt + (i - plane * (CH_IN / TPP)) * TPP) * 8;
    } else {
      const int ci = lt + i * TPP;
      plane = ci >= CH_IN;
      n = (ci - plane * CH_IN) * 8;
    }
  }
  __device__ __forceinline__ void issue_load(int unit, int buf, int nunits) {
    if (unit >= nunits) return;
    const int p = tid / (THREADS / P), lt = tid % (THREADS / P);
    const int pair = unit * P + p;
    const bool live = pair < npairs;
    const int h = live ? pair / nBP : 0, b0 = live ? 2 * (pair % nBP) : 0;
    const Rows rw = rows_of(b0);
    // Whole pair in range with 16-byte aligned rows (the usual case): straight cp.async runs,
    // no per-chunk tests. Plane 1's row is plane 0's plus a step that, for a plain batch, is
    // the batch stride itself (a kernel parameter, so no register holds it).
    const u16* const u0 = u + rw.off(0, u_sb, u_so) + h * u_sh;
    const long long du = TWO ? rw.off(1, u_sb, u_so) - rw.off(0, u_sb, u_so) : u_sb;
    const u16* const p0 = PRE ? pre + rw.off(0, pre_sb, pre_so) + h * pre_sh : nullptr;
    const long long dp = PRE ? (TWO ? rw.off(1, pre_sb, pre_so) - rw.off(0, pre_sb, pre_so) : pre_sb) : 0;
    const unsigned long long al = (unsigned long long)u0 | (unsigned long long)(u0 + du) |
                                  (PRE ? (unsigned long long)p0 | (unsigned long long)(p0 + dp) : 0ull);
    if (LEAN && live && b0 + 1 < B && L >= 8 * CH_IN && (al & 15) == 0) {
      const u32 d0 = smem_u32(raw_ptr(buf, 0, p, 0));
#pragma unroll 4
      for (int i = 0; i < chunk_iters(); ++i) {
        int plane, n;
        chunk_of(lt, i, plane, n);
        cp_async16(d0 + 2 * (plane * N + raw_at(n)), u0 + (plane ? du : 0) + n, 16);
        if (PRE) cp_async16(d0 + 2 * (P * 2 * N + plane * N + raw_at(n)), p0 + (plane ? dp : 0) + n, 16);
      }
      return;
    }
#pragma unroll 4
    for (int ci = lt; ci < 2 * CH_IN; ci += THREADS / P) {
      const int plane = ci >= CH_IN;
      const int n = (ci - plane * CH_IN) * 8;
      const int b = b0 + plane;
#pragma unroll
      for (int src = 0; src < (PRE ? 2 : 1); ++src) {
        u16* dst = raw_ptr(buf, src, p, plane) + raw_at(n);
        if (!live || b >= B || n >= L) {
          *(uint4*)dst = make_uint4(0u, 0u, 0u, 0u);
          continue;
        }
        const u16* row = src ? pre + rw.off(plane, pre_sb, pre_so) + h * pre_sh
                             : u + rw.off(plane, u_sb, u_so) + h * u_sh;
        // Whole 16-byte chunks only: a zero-filled partial cp.async still addresses 16 bytes,
        // past the end of u for the last row (compute-sanitizer memcheck).
        if (((unsigned long long)row & 15) == 0 && n + 8 <= L) {
          cp_async16(smem_u32(dst), row + n, 16);
        } else {
          *(uint4*)dst = load_chunk8(row, n, L, false);
        }
      }
    }
  }

  // After the copies of this unit landed: x = pre * u (rounded to the input type, in place) and
  // the per-warp max |x|, over this thread's own chunks (the ones it copied).
  __device__ __forceinline__ void prep_raw(int buf) {
    const int p = tid / (THREADS / P), lt = tid % (THREADS / P);
    u32 m2 = 0;  // per-half max |x| bits, packed
#pragma unroll 4
    for (int ci = lt; ci < 2 * CH_IN; ci += THREADS / P) {
      const int plane = ci >= CH_IN;
      const int n = (ci - plane * CH_IN) * 8;
      uint4* dst = (uint4*)(raw_ptr(buf, 0, p, plane) + raw_at(n));
      uint4 v = *dst;
      if (PRE) {
        const uint4 gv = *(const uint4*)(raw_ptr(buf, 1, p, plane) + raw_at(n));
        gate_chunk<DT>(v, gv);
        *dst = v;
      }
      m2 = chunk_absmax<LEAN>(m2, v);
    }
    u32 mx = absmax_fold<LEAN>(m2);
    mx = __reduce_max_sync(0xffffffffu, mx);
    if (lane == 0) red[warp] = mx;
  }

  // ------------------------------------------------------------------------------------------
  // L1: radix-R stage in fp32 (+ scale + twiddle w_N^(k*m)), in place, to fp16.
  // Source: the raw staging buffer buf (RAWB > 0) or sdata itself (RAWB == 0).
  // Each thread handles V consecutive columns j..j+V-1 (V-element smem accesses, one chunk of a
  // swizzled plane); the twiddle of column j+jj is w_N^(k j) * w_N^(k jj), one table lookup per k.
  __device__ __forceinline__ void stage_r_fwd(int buf, int ex) {
    constexpr int JN = (R == 1 && IN_HALF) ? M / 2 : M;
    constexpr int RIN = (R > 1 && IN_HALF) ? R / 2 : R;
    constexpr int V = vcols(JN);
    constexpr int UPP = JN / V, TPP = THREADS / P;
    const int p = tid / TPP;
    const float sc = __uint_as_float((u32)(ex + 127) << 23);
    const u16* rr0 = RAWB > 0 ? raw_ptr(buf, 0, p, 0) : nullptr;
    for (int ui = tid % TPP; ui < UPP; ui += TPP) {
      const int j = V * ui;
      cf x[V][R];
#pragma unroll
      for (int q = 0; q < R; ++q) {
        if (q < RIN) {
          u32 wr[V / 2], wi[V / 2];
          lds_v<V>(wr, RAWB > 0 ? rr0 + q * M + j : sdata + sidx(p, q, 0, j));
          lds_v<V>(wi, RAWB > 0 ? rr0 + N + q * M + j : sdata + sidx(p, q, 1, j));
#pragma unroll
          for (int v = 0; v < V / 2; ++v) {
            x[2 * v][q] = {Dt<DT>::lo(wr[v]), Dt<DT>::lo(wi[v])};
            x[2 * v + 1][q] = {Dt<DT>::hi(wr[v]), Dt<DT>::hi(wi[v])};
          }
        } else {
#pragma unroll
          for (int jj = 0; jj < V; ++jj) x[jj][q] = {0.f, 0.f};
        }
      }
#pragma unroll
      for (int jj = 0; jj < V; ++jj) SmallDft<R, false>::run(x[jj]);
#pragma unroll
      for (int k = 0; k < R; ++k) {
        if (k == 0) {
#pragma unroll
          for (int jj = 0; jj < V; ++jj) x[jj][0] = cscale(x[jj][0], sc);
        } else {
          cf w = cscale(tw(k * j), sc);
          const cf st = T0[k];
#pragma unroll
          for (int jj = 0; jj < V; ++jj) {
            x[jj][k] = cmul(x[jj][k], w);
            if (jj + 1 < V) w = cmul(w, st);
          }
        }
        u32 wr[V / 2], wi[V / 2];
#pragma unroll
        for (int v = 0; v < V / 2; ++v) {
          wr[v] = pack_h2(x[2 * v][k].x, x[2 * v + 1][k].x);
          wi[v] = pack_h2(x[2 * v][k].y, x[2 * v + 1][k].y);
        }
        sts_v<V>(sdata + sidx(p, k, 0, j), wr);
        sts_v<V>(sdata + sidx(p, k, 1, j), wi);
      }
    }
  }

  // ------------------------------------------------------------------------------------------
  // B tile of rows "row0 + rstride * (8s + 0..7)", columns col0 + 0..15 of pair p, row q.
  template <int KS>
  __device__ __forceinline__ BTile load_btile(int p, int q, int rbase, int rstride) const {
    return load_btile<KS>(sdata, p, q, rbase, rstride);
  }
  // ... from another buffer laid out like sdata (RAWIN: the raw staging buffer)
  template <int KS>
  __device__ __forceinline__ BTile load_btile(const u16* base, int p, int q, int rbase, int rstride) const {
    BTile x;
    const int mi = lane >> 3, rr = lane & 7;
    const int plane = mi & 1, hcol = mi >> 1;
    // k-step s adds 8 rstride: chunk bit 4 (rstride 16, rbase a multiple of 256) or bit 8
    // (rstride 256), outside the swizzle's XOR source bits: one swizzle per call.
    const u32 a0 = smem_u32(base + sidx(p, q, plane, rbase + rstride * rr + 8 * hcol));
#pragma unroll
    for (int s = 0; s < KS; ++s) {
      u32 d[4];
      ldsm_x4_t(d, a0 + 2 * 8 * rstride * s);
      x.b[s][0][0] = d[0];
      x.b[s][0][1] = d[1];
      x.b[s][1][0] = d[2];
      x.b[s][1][1] = d[3];
    }
    if (KS == 1) {
#pragma unroll
      for (int j = 0; j < 2; ++j) x.b[1][j][0] = x.b[1][j][1] = 0u;
    }
    return x;
  }

  // Store tile element (row, col..col+1) pairs of a CTile (rows = row digit) into smem at
  // m = rbase + rstride * row + col, conjugating if CONJ. Scale applied by the caller.
  template <bool CONJ>
  __device__ __forceinline__ void store_ctile(const CTile& c, int p, int q, int rbase, int rstride) {
    const float si = CONJ ? -1.f : 1.f;
    // One swizzle per call: the chunk of m00 = rbase + rstride * g + 2t is even (rbase and
    // rstride * g are multiples of 16), so +8 (j = 1) flips chunk bit 0 (swz: ^ 8); + 8 rstride
    // (hh = 1) sets chunk bit 4 (rstride 16, rbase multiple of 256: bit 4 clear before) or bit 8
    // (rstride 256), neither of which is in the XOR source bits 3, 5..7 (swz: + 8 rstride).
    __syncwarp();  // tiles are rewritten in place: every lane's reads before any lane's writes
    u16* base = sdata + (p * R + q) * 2 * M;
    const int s00 = swz(rbase + rstride * g + 2 * t);
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        u16* d = base + ((s00 ^ (8 * j)) + 8 * rstride * hh);
        *(u32*)d = pack_h2(c.r[j][2 * hh], c.r[j][2 * hh + 1]);
        *(u32*)(d + M) = pack_h2(si * c.i[j][2 * hh], si * c.i[j][2 * hh + 1]);
      }
  }

  // Last inverse stage output: c has rows = low digit (stride 1), cols = most significant
  // radix-16 digit n0 (stride M/16), already conjugated (cdft_adata's CONJ_OUT); stores c
  // transposed, n-halves 0..JN-1.
  template <int JN>
  __device__ __forceinline__ void store_last(const CTile& c, int p, int q, int cbase) {
    // One swizzle per call: m0 = (M/16) g + cbase + 2t has an even chunk (cbase = 16 n1), m0 + 8
    // flips chunk bit 0 (swz: ^ 8); + (M/16) * 8 j sets chunk bit 4 (M = 256: clear before, as
    // the chunk is < 16) or bit 8 (M = 4096), outside the XOR source bits 3, 5..7.
    __syncwarp();  // tiles are rewritten in place: every lane's reads before any lane's writes
    u16* base = sdata + (p * R + q) * 2 * M;
    const int s0 = swz((M / 16) * g + cbase + 2 * t);
#pragma unroll
    for (int j = 0; j < JN; ++j) {
      const u32 r0 = movt(pack_h2(c.r[j][0], c.r[j][1]));
      const u32 r1 = movt(pack_h2(c.r[j][2], c.r[j][3]));
      const u32 i0 = movt(pack_h2(c.i[j][0], c.i[j][1]));
      const u32 i1 = movt(pack_h2(c.i[j][2], c.i[j][3]));
      u16* d0 = base + (s0 + (M / 2) * j);
      u16* d1 = base + ((s0 ^ 8) + (M / 2) * j);
      *(u32*)d0 = r0;
      *(u32*)d1 = r1;
      *(u32*)(d0 + M) = i0;
      *(u32*)(d1 + M) = i1;
    }
  }

  // Tile `tile` (256 values, 512 halves) of a kernel-order filter spectrum, in the row of pair
  // `pair`'s channel.
  __device__ __forceinline__ const u16* ktile(const u16* spec, int pair, int tile) const {
    return spec + (long long)(pair / nBP) * C::KSTRIDE + tile * 512;
  }
  // This lane's 8 filter-spectrum values of one tile (fp16 complex, lane-major); issued early.
  struct KFrag {
    uint4 a, b;
  };
  __device__ __forceinline__ KFrag load_kfrag(const u16* ktile) const {
    return {__ldg((const uint4*)(ktile + 16 * lane)), __ldg((const uint4*)(ktile + 16 * lane + 8))};
  }
  // Pointwise multiply by the filter spectrum.
  __device__ __forceinline__ void mul_filter(CTile& c, const KFrag& kq) const {
    const u32 kw[8] = {kq.a.x, kq.a.y, kq.a.z, kq.a.w, kq.b.x, kq.b.y, kq.b.z, kq.b.w};
#pragma unroll
    for (int e = 0; e < 8; ++e) ctile_set(c, e, cmul(ctile_get(c, e), {h2lo(kw[e]), h2hi(kw[e])}));
  }

  // ------------------------------------------------------------------------------------------
  // Middle of the chain for one 256-point tile: two forward radix-16 stages (the first from smem),
  // * K, two inverse stages. Returns P (see below) as an HTile in A layout, rows = first digit.
  //   fwd:  X (rows d0, cols d1) -F-> rows k0 -W-> -F-> Z (rows k0, cols k1) -*K->
  //   inv:  -conj F-> rows k0, cols n1 -> Pt = (result * W) ; true value = conj(Pt)
  // The forward half: Z of one 256-point tile (rows k0, cols k1), scaled by 2^(ex - 4).
  template <int KS>
  __device__ __forceinline__ CTile spectrum_tile(int p, int q, int rbase, int rstride) const {
    return spectrum_tile<KS, false>(sdata, p, q, rbase, rstride, 1.f);
  }
  // SCALED (RAWIN): base holds the unscaled input; sc = 2^ex rides on the twiddle.
  template <int KS, bool SCALED>
  __device__ __forceinline__ CTile spectrum_tile(const u16* base, int p, int q, int rbase, int rstride,
                                                 float sc) const {
    CTile c;
    {
      const BTile x = load_btile<KS>(base, p, q, rbase, rstride);
      cdft_bdata<KS>(c, F, x);
    }
#pragma unroll
    for (int e = 0; e < 8; ++e) ctile_set(c, e, cmul(ctile_get(c, e), SCALED ? cscale(w256(e), sc) : w256(e)));
    const HTile hy = ctile_pack<false>(c);
    cdft_adata<false, 2>(c, F, hy);
    return c;
  }
  template <int KS>
  __device__ __forceinline__ HTile core_pair(int p, int q, int rbase, int rstride, const KFrag& kq) {
    return inverse_pair(spectrum_tile<KS>(p, q, rbase, rstride), kq);
  }
  // The inverse half: * K, two inverse radix-16 stages' worth (see core_pair).
  __device__ __forceinline__ HTile inverse_pair(CTile c, const KFrag& kq) const {
    mul_filter(c, kq);
    HTile hy = ctile_pack<false>(c);
    cdft_adata<true, 2>(c, F, hy);   // conj of the true inverse DFT
#pragma unroll
    for (int e = 0; e < 8; ++e) ctile_set(c, e, cmul(ctile_get(c, e), w256(e)));
    return ctile_pack<false>(c);     // = conj(true value)
  }

  // ------------------------------------------------------------------------------------------
  // Filter tile of this warp's first item of a unit (issued at the top of the unit, so its
  // latency hides behind the load and radix-R phases).
  __device__ __forceinline__ const u16* ktile_first(int unit) const {
    if constexpr (A == 3) {
      return ktile_a3(unit, warp);
    } else {
      const int p = warp / R, q = warp % R;
      return ktile(kf, min(unit * P + p, npairs - 1), q);
    }
  }

  __device__ __forceinline__ void core_a2(int unit, const KFrag& kfirst, const u16* rawbase) {
    for (int item = warp; item < P * R; item += WARPS) {
      const int p = item / R, q = item % R;
      KFrag kq = kfirst;
      if (item != warp) {
        const int pair = min(unit * P + p, npairs - 1);
        kq = load_kfrag(ktile(kf, pair, q));
      }
      if constexpr (RAWIN) {
        const float sc = __uint_as_float((u32)(pair_exp(p) + 127) << 23);
        last_a2(inverse_pair(spectrum_tile<KS0, true>(rawbase, p, q, 0, 16, sc), kq), p, q);
      } else {
        last_a2(core_pair<KS0>(p, q, 0, 16, kq), p, q);
      }
    }
  }
  // A = 2, pc: rows k0, cols n1, conjugated (core_pair's result). The last stage over n0:
  // true = conj( conj(Y^T) F ) = conj( pc^T F ); rows n1, cols n0.
  __device__ __forceinline__ void last_a2(const HTile& pc, int p, int q) {
    HTile pt;
    afrag_transpose(pt.r, pc.r);
    afrag_transpose(pt.i, pc.i);
    CTile c;
    cdft_adata<false, JN0, true>(c, F, pt);
    store_last<JN0>(c, p, q, 0);
  }

  __device__ __forceinline__ void stage0_fwd_a3(int unit, const u16* rawbase = nullptr, int ex = 0) {
    const float sc = RAWIN ? __uint_as_float((u32)(ex + 127) << 23) : 1.f;
    for (int item = warp; item < P * R * 16; item += WARPS) {
      const int p = item / (R * 16), q = (item / 16) % R, n1 = item % 16;
      if (R > 1 && !live(q)) {
        // A dead sub-transform: zeros, which the later tensor phases leave alone and the
        // inverse radix-R pass reads back.
        CTile z;
#pragma unroll
        for (int e = 0; e < 8; ++e) ctile_set(z, e, cf{0.f, 0.f});
        store_ctile<false>(z, p, q, 16 * n1, 256);
        continue;
      }
      CTile c;
      const BTile x = load_btile<KS0>(RAWIN ? rawbase : sdata, p, q, 16 * n1, 256);
      cdft_bdata<KS0>(c, F, x);  // rows k0, cols n2
      // twiddle w_4096^(k0 (16 n1 + n2)) * 0.25; W4096 holds it for n1 = warp. Items run with
      // n1 = item % 16 in {warp, warp + 8} (WARPS = 8 or 16): n1 = warp + 8 adds w_32^row,
      // w_32^g for rows g and w_32^g * (-i) for rows g + 8.
      static_assert(WARPS == 8 || WARPS == 16, "stage0 twiddle folding assumes 8 or 16 warps");
      if (WARPS == 16 || n1 == warp) {
#pragma unroll
        for (int e = 0; e < 8; ++e) ctile_set(c, e, cmul(ctile_get(c, e), RAWIN ? cscale(w4096(e), sc) : w4096(e)));
      } else {
        const cf z0 = RAWIN ? cscale(tw(g * (N / 32)), sc) : tw(g * (N / 32));
        const cf z1 = mul_mi<false>(z0);
#pragma unroll
        for (int e = 0; e < 8; ++e) ctile_set(c, e, cmul(ctile_get(c, e), cmul(w4096(e), (e & 2) ? z1 : z0)));
      }
      store_ctile<false>(c, p, q, 16 * n1, 256);
    }
  }

  __device__ __forceinline__ const u16* ktile_a3(int unit, int item) const {
    const int p = item / (R * 16), tile = item % (R * 16);
    const int pair = min(unit * P + p, npairs - 1);
    return ktile(kf, pair, tile);
  }

  // One 256-point tile (p, q, k0) through the middle of the chain, back into smem.
  __device__ __forceinline__ void core_item(int p, int q, int k0, const KFrag& kq) {
    finish_item(core_pair<2>(p, q, 256 * k0, 16, kq), p, q, k0);
  }
  // pc: rows k1, cols n2, conjugated (core_pair's result)
  __device__ __forceinline__ void finish_item(const HTile& pc, int p, int q, int k0) {
    // stage over k1: true = conj( F conj(Y) ) = conj(F pc); B operand from pc transposed.
    const BTile x = htile_to_b(pc);
    CTile c;
    cdft_bdata<2>(c, F, x);  // rows n1, cols n2 (conjugated)
    // inverse twiddle conj(w_4096^(k0 (16 n1 + n2))) * 0.25 -> conj(c * w) * 0.25
    // element (row g + 8 hh, col 8 j + 2 t + cc): exponent k0 (16 g + 2 t) + k0 (128 hh + 8 j + cc)
    // = per-lane base times warp-uniform factors a1^cc a8^j a128^hh (4 table lookups, not 6)
    cf w[8];
    w[0] = cscale(tw(((k0 * (16 * g + 2 * t)) & 4095) * (N / 4096)), 0.25f);  // e = 0
    {
      const cf a1 = tw(k0 * (N / 4096)), a8 = tw(8 * k0 * (N / 4096)), a128 = tw(128 * k0 * (N / 4096));
      w[1] = cmul(w[0], a1);  // cc = 1
      w[4] = cmul(w[0], a8);  // j = 1
      w[5] = cmul(w[4], a1);
#pragma unroll
      for (int e = 0; e < 8; ++e)
        if (e & 2) w[e] = cmul(w[e & ~2], a128);  // hh = 1
    }
#pragma unroll
    for (int e = 0; e < 8; ++e) ctile_set(c, e, cmul(ctile_get(c, e), w[e]));
    store_ctile<true>(c, p, q, 256 * k0, 16);
  }

  __device__ __forceinline__ void core_a3(int unit, const KFrag& kfirst) {
    constexpr int ITEMS = P * R * 16;
    if (KC < R * 16) {  // a sparse schedule (KC >= R * 16: dense)
      core_a3_sparse(unit);
      return;
    }
    KFrag knext = kfirst;  // filter tiles run one item ahead
    for (int item = warp; item < ITEMS; item += WARPS) {
      // (16 warps: k0 = warp for every item, so the twiddles in core_item are loop-invariant)
      const int p = item / (R * 16), q = (item / 16) % R, k0 = WARPS == 16 ? warp : item % 16;
      const KFrag kq = knext;
      if (item + WARPS < ITEMS) knext = load_kfrag(ktile_a3(unit, item + WARPS));
      core_item(p, q, k0, kq);
    }
  }

  // Frequency-sparse: only the KC kept tiles of each pair run (spread evenly over the warps);
  // the others are zeroed, since the last forward stage (stage0_inv) reads every k0.
  __device__ __forceinline__ const u16* ktile_sparse(int unit, int j) const {
    const int pair = min(unit * P + j / KC, npairs - 1);
    return ktile(kf, pair, __ldg(tiles + j % KC));
  }
  __device__ __forceinline__ void core_a3_sparse(int unit) {
    const int items = P * KC;
    KFrag knext;
    if (warp < items) knext = load_kfrag(ktile_sparse(unit, warp));
    for (int j = warp; j < items; j += WARPS) {
      const int tile = __ldg(tiles + j % KC);
      const KFrag kq = knext;
      if (j + WARPS < items) knext = load_kfrag(ktile_sparse(unit, j + WARPS));
      core_item(j / KC, tile / 16, tile % 16, kq);
    }
    const int zeros = P * KZ;
    for (int j = warp; j < zeros; j += WARPS) {
      const int tile = __ldg(tiles + KC + j % KZ);
      CTile c;
#pragma unroll
      for (int e = 0; e < 8; ++e) ctile_set(c, e, cf{0.f, 0.f});
      store_ctile<true>(c, j / KZ, tile / 16, 256 * (tile % 16), 16);
    }
  }

  __device__ __forceinline__ void stage0_inv_a3() {
    for (int item = warp; item < P * R * 16; item += WARPS) {
      const int p = item / (R * 16), q = (item / 16) % R, n1 = item % 16;
      if (R > 1 && !live(q)) continue;
      // A operand = Y^T (rows n2, cols k0) straight from smem with transposing loads
      HTile yt;
      const int mi = lane >> 3, rr = lane & 7;
      const int k0 = rr + 8 * (mi >> 1), hcol = mi & 1;
      ldsm_x4_t(yt.r, sdata_addr(p, q, 0, 256 * k0 + 16 * n1 + 8 * hcol));
      ldsm_x4_t(yt.i, sdata_addr(p, q, 1, 256 * k0 + 16 * n1 + 8 * hcol));
      CTile c;
      cdft_adata<true, JN0, true>(c, F, yt);  // true value; rows n2, cols n0
      store_last<JN0>(c, p, q, 16 * n1);
    }
  }

  // ------------------------------------------------------------------------------------------
  // S: inverse radix-R stage, unscale, postgate, crop, store.
  // eh: the filter-spectrum exponent of this thread's pair (loaded early by the caller).
  // Each thread handles V consecutive columns; a (q, plane) run of V outputs that lies inside
  // [0, Lout) with V-element-aligned rows goes out as one vector store (its postgate as one
  // vector load, issued before the smem reads); anything else takes a per-element path.
  // PSTAGE: this thread's postgate runs of unit (the ones stage_r_inv_store takes as vectors)
  // -> shared memory at word ((q * 2 + plane) * THREADS + tid) * V / 2 of raw buffer buf.
  __device__ __forceinline__ const u16* post_stage(int buf, int q, int plane) const {
    return raw_ptr(buf, 0, 0, 0) + ((q * 2 + plane) * THREADS + tid) * V_S;
  }
  __device__ __forceinline__ void issue_post(int unit, int buf) {
    constexpr int V = V_S;
    const int p = tid / TPP, ui = tid % TPP;
    const int pair = unit * P + p;
    if (pair >= npairs || ui >= UPP_S) return;
    const int h = pair / nBP, b0 = 2 * (pair % nBP);
    const Rows rw = rows_of(b0);
    const int j = V * ui;
#pragma unroll
    for (int plane = 0; plane < 2; ++plane) {
      // same test as vok[] in stage_r_inv_store
      const u16* yr = y + rw.off(plane, y_sb, y_so) + h * y_sh;
      const u16* pr = post + rw.off(plane, post_sb, post_so) + h * post_sh;
      const unsigned long long ya = (unsigned long long)(yr - out_offset);
      const unsigned long long pa = (unsigned long long)(pr - out_offset);
      if (!((b0 + plane < B) && ((ya | pa) & (2 * V - 1)) == 0)) continue;
#pragma unroll
      for (int q = 0; q < QOUT; ++q) {
        const int tt = q * M + j - out_offset;
        if (tt >= 0 && tt + V <= Lout) cp_async_ca<2 * V>(smem_u32(post_stage(buf, q, plane)), pr + tt);
      }
    }
  }

  // Without GPRE or PSTAGE the store loads the postgate synchronously, and with one 512-thread
  // block per SM (8K..32K) nothing hides that latency: its runs of a unit are prefetched to L2
  // ahead of the tensor phases instead (one prefetch per run; no registers held across them).
  static constexpr bool POST_PF = POST && !GPRE && !PSTAGE && !DK;
  __device__ __forceinline__ void prefetch_post(int unit) const {
    const int p = tid / TPP;
    const int pair = unit * P + p;
    if (pair >= npairs) return;
    const int h = pair / nBP, b0 = 2 * (pair % nBP);
    const Rows rw = rows_of(b0);
#pragma unroll
    for (int plane = 0; plane < 2; ++plane) {
      if (b0 + plane >= B) continue;
      const u16* pr = post + rw.off(plane, post_sb, post_so) + h * post_sh;
      for (int ui = tid % TPP; ui < UPP_S; ui += TPP) {
#pragma unroll
        for (int q = 0; q < QOUT; ++q) {
          const int tt = q * M + V_S * ui - out_offset;  // as store_runs
          if (tt + V_S > 0 && tt < Lout) prefetch_l2(pr + max(tt, 0));
        }
      }
    }
  }
  // RAWB = 0 (32K: no room for a staging buffer, load_raw is synchronous): the next unit's
  // input rows are prefetched to L2 while this unit computes, one per 128 bytes. Not with a
  // pregate: u, pre and the postgate of a 32K pair per SM overflow L2 (measured slower).
  static constexpr bool IN_PF = C::RAWB == 0 && !DK && !PRE;
  // The backward's prefetch (run_bwd): measured at 4K (gated -9 %); at 16K it made the gated
  // backward 30 % slower (likely by pushing the L2-resident dk rows out; not profiled) and
  // the plain one no faster, so only 4K (8K and A = 2 not measured).
  static constexpr bool BWD_PF = DK && N == 4096;
  template <bool GATE = PRE>
  __device__ __forceinline__ void prefetch_in(int unit) const {
    constexpr int LINE = 64;  // 16-bit values per 128-byte line
    const int p = tid / TPP;
    const int pair = unit * P + p;
    if (pair >= npairs) return;
    const int h = pair / nBP, b0 = 2 * (pair % nBP);
    const Rows rw = rows_of(b0);
    const int lines = (L + LINE - 1) / LINE;
    for (int i = tid % TPP; i < 2 * lines; i += TPP) {
      const int plane = i >= lines;
      if (b0 + plane >= B) continue;
      const int n = (i - plane * lines) * LINE;
      prefetch_l2(u + rw.off(plane, u_sb, u_so) + h * u_sh + n);
      if (GATE) prefetch_l2(pre + rw.off(plane, pre_sb, pre_so) + h * pre_sh + n);
    }
  }

  template <bool GOUT = POST>  // GOUT: the output has a gate (post); the dk kernel picks it
  __device__ __forceinline__ void stage_r_inv_store(int unit, int eh, int ex, int buf) {
    const int p = tid / TPP;
    const int pair = unit * P + p;
    if (pair >= npairs) return;
    const int h = pair / nBP, b0 = 2 * (pair % nBP);
    const int ue = eh - ex - 4 - C::LOGR;  // the output's scale is 2^ue
    const Rows rw = rows_of(b0);
    u16* __restrict__ yrows[2] = {y + rw.off(0, y_sb, y_so) + h * y_sh,
                                  y + rw.off(1, y_sb, y_so) + h * y_sh};
    const u16* __restrict__ prows[2] = {nullptr, nullptr};
    if (GOUT) {
      prows[0] = post + rw.off(0, post_sb, post_so) + h * post_sh;
      prows[1] = post + rw.off(1, post_sb, post_so) + h * post_sh;
    }
    // vector path allowed for this plane: row exists and y (and post) - out_offset is aligned
    bool vok[2];
#pragma unroll
    for (int plane = 0; plane < 2; ++plane) {
      const unsigned long long ya = (unsigned long long)(yrows[plane] - out_offset);
      const unsigned long long pa = GOUT ? (unsigned long long)(prows[plane] - out_offset) : 0ull;
      vok[plane] = (b0 + plane < B) && ((ya | pa) & (2 * V_S - 1)) == 0;
    }
    // Both rows exist and every run lies inside [0, Lout) (full and causal outputs): no per-run
    // tests. R = 1, fp16, no gate: the stored value is round(v * 2^ue), which a half-precision
    // multiply by the (exact) power of two gives bit for bit, without the fp32 round trip.
    if (LEAN && vok[0] && vok[1] && out_offset == 0 && Lout >= (QOUT - 1) * M + JN_S) {
      if constexpr (R == 1 && DT == 0 && !GOUT) {
        if (ue >= -24 && ue <= 15) {
          const u32 hs = ue >= -14 ? (u32)(ue + 15) << 10 : 1u << (ue + 24);
          store_runs<GOUT, true, true>(p, yrows, prows, 0.f, hs | (hs << 16), buf, b0, vok);
          return;
        }
      }
      store_runs<GOUT, true, false>(p, yrows, prows, ldexpf(1.0f, ue), 0u, buf, b0, vok);
    } else {
      store_runs<GOUT, false, false>(p, yrows, prows, ldexpf(1.0f, ue), 0u, buf, b0, vok);
    }
  }

  // The runs of stage_r_inv_store (V_S consecutive columns per thread). FULL: every run is a
  // whole vector inside [0, Lout) of rows that exist (b0, vok unused). HALF: R = 1, fp16, no
  // gate: y = v * hs (packed fp16 power of two).
  template <bool GOUT, bool FULL, bool HALF>
  __device__ __forceinline__ void store_runs(int p, u16* __restrict__ (&yrows)[2], const u16* __restrict__ (&prows)[2],
                                             float us, u32 hs, int buf, int b0, const bool (&vok)[2]) {
    constexpr int V = V_S;
    constexpr int UPP = UPP_S;
#pragma unroll(R <= 4 ? 2 : 1)
    for (int ui = tid % TPP; ui < UPP; ui += TPP) {
      const int j = V * ui;
      if constexpr (HALF) {
        static_assert(R == 1 && !GOUT, "half-precision store: no radix-R stage, no gate");
#pragma unroll
        for (int plane = 0; plane < 2; ++plane) {
          u32 w[V / 2];
          lds_v<V>(w, sdata + sidx(p, 0, plane, j));
#pragma unroll
          for (int v = 0; v < V / 2; ++v) w[v] = hmul2(w[v], hs);
          stg_v<V>(yrows[plane] + j, w);
        }
        continue;
      }
      u32 gw[QOUT][2][V / 2];
      if (GOUT && GPRE) {
#pragma unroll
        for (int q = 0; q < QOUT; ++q)
#pragma unroll
          for (int plane = 0; plane < 2; ++plane) {
            const int tt = q * M + j - out_offset;
            if (FULL || (vok[plane] && tt >= 0 && tt + V <= Lout)) {
              ldg_v<V>(gw[q][plane], prows[plane] + tt);
            } else {
#pragma unroll
              for (int v = 0; v < V / 2; ++v) gw[q][plane][v] = 0u;
            }
          }
      }
      cf x[V][R];
#pragma unroll
      for (int k = 0; k < R; ++k) {
        u32 wr[V / 2], wi[V / 2];
        lds_v<V>(wr, sdata + sidx(p, k, 0, j));
        lds_v<V>(wi, sdata + sidx(p, k, 1, j));
#pragma unroll
        for (int v = 0; v < V / 2; ++v) {
          x[2 * v][k] = {h2lo(wr[v]), h2lo(wi[v])};
          x[2 * v + 1][k] = {h2hi(wr[v]), h2hi(wi[v])};
        }
      }
      if (!(MONARCH_SKIP & 4)) {
#pragma unroll
        for (int k = 1; k < R; ++k) {
          const cf w0 = tw(k * j), s0 = T0[k];
          cf w = {w0.x, -w0.y};
          const cf st = {s0.x, -s0.y};
#pragma unroll
          for (int jj = 0; jj < V; ++jj) {
            x[jj][k] = cmul(x[jj][k], w);
            if (jj + 1 < V) w = cmul(w, st);
          }
        }
#pragma unroll
        for (int jj = 0; jj < V; ++jj) SmallDft<R, true>::run(x[jj]);
      }
#pragma unroll
      for (int q = 0; q < QOUT; ++q) {
        const int tt = FULL ? q * M + j : q * M + j - out_offset;  // output index of jj = 0
        if (!FULL && (tt + V <= 0 || tt >= Lout)) continue;
#pragma unroll
        for (int plane = 0; plane < 2; ++plane) {
          if (!FULL && b0 + plane >= B) continue;
          u16* __restrict__ yrow = yrows[plane];
          if (FULL || (vok[plane] && tt >= 0 && tt + V <= Lout)) {
            u32 o[V / 2], gq[V / 2];
            if (GOUT) {
              if (GPRE) {
#pragma unroll
                for (int v = 0; v < V / 2; ++v) gq[v] = gw[q][plane][v];
              } else if (PSTAGE) {
                lds_v<V>(gq, post_stage(buf, q, plane));
              } else {
                ldg_v<V>(gq, prows[plane] + tt);
              }
            }
#pragma unroll
            for (int v = 0; v < V / 2; ++v) {
              float v0 = (plane ? x[2 * v][q].y : x[2 * v][q].x) * us;
              float v1 = (plane ? x[2 * v + 1][q].y : x[2 * v + 1][q].x) * us;
              if (GOUT) {
                v0 *= Dt<DT>::lo(gq[v]);
                v1 *= Dt<DT>::hi(gq[v]);
              }
              o[v] = Dt<DT>::pack(v0, v1);
            }
            stg_v<V>(yrow + tt, o);
          } else {
            const u16* __restrict__ prow = prows[plane];
#pragma unroll
            for (int jj = 0; jj < V; ++jj) {
              const int ti = tt + jj;
              if (ti < 0 || ti >= Lout) continue;
              float v0 = (plane ? x[jj][q].y : x[jj][q].x) * us;
              if (GOUT) v0 *= Dt<DT>::one(ldg_stream2(prow + ti));
              stg_stream2(yrow + ti, Dt<DT>::from(v0));
            }
          }
        }
      }
    }
  }

  // ------------------------------------------------------------------------------------------
  // RAWIN, A = 3: refill() (the raw buffer's next load) runs once stage 0 has read it.
  template <class Refill>
  __device__ __forceinline__ void tensor_phases(int unit, const KFrag& kfirst, int buf, int ex, Refill&& refill) {
    if (MONARCH_SKIP & 2) {
      if (RAWIN && A == 3) refill();
      return;
    }
    const u16* rawbase = RAWIN ? raw_ptr(buf, 0, 0, 0) : nullptr;
    if constexpr (A == 3) {
      stage0_fwd_a3(unit, rawbase, ex);
      __syncthreads();
      if (RAWIN) refill();
      core_a3(unit, kfirst);
      __syncthreads();
      stage0_inv_a3();
    } else {
      core_a2(unit, kfirst, rawbase);
    }
  }

  __device__ __forceinline__ int filter_exp(int unit) const {
    const int pair = min(unit * P + tid / (THREADS / P), npairs - 1);
    return (int)h2lo((u32)__ldg(ktile(kf, pair, N / 256)));  // (the exponent follows the tiles)
  }

  // Barriers: every smem hand-over between threads is separated by a __syncthreads. With
  // prefetch, the raw buffer of a unit is refilled (for unit + RAWB * grid) only after the
  // barrier that ends its radix-R pass; red[] and sdata are rewritten in the next iteration
  // only after its first barrier, which every thread reaches after finishing this store.
  __device__ __forceinline__ void run(unsigned char* smem) {
    setup(smem);
    const int nunits = (npairs + P - 1) / P;
    const int p = tid / (THREADS / P);
    if constexpr (RAWB > 0) {
      // PSTAGE: the next unit is loaded into the other buffer after the first barrier (every
      // store of the previous unit, which read its postgate from that buffer, is done); the
      // postgate of this unit goes into this unit's buffer after the second barrier.
#pragma unroll
      for (int s = 0; s < (PSTAGE ? 1 : RAWB); ++s) {
        issue_load(blockIdx.x + s * gridDim.x, s, nunits);
        cp_async_commit();
      }
      int buf = 0;
      for (int unit = blockIdx.x; unit < nunits; unit += gridDim.x) {
        const int eh = filter_exp(unit);  // filter exponent of this thread's pair
        const KFrag kfirst = load_kfrag(ktile_first(unit));
        cp_async_wait<PSTAGE ? 0 : RAWB - 1>();
        prep_raw(buf);
        __syncthreads();
        if constexpr (PSTAGE) {
          issue_load(unit + gridDim.x, buf ^ 1, nunits);
          cp_async_commit();
        }
        const int ex = pair_exp(p);
        // the raw buffer's next use, once this unit has read it: the postgate (PSTAGE) or the
        // input of unit + RAWB * grid (one commit per unit either way)
        auto refill = [&]() {
          if constexpr (PSTAGE) {
            issue_post(unit, buf);
          } else {
            issue_load(unit + RAWB * gridDim.x, buf, nunits);
          }
          cp_async_commit();
        };
        if constexpr (!RAWIN) {
          if (!(MONARCH_SKIP & 1)) stage_r_fwd(buf, ex);
          __syncthreads();
          refill();
          if constexpr (POST_PF && (MONARCH_PF & 1)) prefetch_post(unit);
        }
        tensor_phases(unit, kfirst, buf, ex, refill);
        if constexpr (PSTAGE) cp_async_wait<0>();  // own postgate copies (and the next unit)
        __syncthreads();
        if (RAWIN && A == 2) refill();
        stage_r_inv_store(unit, eh, ex, buf);
        buf = (buf + 1 == RAWB) ? 0 : buf + 1;
      }
      cp_async_wait<0>();
    } else {
      for (int unit = blockIdx.x; unit < nunits; unit += gridDim.x) {
        const int eh = filter_exp(unit);
        load_raw(unit);
        __syncthreads();
        const int ex = pair_exp(p);
        if (!(MONARCH_SKIP & 1)) stage_r_fwd(0, ex);
        __syncthreads();
        if constexpr (POST_PF && (MONARCH_PF & 1)) prefetch_post(unit);
        if constexpr (IN_PF && (MONARCH_PF & 2)) {
          if (unit + (int)gridDim.x < nunits) prefetch_in(unit + gridDim.x);
        }
        // (not hoisted here: 8 more live registers spill the 32K kernels)
        const KFrag kfirst = load_kfrag(ktile_first(unit));
        tensor_phases(unit, kfirst, 0, ex, [] {});
        __syncthreads();
        stage_r_inv_store(unit, eh, ex, 0);
        __syncthreads();
      }
    }
  }

  // ------------------------------------------------------------------------------------------
  // Backward (DK, A = 3): the filter gradient dk = sum over the batch of corr(g, v), with
  // v = pre * u and g = post * dy (both zero padded to N; the caller rotates by the output
  // offset), and on request dv = corr(g, k) through the adjoint filter r (kf, the spectrum of
  // r[m] = k[(offset - m) mod N]) with du = dv * pre and dpre = dv * u stored.
  // A pair of each (b, b + 1) is packed as one complex sequence and transformed on chip; the
  // product conj(Z_v) Z_g, summed over the pairs, has Re(IFFT(.)) = the batch-summed
  // correlation (the cross terms' inverse is imaginary), so no two-for-one separation is
  // needed. The sum stays in fp32 in the kernel's frequency order in acc[split][h][N]
  // (complex), L2-resident: each (split, h) row belongs to one block, so there are no atomics
  // and the order is fixed. dv continues the g side's chain (* R, inverse) in place.
  struct Side {  // one input side: sequence, gate, strides, length
    const u16* x;
    const u16* gate;
    long long x_sb, x_sh, g_sb, g_sh;
    int len;
  };
  __device__ __forceinline__ void use_side(const Side& sd) {
    u = sd.x;
    pre = sd.gate;
    u_sb = sd.x_sb;
    u_sh = sd.x_sh;
    pre_sb = sd.g_sb;
    pre_sh = sd.g_sh;
    L = sd.len;
  }
  struct Out {  // one output of the dv chain: array, gate, strides
    u16* y;
    const u16* gate;
    long long y_sb, y_sh, g_sb, g_sh;
  };
  __device__ __forceinline__ void use_out(const Out& o) {
    y = o.y;
    post = o.gate;
    y_sb = o.y_sb;
    y_sh = o.y_sh;
    post_sb = o.g_sb;
    post_sh = o.g_sh;
  }
  static __device__ __forceinline__ float exp2i(int e) {
    return __uint_as_float((u32)(min(max(e, -126), 127) + 127) << 23);
  }

  // Z = 2^(ex - ZLOG) DFT(x) after spectrum_tile: 0.25 per forward twiddle (W4096 for A = 3, W256)
  static constexpr int ZLOG = A == 3 ? 4 : 2;

  // A = 2, after the last unit (and a barrier): the per-warp sums added up per row in a fixed
  // warp order and stored as this block's accumulator row (kernel order: lane l's float4 i of
  // row q holds positions q * 256 + 8 l + 2 i, + 1).
  __device__ __forceinline__ void accumulate_a2(float* accrow) const {
    for (int f = tid; f < R * 128; f += THREADS) {
      const int q = f >> 7, il = f & 127, i = il >> 5, l = il & 31;
      float4 z = asum[q * 128 + il];
#pragma unroll
      for (int sl = 1; sl < WARPS / R; ++sl) {
        const float4 o = asum[(sl * R + q) * 128 + il];
        z.x += o.x;
        z.y += o.y;
        z.z += o.z;
        z.w += o.w;
      }
      ((float4*)accrow)[q * 128 + l * 4 + i] = z;
    }
  }

  // One item: a 256-point tile of both sides (A = 3: tile (q, k0) of the block's one pair, after
  // stage 0; A = 2: row q of pair p, the whole sub-transform), from bufv / bufg: the two forward
  // halves, the unscaled product conj(Z_v) Z_g into the running sum, and on request the g side
  // * R (DV) and the v side * K (DPOST) through the inverse stages, in place (tiles are disjoint
  // per item: no barrier). The running sum: A = 3, acc's row of this block in global memory
  // (L2), stored for the first unit; A = 2, this warp's asum slot (warp w always holds row
  // q = w % R since P * R is a multiple of WARPS and WARPS of R; each lane owns its entries).
  template <bool DV, bool DPOST>
  __device__ __forceinline__ void core_bwd(int unit, float* accrow, bool first, const u16* kr,
                                           const u16* kk, const u32* redv, const u32* redg,
                                           u16* bufv, u16* bufg) {
    constexpr int ITEMS = A == 3 ? R * 16 : P * R;
    constexpr int KS = A == 3 ? 2 : KS0;
    constexpr int DS = A == 3 ? 1 : 32;  // float4 stride of a lane's sum entries
    for (int item = warp; item < ITEMS; item += WARPS) {
      const int p = A == 3 ? 0 : item / R;
      const int q = A == 3 ? item / 16 : item % R;
      const int k0 = A == 3 ? item % 16 : 0;
      const int pair = unit * P + p, tile = A == 3 ? item : q;
      KFrag kq_r;
      if (DV) kq_r = load_kfrag(ktile(kr, pair, tile));
      sdata = bufv;
      const CTile a = spectrum_tile<KS>(p, q, 256 * k0, 16);
      sdata = bufg;
      const CTile b = spectrum_tile<KS>(p, q, 256 * k0, 16);
      // undo both scales separately (no overflow of the product of them)
      const float sv = exp2i(ZLOG - pair_exp(redv, p)), sg = exp2i(ZLOG - pair_exp(redg, p));
      float4* const dst = A == 3 ? (float4*)(accrow + 2 * (item * 256 + lane * 8))
                                 : asum + warp * 128 + lane;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        float4 o = (A == 3 && first) ? make_float4(0.f, 0.f, 0.f, 0.f) : dst[DS * i];
        cf z[2];
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const cf za = ctile_get(a, 2 * i + c);
          z[c] = cscale(cscale(cmul({za.x, -za.y}, ctile_get(b, 2 * i + c)), sv), sg);
        }
        o.x += z[0].x;
        o.y += z[0].y;
        o.z += z[1].x;
        o.w += z[1].y;
        dst[DS * i] = o;
      }
      if (DV) finish_bwd(inverse_pair(b, kq_r), p, q, k0);  // (sdata = bufg)
      if (DPOST) {  // (K loaded only here: 8 registers fewer through the transforms above)
        sdata = bufv;
        finish_bwd(inverse_pair(a, load_kfrag(ktile(kk, pair, tile))), p, q, k0);
      }
    }
  }
  __device__ __forceinline__ void finish_bwd(const HTile& pc, int p, int q, int k0) {
    if constexpr (A == 3) {
      finish_item(pc, p, q, k0);
    } else {
      last_a2(pc, p, q);
    }
  }

  // outs: bit 0 du (= dv * pre, or dv), bit 1 dpre (= dv * u; PRE only), bit 2 dpost
  // (= dy * window(conv(v, k)), from kk; out_offset / Lout_post: the forward's window).
  // Block (h, s) takes the units j = s, s + nsplit, ... of channel h (nBP, the pairs per
  // channel, is a multiple of P: every unit holds P pairs of one channel).
  __device__ __forceinline__ void run_bwd(unsigned char* smem, const Side& sv, const Side& sg,
                                          const Out& odu, const Out& odpre, const Out& odpost,
                                          const u16* kr, const u16* kk, int out_offset_post,
                                          int Lout_post, float* acc, int nsplit, int outs) {
    static_assert(DK && (A == 3 ? P == 1 : (P * R) % WARPS == 0 && WARPS % R == 0),
                  "backward work split: one pair per block (A = 3), whole rows per warp (A = 2)");
    setup(smem);
    u16* const bufv = sdata;
    u16* const bufg = sraw;  // DK: the second working buffer
    u32* const redv = red;
    u32* const redg = red + WARPS;
    const bool dv = (outs & 3) != 0, dpost = (outs & 4) != 0;
    // one block per (channel, split): grid = H * nsplit
    const int h = blockIdx.x / nsplit, s = blockIdx.x - h * nsplit;
    const int units = nBP / P;  // per channel
    float* accrow = acc + 2 * ((long long)s * H + h) * N;
    const int pt = tid / (THREADS / P);  // this thread's pair in the radix-R passes
    if constexpr (A == 2) {
#pragma unroll
      for (int i = 0; i < 4; ++i) asum[warp * 128 + 32 * i + lane] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
    for (int j = s; j < units; j += nsplit) {
      const int unit = h * units + j;
      kf = kr;
      const int ehr = dv ? filter_exp(unit) : 0;
      kf = kk;
      const int ehk = dpost ? filter_exp(unit) : 0;
      use_side(sv);
      sdata = bufv;
      red = redv;
      load_raw<PRE>(unit);
      use_side(sg);
      sdata = bufg;
      red = redg;
      load_raw<POST>(unit);
      __syncthreads();
      const int exv = pair_exp(redv, pt), exg = pair_exp(redg, pt);
      sdata = bufv;
      stage_r_fwd(0, exv);
      sdata = bufg;
      stage_r_fwd(0, exg);
      __syncthreads();
      if constexpr (A == 3) {
        sdata = bufv;
        stage0_fwd_a3(unit);
        sdata = bufg;
        stage0_fwd_a3(unit);
        __syncthreads();
      }
      // The next unit's loads (both sides, synchronous: no room for staging buffers),
      // prefetched to L2 while this one computes.
      if constexpr (BWD_PF && (MONARCH_PF & 4) != 0) {
        if (j + nsplit < units) {
          use_side(sv);
          prefetch_in<PRE>(unit + nsplit);
          use_side(sg);
          prefetch_in<POST>(unit + nsplit);
        }
      }
      if (dv && dpost) {
        core_bwd<true, true>(unit, accrow, j == s, kr, kk, redv, redg, bufv, bufg);
      } else if (dv) {
        core_bwd<true, false>(unit, accrow, j == s, kr, kk, redv, redg, bufv, bufg);
      } else if (dpost) {
        core_bwd<false, true>(unit, accrow, j == s, kr, kk, redv, redg, bufv, bufg);
      } else {
        core_bwd<false, false>(unit, accrow, j == s, kr, kk, redv, redg, bufv, bufg);
      }
      if (dv || dpost) {
        __syncthreads();
        if constexpr (A == 3) {
          if (dv) {
            sdata = bufg;
            stage0_inv_a3();
          }
          if (dpost) {
            sdata = bufv;
            stage0_inv_a3();
          }
          __syncthreads();
        }
        out_offset = 0;
        Lout = L_dv;
        sdata = bufg;
        if (outs & 1) {
          use_out(odu);
          stage_r_inv_store<PRE>(unit, ehr, exg, 0);
        }
        if (PRE && (outs & 2)) {
          use_out(odpre);
          stage_r_inv_store<true>(unit, ehr, exg, 0);
        }
        if (dpost) {
          out_offset = out_offset_post;
          Lout = Lout_post;
          sdata = bufv;
          use_out(odpost);
          stage_r_inv_store<true>(unit, ehk, exv, 0);
        }
      }
      __syncthreads();
    }
    if constexpr (A == 2) accumulate_a2(accrow);
  }
  int L_dv;  // length of the dv outputs (du, dpre)
};

}  // namespace mc

// Kernel entry point. Strides are in elements; the filter spectrum kf comes from
// FusedConv.filter_spectrum (fp16, kernel order, 2N + 8 halves per channel).
template <int N, int DT, bool PRE, bool POST, int PAD>
__global__ void __launch_bounds__(mc::Cfg<N>::THREADS, mc::Cfg<N>::MINB)
monarch_conv_fwd(const unsigned short* __restrict__ u, const unsigned short* __restrict__ pre,
                 const unsigned short* __restrict__ kf, unsigned short* __restrict__ y,
                 const unsigned short* __restrict__ post, long long u_sb, long long u_sh,
                 long long pre_sb, long long pre_sh, long long y_sb, long long y_sh,
                 long long post_sb, long long post_sh, long long u_so, long long pre_so,
                 long long y_so, long long post_so, int B, int H, int L, int out_offset,
                 int Lout, int BI, const int* __restrict__ tiles, int KC, int KZ, int qlive) {
  extern __shared__ __align__(16) unsigned char monarch_smem[];
  mc::MonarchConv<N, DT, PRE, POST, PAD> k;
  k.u = u;
  k.pre = pre;
  k.kf = kf;
  k.y = y;
  k.post = post;
  k.u_sb = u_sb;
  k.u_sh = u_sh;
  k.pre_sb = pre_sb;
  k.pre_sh = pre_sh;
  k.y_sb = y_sb;
  k.y_sh = y_sh;
  k.post_sb = post_sb;
  k.post_sh = post_sh;
  k.u_so = u_so;
  k.pre_so = pre_so;
  k.y_so = y_so;
  k.post_so = post_so;
  k.BI = BI;
  k.tiles = tiles;
  k.KC = KC;  // (A = 2 reads none of these: its tiles mix frequency classes)
  k.KZ = KZ;
  k.qlive = qlive;
  k.B = B;
  k.H = H;
  k.L = L;
  k.out_offset = out_offset;
  k.Lout = Lout;
  k.nBP = (B + 1) >> 1;
  k.npairs = k.nBP * H;
  k.run(monarch_smem);
}

// Backward kernel (FFT sizes 256..16384), grid H * nsplit blocks: acc[split][h] = sum over the
// pairs of units j = split + i nsplit (P pairs each) of conj(Z_v) Z_g in kernel order (complex
// fp32, N per row); with outs
// bit 0 / 1: du = dv * pre / dpre = dv * u (B, H, L) from kr, the adjoint filter's spectrum
// (FusedConv.filter_spectrum(k, reverse_shift=out_offset)); bit 2: dpost = dy * window(conv(v,
// k)) (B, H, Lout) from kk, k's spectrum. See MonarchConv::run_bwd.
// PRE / POST: u / dy carry a gate. PAD bit 0: L and Lout <= N / 2; bit 1: every requested
// output window ends by N / 2.
template <int N, int DT, bool PRE, bool POST, int PAD>
__global__ void __launch_bounds__(mc::Cfg<N>::THREADS, mc::Cfg<N>::MINB)
monarch_bwd(const unsigned short* __restrict__ u, const unsigned short* __restrict__ pre,
            const unsigned short* __restrict__ dy, const unsigned short* __restrict__ post,
            const unsigned short* __restrict__ kr, const unsigned short* __restrict__ kk,
            unsigned short* __restrict__ du, unsigned short* __restrict__ dpre,
            unsigned short* __restrict__ dpost, float* __restrict__ acc, long long u_sb,
            long long u_sh, long long pre_sb, long long pre_sh, long long dy_sb, long long dy_sh,
            long long post_sb, long long post_sh, long long du_sb, long long du_sh,
            long long dpre_sb, long long dpre_sh, long long dpost_sb, long long dpost_sh, int B,
            int H, int L, int Lout, int out_offset, int nsplit, int outs) {
  extern __shared__ __align__(16) unsigned char monarch_smem[];
  using K = mc::MonarchConv<N, DT, PRE, POST, PAD, true>;
  K k;
  k.B = B;
  k.H = H;
  k.BI = B > 0 ? B : 1;
  k.u_so = k.pre_so = k.y_so = k.post_so = 0;
  k.nBP = ((B + 1) / 2 + K::P - 1) / K::P * K::P;  // whole units per channel (pairs past B: zeros)
  k.npairs = k.nBP * H;
  k.qlive = 0xFF;
  k.L_dv = L;
  k.run_bwd(monarch_smem, typename K::Side{u, pre, u_sb, u_sh, pre_sb, pre_sh, L},
            typename K::Side{dy, post, dy_sb, dy_sh, post_sb, post_sh, Lout},
            typename K::Out{du, pre, du_sb, du_sh, pre_sb, pre_sh},
            typename K::Out{dpre, u, dpre_sb, dpre_sh, u_sb, u_sh},
            typename K::Out{dpost, dy, dpost_sb, dpost_sh, dy_sb, dy_sh}, kr, kk, out_offset,
            Lout, acc, nsplit, outs);
}
