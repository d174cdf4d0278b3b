// cufftconv: long FFT convolutions (FFT size N = N1 * N2 above the on-chip limit), three passes.
//
// Index maps (n time, f frequency): n = n1 * N2 + n2, f = k1 + N1 * k2. Then
//   Z[f] = sum_n2 w_N^(n2 k1) w_N2^(n2 k2) sum_n1 z[n1 N2 + n2] w_N1^(n1 k1)
// and the three kernels are
//   cols_fwd  per column n2: (pre * u) pairs in, DFT over n1, twiddle w_N^(n2 k1)   -> ws
//   rows      per row k1:   DFT over n2, times the filter spectrum, inverse DFT    -> ws (in place)
//   cols_inv  per column:   twiddle w_N^-(n2 k1), inverse DFT over k1, postgate, crop -> y
// Two sequences (b, b+1) of a channel travel as one complex sequence (two-for-one). All math is
// fp32 (the workspace ws holds complex fp32). Every transform is an in-place mixed-radix
// decimation in frequency in shared memory (radix 16 in registers, then one radix 2/4/8), so its
// output sits in digit-reversed order; the inverse is the mirrored decimation in time, which
// takes that order back to natural order. Rows of ws and the filter spectrum are stored in that
// order (cufftconv/long.py builds the matching permutation), so no pass ever reorders.
#include "monarch_prims.cuh"

namespace lc {

using mc::cf;
using mc::cmul;
using mc::Dt;
using mc::u16;

// One float2 of padding every 16 (a 128-byte bank row): butterflies whose elements are 16 or
// more apart would otherwise hit one bank, and with one every 32 the innermost stages' 16-long
// runs still met 2-way (cufftconv/long.py mirrors PAD_LOG).
constexpr int PAD_LOG = 4;
__host__ __device__ constexpr int pidx(int x) { return x + (x >> PAD_LOG); }
__host__ __device__ constexpr int padded(int n) { return pidx(n); }

__device__ __forceinline__ cf cadd(cf a, cf b) { return {a.x + b.x, a.y + b.y}; }
__device__ __forceinline__ cf csub(cf a, cf b) { return {a.x - b.x, a.y - b.y}; }

// exp(SIGN * 2 pi i * e / M) for 0 <= e < M <= 2^24 (M a power of two: e / M is exact in fp32).
// The angle is reduced to [-pi, pi], where the fast hardware sine/cosine is accurate to ~4e-7
// absolute: far below the 16-bit output's resolution, and a few instructions instead of
// sincospif's ~40.
template <int SIGN, int M>
__device__ __forceinline__ cf twiddle(int e) {
  static_assert(M > 0 && (M & (M - 1)) == 0 && M <= (1 << 24), "power-of-two period, exact in fp32");
  float f = static_cast<float>(e) * (1.0f / static_cast<float>(M));
  if (f > 0.5f) f -= 1.0f;
  float s, c;
  __sincosf(6.283185307179586f * f, &s, &c);
  return {c, SIGN * s};
}

// x[q] *= w^q for 0 < q < R, as K interleaved chains stepping by w^K (w^1..w^K from a tiny
// tree): dependent depth R / K + 2 instead of R - 1, with K + 1 powers live (registers: the
// passes run at 3 blocks of 256 threads per SM, 80 registers).
template <int R>
__device__ __forceinline__ void twiddle_powers(cf (&x)[R], cf w) {
  constexpr int K = R >= 16 ? 4 : R >= 4 ? 2 : 1;
  cf cur[K];
  cur[0] = w;
  if constexpr (K >= 2) cur[1] = cmul(w, w);
  if constexpr (K >= 4) {
    cur[2] = cmul(cur[1], w);
    cur[3] = cmul(cur[1], cur[1]);
  }
  const cf stepk = cur[K - 1];
#pragma unroll
  for (int q = 1; q < R; ++q) {
    x[q] = cmul(x[q], cur[(q - 1) % K]);
    if (q + K < R) cur[(q - 1) % K] = cmul(cur[(q - 1) % K], stepk);
  }
}

// cos and sin of 2 pi k / 16 (k compile-time after unrolling, so these fold to constants).
__device__ __forceinline__ constexpr float cos16_q(int k) {  // 0 <= k <= 4
  return k == 0 ? 1.0f : k == 1 ? 0.92387953251128674f : k == 2 ? 0.70710678118654752f
                                                        : k == 3 ? 0.38268343236508977f : 0.0f;
}
__device__ __forceinline__ constexpr float cos16(int k) {
  k &= 15;
  return k <= 4 ? cos16_q(k) : k <= 8 ? -cos16_q(8 - k) : k <= 12 ? -cos16_q(k - 8) : cos16_q(16 - k);
}
__device__ __forceinline__ constexpr float sin16(int k) { return cos16(k - 4); }

// x_q <- sum_i x_i exp(SIGN 2 pi i iq / R), natural order in and out (radix-2 DIF in registers,
// then a compile-time bit-reversal, which is only register renaming).
// ZIN: x[R/2 ..] are zero (the first level only copies). HOUT: only outputs q < R/2 are
// needed (q = bit-reversed p: the last level's odd p are skipped).
template <int R, int SIGN, bool ZIN = false, bool HOUT = false>
__device__ __forceinline__ void dft(cf (&x)[R]) {
#pragma unroll
  for (int span = R; span >= 2; span >>= 1) {
#pragma unroll
    for (int blk = 0; blk < R; blk += span) {
#pragma unroll
      for (int j = 0; j < span / 2; ++j) {
        const cf a = x[blk + j], b = x[blk + j + span / 2];
        const bool copy = ZIN && span == R;  // b == 0
        x[blk + j] = copy ? a : cadd(a, b);
        if (HOUT && span == 2) continue;
        const cf d = copy ? a : csub(a, b);
        const int k = j * (16 / span);
        const float c = cos16(k), s = SIGN * sin16(k);
        // k = 0 and k = 4 (times -/+i) are exact swaps: x * 0 cannot be folded away in IEEE.
        x[blk + j + span / 2] = k == 0   ? d
                                : k == 4 ? cf{-SIGN * d.y, SIGN * d.x}
                                         : cf{d.x * c - d.y * s, d.x * s + d.y * c};
      }
    }
  }
  cf t[R];
#pragma unroll
  for (int p = 0; p < R; ++p) {
    int r = 0;
#pragma unroll
    for (int b = 1; b < R; b <<= 1) r = (r << 1) | ((p & b) ? 1 : 0);
    t[r] = x[p];
  }
#pragma unroll
  for (int p = 0; p < R; ++p) x[p] = t[p];
}

// Layout of T transforms of size N in shared memory: interleaved (element x of transform c at
// x * T + c: the columns of a tile) or contiguous (c * N + x: whole rows).
template <int N, int T, bool INTERLEAVED>
struct Layout {
  static constexpr int SIZE = padded(N * T);
  static __device__ __forceinline__ int at(int c, int x) { return pidx(INTERLEAVED ? x * T + c : c * N + x); }
  // at(c, x + d) - at(c, x) for the strides a stage uses: d * T (interleaved) or d (contiguous)
  // is a multiple of 2^PAD_LOG, or x sits in a block of a size that divides it and d stays
  // inside, so the padding adds a constant and R accesses share one address register
  // (tests/test_long_host.py checks every instantiated stage).
  static constexpr __host__ __device__ int step(int d) { return pidx(INTERLEAVED ? d * T : d); }
  // Work item -> (transform, butterfly): adjacent threads take adjacent addresses.
  static __device__ __forceinline__ void item(int it, int nb, int& c, int& b) {
    if (INTERLEAVED) {
      c = it % T;
      b = it / T;
    } else {
      c = it / nb;
      b = it % nb;
    }
  }
};

// keep (frequency-sparse): bit j clear = positions [j N/16, (j+1) N/16) of a size-N transform's
// output hold a zeroed frequency class. Whether position x lies in a kept one.
template <int N>
__device__ __forceinline__ bool kept(unsigned keep, int x) {
  return (keep >> (x / (N / 16))) & 1u;
}

struct NoHook {
  __device__ __forceinline__ void operator()(int, int, cf&) const {}
};

// Radix-R stage on blocks of size M of every transform. Forward (DIF): DFT over the R elements
// j + i M/R, then twiddle w_M^(SIGN j q). Inverse (DIT, the mirror): twiddle first, then DFT.
// A stage inside a zeroed class's block (M <= N/16, see kept) is skipped (one that reads global
// memory writes zeros to buf there instead: later stages read those positions).
// IO bit 0 / bit 1: read / write the elements from / to global memory g instead of buf, element
// x of transform c at g[c * N + x] (GXS = 1: whole rows) or g[x * GXS + c] (column tiles); the
// passes' workspace side, so it never takes a staging trip through shared memory.
// in(c, x, v) / out(c, x, v) run on each element as it is read / before it is written.
// HALF (outermost stages, M = N, of causal transforms): 1 = positions [N/2, N) hold zeros and
// are not read; 2 = only positions [0, N/2) are written.
template <class LY, int N, int T, int R, int M, int SIGN, bool DIT, int THREADS, int IO = 0, int GXS = 1,
          class In = NoHook, class Out = NoHook, int HALF = 0>
__device__ __forceinline__ void stage(cf* buf, int tid, unsigned keep, cf* g = nullptr, In in = {}, Out out = {}) {
  static_assert(HALF == 0 || (M == N && R == 16), "half stages are outermost radix-16 stages");
  constexpr int S = M / R;
  constexpr int NB = N / R;
  constexpr bool BLOCKED = M <= N / 16 && N >= 16;
#pragma unroll 1
  for (int it = tid; it < T * NB; it += THREADS) {
    int c, b;
    LY::item(it, NB, c, b);
    const int j = b % S;
    const int base = (b / S) * M + j;
    cf* p = buf + LY::at(c, base);
    if (BLOCKED && !kept<N>(keep, base)) {
      if constexpr ((IO & 1) != 0) {
#pragma unroll
        for (int i = 0; i < R; ++i) p[LY::step(i * S)] = cf{0.f, 0.f};
      }
      continue;
    }
    float2* q = reinterpret_cast<float2*>(g) +
                (GXS == 1 ? static_cast<long long>(c) * N + base : static_cast<long long>(base) * GXS + c);
    constexpr int QS = GXS == 1 ? S : S * GXS;  // global stride between the butterfly's elements
    cf x[R];
#pragma unroll
    for (int i = 0; i < R; ++i) {
      if (HALF == 1 && i >= R / 2) {
        x[i] = cf{0.f, 0.f};
        continue;
      }
      if constexpr ((IO & 1) != 0) {
        const float2 v = __ldcg(q + static_cast<long long>(i) * QS);
        x[i] = cf{v.x, v.y};
      } else {
        x[i] = p[LY::step(i * S)];
      }
      in(c, base + i * S, x[i]);
    }
    if (DIT && M > R && j != 0) twiddle_powers<R>(x, twiddle<SIGN, M>(j));
    dft<R, SIGN, HALF == 1, HALF == 2>(x);
    if (!DIT && M > R && j != 0) twiddle_powers<R>(x, twiddle<SIGN, M>(j));
#pragma unroll
    for (int i = 0; i < R; ++i) {
      if (HALF == 2 && i >= R / 2) continue;
      out(c, base + i * S, x[i]);
      if constexpr ((IO & 2) != 0) {
        __stcg(q + static_cast<long long>(i) * QS, make_float2(x[i].x, x[i].y));
      } else {
        p[LY::step(i * S)] = x[i];
      }
    }
  }
}

template <int M>
struct Radix {
  static constexpr int R = M >= 16 ? 16 : M;
};

// Radix of the innermost (last forward, first inverse) stage of a size-M transform.
template <int M>
struct Inner {
  static constexpr int R = M <= 16 ? M : Inner<M / 16>::R;
};

// Forward: natural order in, digit-reversed out. Radix 16 while it divides, then 2, 4 or 8.
// The first stage's output digit is f mod 16, so block j of N/16 outputs holds class j.
// LAST = false stops before the innermost stage (fft_mid runs it).
template <class LY, int N, int T, int M, int THREADS, bool LAST = true>
__device__ __forceinline__ void fft_fwd(cf* buf, int tid, unsigned keep = 0xffffu) {
  if constexpr (M > 1) {
    constexpr int R = Radix<M>::R;
    if constexpr (M > R || LAST) {
      stage<LY, N, T, R, M, -1, false, THREADS>(buf, tid, keep);
      __syncthreads();
    }
    fft_fwd<LY, N, T, M / R, THREADS, LAST>(buf, tid, keep);
  }
}

// Inverse (unnormalised): digit-reversed in, natural order out. Blocks whose bit in keep is
// clear must hold zeros (their inner stages are skipped). `in` runs on each element as the
// innermost stage reads it; FIRST = false starts after that stage (fft_mid ran it).
template <class LY, int N, int T, int M, int THREADS, bool FIRST = true, class In = NoHook>
__device__ __forceinline__ void fft_inv(cf* buf, int tid, unsigned keep = 0xffffu, In in = {}) {
  if constexpr (M > 1) {
    constexpr int R = Radix<M>::R;
    if constexpr (M > R) {
      fft_inv<LY, N, T, M / R, THREADS, FIRST>(buf, tid, keep, in);
      stage<LY, N, T, R, M, 1, true, THREADS>(buf, tid, keep);
      __syncthreads();
    } else if constexpr (FIRST) {
      stage<LY, N, T, R, M, 1, true, THREADS, 0, 1, In>(buf, tid, keep, nullptr, in);
      __syncthreads();
    }
  }
}

// The innermost forward stage, mul(c, x, v) on each output, and the innermost inverse stage, in
// registers: both work on the same R consecutive positions (no twiddles at that depth), so the
// spectrum never makes a shared-memory round trip between them.
template <class LY, int N, int T, int THREADS, class Mul>
__device__ __forceinline__ void fft_mid(cf* buf, int tid, Mul mul) {
  constexpr int R = Inner<N>::R;
#pragma unroll 1
  for (int it = tid; it < T * (N / R); it += THREADS) {
    int c, b;
    LY::item(it, N / R, c, b);
    const int base = b * R;
    cf* p = buf + LY::at(c, base);
    cf x[R];
#pragma unroll
    for (int i = 0; i < R; ++i) x[i] = p[LY::step(i)];
    dft<R, -1>(x);
#pragma unroll
    for (int i = 0; i < R; ++i) mul(c, base + i, x[i]);
    dft<R, 1>(x);
#pragma unroll
    for (int i = 0; i < R; ++i) p[LY::step(i)] = x[i];
  }
  __syncthreads();
}

// Frequency held at position s after fft_fwd of size M (the permutation long.py mirrors):
// the first stage's output digit q sits at s / (M / R) and is the lowest digit of f.
template <int M>
__device__ __forceinline__ int digit_rev(int s) {
  if constexpr (M == 1) {
    return 0;
  } else {
    constexpr int R = Radix<M>::R, SUB = M / R;
    return s / SUB + R * digit_rev<SUB>(s % SUB);
  }
}

// Grid: x runs over the chunk's pairs, y over column tiles or row groups, so blocks that run
// together hold the same rows of different pairs. Pairs are p = h * BP + bp (BP = ceil(B / 2)):
// sequences b = 2 bp and 2 bp + 1 of channel h; consecutive pairs share the filter rows in L2.
struct Seq {
  long long off0, off1;  // element offsets of the two sequences (off1 < 0: no second one)
  int h;
};

__device__ __forceinline__ Seq pair_seq(long long p, int B, int BP, long long sb, long long sh) {
  const int h = static_cast<int>(p / BP), bp = static_cast<int>(p % BP);
  const int b0 = 2 * bp, b1 = b0 + 1;
  return {b0 * sb + h * sh, b1 < B ? b1 * sb + h * sh : -1, h};
}

template <int N1, int N2, int C>
struct ColCfg {
  // one frequency class per block of N1 / 16 rows, each at least the innermost stage's radix
  static_assert(N1 >= 256, "column transforms of at least 256 points");
  static constexpr int N = N1 * N2;
  // the innermost column stage reads / writes ws itself (radix 16; see cols_fwd)
  static constexpr bool DIRECT = Inner<N1>::R == 16;
  static constexpr int THREADS = 256;
  using LY = Layout<N1, C, true>;
  static constexpr int SMEM = LY::SIZE * 8;
};

// ---------------------------------------------------------------------------------------------
// Global I/O. Loads are what limits these passes (few bytes in flight per thread otherwise):
// 16-byte vectors for the 16-bit arrays, cp.async for the fp32 workspace and filter.
// ---------------------------------------------------------------------------------------------
__device__ __forceinline__ bool aligned16(const void* p) { return (reinterpret_cast<unsigned long long>(p) & 15) == 0; }

// Eight 16-bit values of one 16-byte vector as fp32.
template <int DT>
__device__ __forceinline__ void unpack8(float (&v)[8], uint4 w) {
  const mc::u32 ws[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    v[2 * e] = Dt<DT>::lo(ws[e]);
    v[2 * e + 1] = Dt<DT>::hi(ws[e]);
  }
}

// row[t .. t+7] as fp32, zero outside [0, len). `vec`: row + t is 16-byte aligned for every t used.
template <int DT>
__device__ __forceinline__ void load8(float (&v)[8], const u16* row, int t, int len, bool vec) {
  if (vec && t >= 0 && t + 8 <= len) {
    unpack8<DT>(v, mc::ldg_stream16(row + t));
    return;
  }
#pragma unroll
  for (int e = 0; e < 8; ++e) v[e] = (t + e >= 0 && t + e < len) ? Dt<DT>::one(mc::ldg_stream2(row + t + e)) : 0.f;
}

// re *= g0[t .. t+7] and, with a second sequence, im *= g1[t .. t+7] (load8's bounds).
template <int DT>
__device__ __forceinline__ void gate8(float (&re)[8], float (&im)[8], const u16* g0, const u16* g1, int t, int len,
                                      bool v0, bool v1, bool two) {
  float g[8];
  load8<DT>(g, g0, t, len, v0);
#pragma unroll
  for (int e = 0; e < 8; ++e) re[e] *= g[e];
  if (two) {
    load8<DT>(g, g1, t, len, v1);
#pragma unroll
    for (int e = 0; e < 8; ++e) im[e] *= g[e];
  }
}

// row[t .. t+7] = v, only inside [0, len).
template <int DT>
__device__ __forceinline__ void store8(u16* row, int t, int len, bool vec, const float (&v)[8]) {
  if (vec && t >= 0 && t + 8 <= len) {
    __stcs(reinterpret_cast<uint4*>(row + t),
           make_uint4(Dt<DT>::pack(v[0], v[1]), Dt<DT>::pack(v[2], v[3]), Dt<DT>::pack(v[4], v[5]),
                      Dt<DT>::pack(v[6], v[7])));
    return;
  }
#pragma unroll
  for (int e = 0; e < 8; ++e)
    if (t + e >= 0 && t + e < len) mc::stg_stream2(row + t + e, Dt<DT>::from(v[e]));
}

__device__ __forceinline__ void cp_async8(cf* dst, const cf* src) {
  mc::cp_async_ca<8>(mc::smem_u32(dst), src);
}

// Pass 1: a tile of C columns (n2 in [c0, c0 + C)) of one pair, all N1 rows.
template <int N1, int N2, int C, int DT, bool PRE>
__device__ __forceinline__ void cols_fwd(const u16* __restrict__ u, const u16* __restrict__ pre, cf* __restrict__ ws,
                                         long long usb, long long ush, long long psb, long long psh, int B, int H,
                                         int L, long long pair0, unsigned keep) {
  using CC = ColCfg<N1, N2, C>;
  using LY = typename CC::LY;
  static_assert(C % 8 == 0, "column tiles are loaded 8 columns at a time");
  constexpr int CH = C / 8;
  extern __shared__ __align__(16) unsigned char lc_smem[];
  cf* buf = reinterpret_cast<cf*>(lc_smem);
  const int tid = threadIdx.x;
  const int BP = (B + 1) / 2;
  const long long pl = blockIdx.x;
  const Seq su = pair_seq(pair0 + pl, B, BP, usb, ush);
  const Seq sp = pair_seq(pair0 + pl, B, BP, psb, psh);
  const int c0 = blockIdx.y * C;
  const bool two = su.off1 >= 0;
  const u16* u0 = u + su.off0;
  const u16* u1 = u + (two ? su.off1 : su.off0);
  const u16* p0 = pre + sp.off0;
  const u16* p1 = pre + (two ? sp.off1 : sp.off0);
  // Rows start at multiples of N2 and tiles at multiples of 8: one alignment test per sequence.
  const bool vu0 = aligned16(u0), vu1 = aligned16(u1), vp0 = aligned16(p0), vp1 = aligned16(p1);
  // G tasks per round: all their 16-byte loads are issued before the first use (the load
  // latency, not the bandwidth, bounded this pass); tails and unaligned rows take load8.
  constexpr int TASKS = N1 * CH / CC::THREADS;
  constexpr int G = PRE ? 2 : 4;
  static_assert(N1 * CH % CC::THREADS == 0 && TASKS % G == 0, "whole rounds of G tasks per thread");
  constexpr int NW = PRE ? 4 : 2;  // vectors per task: u0, u1 (, pre0, pre1)
  const bool vall = vu0 && vu1 && (!PRE || (vp0 && vp1));
  const bool causal = L <= CC::N / 2;  // rows n1 >= N1 / 2 are zero: never stored, never read
#pragma unroll 1
  for (int t0 = 0; t0 < TASKS; t0 += G) {
    uint4 w[G][NW];
    bool fast[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const int task = tid + (t0 + g) * CC::THREADS;
      const int n = (task / CH) * N2 + c0 + (task % CH) * 8;
      fast[g] = vall && n + 8 <= L;
      const uint4 z = make_uint4(0, 0, 0, 0);
      w[g][0] = fast[g] ? mc::ldg_stream16(u0 + n) : z;
      w[g][1] = fast[g] && two ? mc::ldg_stream16(u1 + n) : z;
      if (PRE) {
        w[g][NW - 2] = fast[g] ? mc::ldg_stream16(p0 + n) : z;
        w[g][NW - 1] = fast[g] && two ? mc::ldg_stream16(p1 + n) : z;
      }
    }
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const int task = tid + (t0 + g) * CC::THREADS;
      const int n1 = task / CH, c = (task % CH) * 8;
      if (causal && n1 >= N1 / 2) continue;
      const int n = n1 * N2 + c0 + c;
      float re[8], im[8];
      if (fast[g]) {
        unpack8<DT>(re, w[g][0]);
        unpack8<DT>(im, w[g][1]);
        if (PRE) {
          float ga[8], gb[8];
          unpack8<DT>(ga, w[g][NW - 2]);
          unpack8<DT>(gb, w[g][NW - 1]);
#pragma unroll
          for (int e = 0; e < 8; ++e) {
            re[e] *= ga[e];
            im[e] *= gb[e];
          }
        }
      } else {
        load8<DT>(re, u0, n, L, vu0);
        if (two) {
          load8<DT>(im, u1, n, L, vu1);
        } else {
#pragma unroll
          for (int e = 0; e < 8; ++e) im[e] = 0.f;
        }
        if (PRE) gate8<DT>(re, im, p0, p1, n, L, vp0, vp1, two);
      }
#pragma unroll
      for (int e = 0; e < 8; ++e) buf[LY::at(c + e, n1)] = cf{re[e], im[e]};
    }
  }
  __syncthreads();
  // Twiddle w_N^(n2 k1) (n2 k1 < N: no reduction) and store to ws; zeroed classes are never
  // stored. With a radix-16 innermost stage (N1 = 256) that stage does it straight from its
  // registers (coalesced: adjacent threads take adjacent columns); a radix-2/4/8 one measured
  // slower that way (4M: N1 = 512), so there the tile goes through shared memory first.
  constexpr int RI = Inner<N1>::R;
  const auto tw = [c0](int c, int r, cf& v) { v = cmul(v, twiddle<-1, CC::N>((c0 + c) * digit_rev<N1>(r))); };
  if (causal) {
    stage<LY, N1, C, 16, N1, -1, false, CC::THREADS, 0, 1, NoHook, NoHook, 1>(buf, tid, keep);
  } else {
    stage<LY, N1, C, 16, N1, -1, false, CC::THREADS>(buf, tid, keep);
  }
  __syncthreads();
  if constexpr (CC::DIRECT) {
    fft_fwd<LY, N1, C, N1 / 16, CC::THREADS, false>(buf, tid, keep);
    stage<LY, N1, C, RI, RI, -1, false, CC::THREADS, 2, N2, NoHook, decltype(tw)>(buf, tid, keep, ws + pl * CC::N + c0,
                                                                                   {}, tw);
  } else {
    fft_fwd<LY, N1, C, N1 / 16, CC::THREADS>(buf, tid, keep);
    cf* out = ws + pl * CC::N + c0;
#pragma unroll 4
    for (int task = tid; task < N1 * C / 2; task += CC::THREADS) {
      const int r = task / (C / 2), c = (task % (C / 2)) * 2;
      if (!kept<N1>(keep, r)) continue;  // a zeroed class: never read back
      cf a = buf[LY::at(c, r)], b = buf[LY::at(c + 1, r)];
      tw(c, r, a);
      tw(c + 1, r, b);
      __stcg(reinterpret_cast<float4*>(out + static_cast<long long>(r) * N2 + c), make_float4(a.x, a.y, b.x, b.y));
    }
  }
}

// Pass 3: C columns of one pair: twiddle back, inverse DFT over k1, postgate, crop, store.
template <int N1, int N2, int C, int DT, bool POST>
__device__ __forceinline__ void cols_inv(const cf* __restrict__ ws, const u16* __restrict__ post, u16* __restrict__ y,
                                         long long ysb, long long ysh, long long qsb, long long qsh, int B, int H,
                                         int out_offset, int Lout, long long pair0, unsigned keep) {
  using CC = ColCfg<N1, N2, C>;
  using LY = typename CC::LY;
  static_assert(C % 8 == 0, "column tiles are stored 8 columns at a time");
  constexpr int CH = C / 8;
  extern __shared__ __align__(16) unsigned char lc_smem[];
  cf* buf = reinterpret_cast<cf*>(lc_smem);
  const int tid = threadIdx.x;
  const int BP = (B + 1) / 2;
  const long long pl = blockIdx.x;
  const Seq sy = pair_seq(pair0 + pl, B, BP, ysb, ysh);
  const Seq sq = pair_seq(pair0 + pl, B, BP, qsb, qsh);
  const int c0 = blockIdx.y * C;
  // Twiddle back, w_N^(n2 k1), as the innermost inverse stage reads each element. With a
  // radix-16 innermost stage (CC::DIRECT) it reads ws straight from global memory (zeros for the
  // zeroed classes' rows, which the other passes never write); otherwise cp.async stages the tile.
  constexpr int RI = Inner<N1>::R;
  const auto untwiddle = [c0](int c, int r, cf& v) { v = cmul(v, twiddle<1, CC::N>((c0 + c) * digit_rev<N1>(r))); };
  cf* in = const_cast<cf*>(ws) + pl * CC::N + c0;  // read only
  if constexpr (CC::DIRECT) {
    stage<LY, N1, C, RI, RI, 1, true, CC::THREADS, 1, N2, decltype(untwiddle)>(buf, tid, keep, in, untwiddle);
  } else {
#pragma unroll 8
    for (int idx = tid; idx < N1 * C; idx += CC::THREADS) {
      const int r = idx / C, c = idx % C;
      if (kept<N1>(keep, r)) {
        cp_async8(buf + LY::at(c, r), in + static_cast<long long>(r) * N2 + c);
      } else {
        buf[LY::at(c, r)] = cf{0.f, 0.f};
      }
    }
    mc::cp_async_commit();
    mc::cp_async_wait<0>();
    __syncthreads();
    stage<LY, N1, C, RI, RI, 1, true, CC::THREADS, 0, 1, decltype(untwiddle)>(buf, tid, keep, nullptr, untwiddle);
  }
  __syncthreads();
  fft_inv<LY, N1, C, N1 / 16, CC::THREADS, false>(buf, tid, keep);
  if (out_offset >= 0 && out_offset + Lout <= CC::N / 2) {  // causal: outputs m1 >= N1 / 2 unused
    stage<LY, N1, C, 16, N1, 1, true, CC::THREADS, 0, 1, NoHook, NoHook, 2>(buf, tid, keep);
  } else {
    stage<LY, N1, C, 16, N1, 1, true, CC::THREADS>(buf, tid, keep);
  }
  __syncthreads();
  const bool two = sy.off1 >= 0;
  u16* y0 = y + sy.off0;
  u16* y1 = y + (two ? sy.off1 : sy.off0);
  const u16* q0 = post + sq.off0;
  const u16* q1 = post + (two ? sq.off1 : sq.off0);
  // t = m1 N2 + c0 + c - out_offset with c0 + c a multiple of 8: alignment fixed per sequence.
  const int shift = 2 * out_offset;
  const bool vy0 = aligned16(reinterpret_cast<const char*>(y0) - shift);
  const bool vy1 = aligned16(reinterpret_cast<const char*>(y1) - shift);
  const bool vq0 = aligned16(reinterpret_cast<const char*>(q0) - shift);
  const bool vq1 = aligned16(reinterpret_cast<const char*>(q1) - shift);
#pragma unroll 2
  for (int task = tid; task < N1 * CH; task += CC::THREADS) {
    const int m1 = task / CH, c = (task % CH) * 8;
    const int t = m1 * N2 + c0 + c - out_offset;
    if (t + 8 <= 0 || t >= Lout) continue;
    float re[8], im[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const cf v = buf[LY::at(c + e, m1)];
      re[e] = v.x;
      im[e] = v.y;
    }
    if (POST) gate8<DT>(re, im, q0, q1, t, Lout, vq0, vq1, two);
    store8<DT>(y0, t, Lout, vy0, re);
    if (two) store8<DT>(y1, t, Lout, vy1, im);
  }
}

template <int N2>
struct RowCfg {
  static constexpr int ROWS = N2 >= 4096 ? 1 : 4096 / N2;  // rows per block: >= 4096 points
  static constexpr int THREADS = N2 >= 16384 ? 512 : 256;
  // blocks per SM the registers are sized for (80 per thread at 3 x 256; a 16K row fills an SM)
  static constexpr int MINB = N2 >= 16384 ? 1 : 3;
  using LY = Layout<N2, ROWS, false>;
  // The filter rows are staged in shared memory too while that keeps 3 blocks per SM.
  static constexpr bool KSMEM = ROWS * N2 <= 4096;
  static constexpr int SMEM = LY::SIZE * 8 + (KSMEM ? ROWS * N2 * 8 : 0);
};

// Pass 2: ROWS rows (k1 positions) of one pair: DFT over n2, filter, inverse DFT, in place.
// kf: (H, N1, N2) complex fp32 in the kernel's (row, column) order, scaled by 1/N.
// Frequency-sparse (keep != 0xffff): gridDim.y covers only the kept classes' row groups.
template <int N1, int N2>
__device__ __forceinline__ void rows(cf* __restrict__ ws, const cf* __restrict__ kf, int B, long long pair0,
                                     unsigned keep) {
  using RC = RowCfg<N2>;
  using LY = typename RC::LY;
  constexpr int ROWS = RC::ROWS;
  extern __shared__ __align__(16) unsigned char lc_smem[];
  cf* buf = reinterpret_cast<cf*>(lc_smem);
  cf* kbuf = buf + LY::SIZE;
  const int tid = threadIdx.x;
  const int BP = (B + 1) / 2;
  const long long pl = blockIdx.x;
  const int h = static_cast<int>((pair0 + pl) / BP);
  int r0 = blockIdx.y * ROWS;
  if (keep != 0xffffu) {  // the blockIdx.y / PER-th kept class (PER row groups per class)
    constexpr int PER = N1 / 16 / ROWS;
    static_assert(PER >= 1 && N1 % (16 * ROWS) == 0, "row groups inside one class");
    int nth = blockIdx.y / PER, cls = 0;
    for (unsigned m = keep;; m &= m - 1) {
      cls = __ffs(m) - 1;
      if (nth-- == 0) break;
    }
    r0 = cls * (N1 / 16) + (blockIdx.y % PER) * ROWS;
  }
  cf* data = ws + pl * (static_cast<long long>(N1) * N2) + static_cast<long long>(r0) * N2;
  const cf* filt = kf + (static_cast<long long>(h) * N1 + r0) * N2;
  if constexpr (RC::KSMEM) {
#pragma unroll 8
    for (int idx = tid; idx < ROWS * N2; idx += RC::THREADS) cp_async8(kbuf + idx, filt + idx);
    mc::cp_async_commit();
  }
  // The outermost stages read and write the rows in global memory directly (coalesced: adjacent
  // threads take adjacent butterflies), so the row never takes a staging trip through buf.
  constexpr int R1 = Radix<N2>::R;
  stage<LY, N2, ROWS, R1, N2, -1, false, RC::THREADS, 1>(buf, tid, 0xffffu, data);
  __syncthreads();
  fft_fwd<LY, N2, ROWS, N2 / R1, RC::THREADS, false>(buf, tid);
  if constexpr (RC::KSMEM) {
    mc::cp_async_wait<0>();
    __syncthreads();
  }
  const auto filter = [kbuf, filt](int c, int x, cf& v) {
    const int idx = c * N2 + x;
    cf k;
    if constexpr (RC::KSMEM) {
      k = kbuf[idx];
    } else {
      const float2 g = __ldg(reinterpret_cast<const float2*>(filt) + idx);
      k = cf{g.x, g.y};
    }
    v = cmul(v, k);
  };
  fft_mid<LY, N2, ROWS, RC::THREADS>(buf, tid, filter);
  fft_inv<LY, N2, ROWS, N2 / R1, RC::THREADS, false>(buf, tid);
  stage<LY, N2, ROWS, R1, N2, 1, true, RC::THREADS, 2>(buf, tid, 0xffffu, data);
}

}  // namespace lc

template <int N1, int N2, int C, int DT, bool PRE>
__global__ void __launch_bounds__(256, 3) long_cols_fwd(const unsigned short* u, const unsigned short* pre, lc::cf* ws,
                                                     long long usb, long long ush, long long psb, long long psh,
                                                     int B, int H, int L, long long pair0, unsigned keep) {
  lc::cols_fwd<N1, N2, C, DT, PRE>(u, pre, ws, usb, ush, psb, psh, B, H, L, pair0, keep);
}

template <int N1, int N2>
__global__ void __launch_bounds__(lc::RowCfg<N2>::THREADS, lc::RowCfg<N2>::MINB) long_rows(lc::cf* ws, const lc::cf* kf, int B,
                                                                     long long pair0, unsigned keep) {
  lc::rows<N1, N2>(ws, kf, B, pair0, keep);
}

template <int N1, int N2, int C, int DT, bool POST>
__global__ void __launch_bounds__(256, 3) long_cols_inv(const lc::cf* ws, const unsigned short* post, unsigned short* y,
                                                     long long ysb, long long ysh, long long qsb, long long qsh,
                                                     int B, int H, int out_offset, int Lout, long long pair0,
                                                     unsigned keep) {
  lc::cols_inv<N1, N2, C, DT, POST>(ws, post, y, ysb, ysh, qsb, qsh, B, H, out_offset, Lout, pair0, keep);
}
