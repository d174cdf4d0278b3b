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

// One float2 of padding every 32: butterflies whose elements are 32 or more apart would
// otherwise hit a single bank.
__device__ __forceinline__ int pidx(int x) { return x + (x >> 5); }
__host__ __device__ constexpr int padded(int n) { return n + (n >> 5); }

__device__ __forceinline__ cf cadd(cf a, cf b) { return {a.x + b.x, a.y + b.y}; }
__device__ __forceinline__ cf csub(cf a, cf b) { return {a.x - b.x, a.y - b.y}; }

// exp(SIGN * 2 pi i * e / m) for 0 <= e < m (m a power of two). The angle is reduced to
// [-pi, pi], where the fast hardware sine/cosine is accurate to ~4e-7 absolute: far below the
// 16-bit output's resolution, and a few instructions instead of sincospif's ~40.
template <int SIGN>
__device__ __forceinline__ cf twiddle(long long e, long long m) {
  float f = static_cast<float>(e) / static_cast<float>(m);
  if (f > 0.5f) f -= 1.0f;
  float s, c;
  __sincosf(6.283185307179586f * f, &s, &c);
  return {c, SIGN * s};
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
template <int R, int SIGN>
__device__ __forceinline__ void dft(cf (&x)[R]) {
#pragma unroll
  for (int span = R; span >= 2; span >>= 1) {
#pragma unroll
    for (int blk = 0; blk < R; blk += span) {
#pragma unroll
      for (int j = 0; j < span / 2; ++j) {
        const cf a = x[blk + j], b = x[blk + j + span / 2];
        x[blk + j] = cadd(a, b);
        const cf d = csub(a, b);
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

// Radix-R stage on blocks of size M of every transform. Forward (DIF): DFT over the R elements
// j + i M/R, then twiddle w_M^(SIGN j q). Inverse (DIT, the mirror): twiddle first, then DFT.
template <class LY, int N, int T, int R, int M, int SIGN, bool DIT, int THREADS>
__device__ __forceinline__ void stage(cf* buf, int tid) {
  constexpr int S = M / R;
  constexpr int NB = N / R;
#pragma unroll 1
  for (int it = tid; it < T * NB; it += THREADS) {
    int c, b;
    LY::item(it, NB, c, b);
    const int j = b % S;
    const int base = (b / S) * M + j;
    cf x[R];
#pragma unroll
    for (int i = 0; i < R; ++i) x[i] = buf[LY::at(c, base + i * S)];
    if (DIT && M > R && j != 0) {
      const cf w = twiddle<SIGN>(j, M);
      cf wq = w;
#pragma unroll
      for (int q = 1; q < R; ++q) {
        x[q] = cmul(x[q], wq);
        wq = cmul(wq, w);
      }
    }
    dft<R, SIGN>(x);
    if (!DIT && M > R && j != 0) {
      const cf w = twiddle<SIGN>(j, M);
      cf wq = w;
#pragma unroll
      for (int q = 1; q < R; ++q) {
        x[q] = cmul(x[q], wq);
        wq = cmul(wq, w);
      }
    }
#pragma unroll
    for (int i = 0; i < R; ++i) buf[LY::at(c, base + i * S)] = x[i];
  }
}

template <int M>
struct Radix {
  static constexpr int R = M >= 16 ? 16 : M;
};

// Forward: natural order in, digit-reversed out. Radix 16 while it divides, then 2, 4 or 8.
template <class LY, int N, int T, int M, int THREADS>
__device__ __forceinline__ void fft_fwd(cf* buf, int tid) {
  if constexpr (M > 1) {
    constexpr int R = Radix<M>::R;
    stage<LY, N, T, R, M, -1, false, THREADS>(buf, tid);
    __syncthreads();
    fft_fwd<LY, N, T, M / R, THREADS>(buf, tid);
  }
}

// Inverse (unnormalised): digit-reversed in, natural order out.
template <class LY, int N, int T, int M, int THREADS>
__device__ __forceinline__ void fft_inv(cf* buf, int tid) {
  if constexpr (M > 1) {
    constexpr int R = Radix<M>::R;
    fft_inv<LY, N, T, M / R, THREADS>(buf, tid);
    stage<LY, N, T, R, M, 1, true, THREADS>(buf, tid);
    __syncthreads();
  }
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
  static constexpr int N = N1 * N2;
  static constexpr int THREADS = 256;
  using LY = Layout<N1, C, true>;
  static constexpr int SMEM = LY::SIZE * 8;
};

// Pass 1: a tile of C columns (n2 in [c0, c0 + C)) of one pair, all N1 rows.
template <int N1, int N2, int C, int DT, bool PRE>
__device__ __forceinline__ void cols_fwd(const u16* __restrict__ u, const u16* __restrict__ pre, cf* __restrict__ ws,
                                         long long usb, long long ush, long long psb, long long psh, int B, int H,
                                         int L, long long pair0) {
  using CC = ColCfg<N1, N2, C>;
  using LY = typename CC::LY;
  extern __shared__ __align__(16) unsigned char lc_smem[];
  cf* buf = reinterpret_cast<cf*>(lc_smem);
  const int tid = threadIdx.x;
  const int BP = (B + 1) / 2;
  const long long pl = blockIdx.x;
  const Seq su = pair_seq(pair0 + pl, B, BP, usb, ush);
  const Seq sp = pair_seq(pair0 + pl, B, BP, psb, psh);
  const int c0 = blockIdx.y * C;
#pragma unroll 4
  for (int idx = tid; idx < N1 * C; idx += CC::THREADS) {
    const int n1 = idx / C, c = idx % C;
    const int n = n1 * N2 + c0 + c;
    cf v = {0.f, 0.f};
    if (n < L) {
      v.x = Dt<DT>::one(u[su.off0 + n]);
      if (su.off1 >= 0) v.y = Dt<DT>::one(u[su.off1 + n]);
      if (PRE) {
        v.x *= Dt<DT>::one(pre[sp.off0 + n]);
        if (sp.off1 >= 0) v.y *= Dt<DT>::one(pre[sp.off1 + n]);
      }
    }
    buf[LY::at(c, n1)] = v;
  }
  __syncthreads();
  fft_fwd<LY, N1, C, N1, CC::THREADS>(buf, tid);
  cf* out = ws + pl * CC::N;
#pragma unroll 4
  for (int idx = tid; idx < N1 * C; idx += CC::THREADS) {
    const int r = idx / C, c = idx % C;
    const int n2 = c0 + c;
    const long long e = static_cast<long long>(n2) * digit_rev<N1>(r);  // < N: no reduction
    out[static_cast<long long>(r) * N2 + n2] = cmul(buf[LY::at(c, r)], twiddle<-1>(e, CC::N));
  }
}

// Pass 3: C columns of one pair: twiddle back, inverse DFT over k1, postgate, crop, store.
template <int N1, int N2, int C, int DT, bool POST>
__device__ __forceinline__ void cols_inv(const cf* __restrict__ ws, const u16* __restrict__ post, u16* __restrict__ y,
                                         long long ysb, long long ysh, long long qsb, long long qsh, int B, int H,
                                         int out_offset, int Lout, long long pair0) {
  using CC = ColCfg<N1, N2, C>;
  using LY = typename CC::LY;
  extern __shared__ __align__(16) unsigned char lc_smem[];
  cf* buf = reinterpret_cast<cf*>(lc_smem);
  const int tid = threadIdx.x;
  const int BP = (B + 1) / 2;
  const long long pl = blockIdx.x;
  const Seq sy = pair_seq(pair0 + pl, B, BP, ysb, ysh);
  const Seq sq = pair_seq(pair0 + pl, B, BP, qsb, qsh);
  const int c0 = blockIdx.y * C;
  const cf* in = ws + pl * CC::N;
#pragma unroll 4
  for (int idx = tid; idx < N1 * C; idx += CC::THREADS) {
    const int r = idx / C, c = idx % C;
    const int n2 = c0 + c;
    const long long e = static_cast<long long>(n2) * digit_rev<N1>(r);
    buf[LY::at(c, r)] = cmul(in[static_cast<long long>(r) * N2 + n2], twiddle<1>(e, CC::N));
  }
  __syncthreads();
  fft_inv<LY, N1, C, N1, CC::THREADS>(buf, tid);
#pragma unroll 4
  for (int idx = tid; idx < N1 * C; idx += CC::THREADS) {
    const int m1 = idx / C, c = idx % C;
    const int t = m1 * N2 + c0 + c - out_offset;
    if (t < 0 || t >= Lout) continue;
    cf v = buf[LY::at(c, m1)];
    if (POST) {
      v.x *= Dt<DT>::one(post[sq.off0 + t]);
      if (sq.off1 >= 0) v.y *= Dt<DT>::one(post[sq.off1 + t]);
    }
    y[sy.off0 + t] = Dt<DT>::from(v.x);
    if (sy.off1 >= 0) y[sy.off1 + t] = Dt<DT>::from(v.y);
  }
}

template <int N2>
struct RowCfg {
  static constexpr int ROWS = N2 >= 4096 ? 1 : 4096 / N2;  // rows per block: >= 4096 points
  static constexpr int THREADS = N2 >= 16384 ? 512 : 256;
  using LY = Layout<N2, ROWS, false>;
  static constexpr int SMEM = LY::SIZE * 8;
};

// Pass 2: ROWS rows (k1 positions) of one pair: DFT over n2, filter, inverse DFT, in place.
// kf: (H, N1, N2) complex fp32 in the kernel's (row, column) order, scaled by 1/N.
template <int N1, int N2>
__device__ __forceinline__ void rows(cf* __restrict__ ws, const cf* __restrict__ kf, int B, long long pair0) {
  using RC = RowCfg<N2>;
  using LY = typename RC::LY;
  constexpr int ROWS = RC::ROWS;
  extern __shared__ __align__(16) unsigned char lc_smem[];
  cf* buf = reinterpret_cast<cf*>(lc_smem);
  const int tid = threadIdx.x;
  const int BP = (B + 1) / 2;
  const long long pl = blockIdx.x;
  const int h = static_cast<int>((pair0 + pl) / BP);
  const int r0 = blockIdx.y * ROWS;
  cf* data = ws + pl * (static_cast<long long>(N1) * N2) + static_cast<long long>(r0) * N2;
  const cf* filt = kf + (static_cast<long long>(h) * N1 + r0) * N2;
#pragma unroll 4
  for (int idx = tid; idx < ROWS * N2; idx += RC::THREADS) buf[LY::at(idx / N2, idx % N2)] = data[idx];
  __syncthreads();
  fft_fwd<LY, N2, ROWS, N2, RC::THREADS>(buf, tid);
#pragma unroll 4
  for (int idx = tid; idx < ROWS * N2; idx += RC::THREADS) {
    const int a = LY::at(idx / N2, idx % N2);
    const float2 k = __ldg(reinterpret_cast<const float2*>(filt) + idx);
    buf[a] = cmul(buf[a], cf{k.x, k.y});
  }
  __syncthreads();
  fft_inv<LY, N2, ROWS, N2, RC::THREADS>(buf, tid);
#pragma unroll 4
  for (int idx = tid; idx < ROWS * N2; idx += RC::THREADS) data[idx] = buf[LY::at(idx / N2, idx % N2)];
}

}  // namespace lc

template <int N1, int N2, int C, int DT, bool PRE>
__global__ void __launch_bounds__(256) long_cols_fwd(const unsigned short* u, const unsigned short* pre, lc::cf* ws,
                                                     long long usb, long long ush, long long psb, long long psh,
                                                     int B, int H, int L, long long pair0) {
  lc::cols_fwd<N1, N2, C, DT, PRE>(u, pre, ws, usb, ush, psb, psh, B, H, L, pair0);
}

template <int N1, int N2>
__global__ void __launch_bounds__(lc::RowCfg<N2>::THREADS, 1) long_rows(lc::cf* ws, const lc::cf* kf, int B,
                                                                     long long pair0) {
  lc::rows<N1, N2>(ws, kf, B, pair0);
}

template <int N1, int N2, int C, int DT, bool POST>
__global__ void __launch_bounds__(256) long_cols_inv(const lc::cf* ws, const unsigned short* post, unsigned short* y,
                                                     long long ysb, long long ysh, long long qsb, long long qsh,
                                                     int B, int H, int out_offset, int Lout, long long pair0) {
  lc::cols_inv<N1, N2, C, DT, POST>(ws, post, y, ysb, ysh, qsb, qsh, B, H, out_offset, Lout, pair0);
}
