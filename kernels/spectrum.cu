// cufftconv: a filter's spectrum in a fused kernel's own order, in one pass per channel.
//
// In: kr, the rfft of each zero-padded filter row (H rows of n/2 + 1 complex fp32 bins), and
// freq[pos], the frequency held at each position of the kernel's order. Out: per channel
// 2n fp16 values (re, im at each position) scaled by 2^-e with e the smallest integer such
// that max |K| <= 2^e, then e itself as fp16 and 7 zeros (FusedConv.filter_spectrum's layout).
// REVERSE: the spectrum of r[m] = k[(shift - m) mod n] instead, exp(-2 pi i f shift / n)
// conj(K[f]) (the backward's adjoint filter): same magnitudes, so the same e.
#include "monarch_prims.cuh"

using mc::pack_h2;
using mc::u32;

// The exponent e of a spectrum's rfft bins row[0, nb) (the smallest integer with max |K| <=
// 2^e; 0 for an all-zero row), block-wide over 256 threads; row may be global or shared.
__device__ __forceinline__ int spectrum_exponent(const float2* row, int nb) {
  __shared__ float wmax[8];
  const int tid = threadIdx.x;
  float m = 0.f;
  for (int i = tid; i < nb; i += 256) m = fmaxf(m, hypotf(row[i].x, row[i].y));
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if ((tid & 31) == 0) wmax[tid >> 5] = m;
  __syncthreads();
  m = wmax[0];
  for (int w = 1; w < 8; ++w) m = fmaxf(m, wmax[w]);
  int e = 0;
  if (m > 0.f) {  // m = f 2^x, f in [0.5, 1): m <= 2^e for e = x, or x - 1 when f = 0.5
    int x;
    const float f = frexpf(m, &x);
    e = f == 0.5f ? x - 1 : x;
  }
  return e;
}

// One channel's output row (2 n + 8 halves) from its rfft bins row[0, n / 2] and exponent e.
template <bool REVERSE>
__device__ __forceinline__ void order_spectrum(const float2* row, const int* __restrict__ freq, int n,
                                               long long shift, int e, u32* dst) {
  const int tid = threadIdx.x;
  const float sc = ldexpf(1.f, -e);
  const long long sh = ((shift % n) + n) % n;
  for (int pos = tid; pos < n; pos += 256) {
    const int f = freq[pos];
    const bool mirror = f > n / 2;
    float2 z = row[mirror ? n - f : f];
    if (mirror) z.y = -z.y;
    if (REVERSE) {  // exp(-2 pi i f shift / n) conj(z), the phase reduced exactly mod n
      float s, c;
      sincospif(-2.f * (float)((f * sh) % n) / (float)n, &s, &c);
      z = make_float2(c * z.x + s * z.y, s * z.x - c * z.y);
    }
    dst[pos] = pack_h2(z.x * sc, z.y * sc);
  }
  if (tid < 4) dst[n + tid] = tid == 0 ? pack_h2((float)e, 0.f) : 0u;
}

template <bool REVERSE>
__global__ void __launch_bounds__(256)
kernel_order_spectrum(const float2* __restrict__ kr, const int* __restrict__ freq, int n,
                      long long shift, unsigned short* __restrict__ out) {
  const int h = blockIdx.x;
  const float2* row = kr + (long long)h * (n / 2 + 1);
  const int e = spectrum_exponent(row, n / 2 + 1);
  order_spectrum<REVERSE>(row, freq, n, shift, e, (u32*)(out + (long long)h * (2 * n + 8)));
}

// The filter gradient's last step before one inverse rfft per channel: the Hermitian part of
// P = sum over the splits of the backward kernel's accumulator (kernel order, see
// MonarchConv::run_bwd) in rfft layout, out[h][f] = scale (P[f] + conj(P[n - f])) for
// f <= n / 2; with scale = 1 / (2 n), its unnormalised inverse rfft is Re(IFFT(P)).
// inv[f]: the kernel-order position of f.
extern "C" __global__ void __launch_bounds__(256)
dk_hermitian(const float2* __restrict__ acc, int nsplit, int H, int n, const int* __restrict__ inv,
             float scale, float2* __restrict__ out) {
  const int nb = n / 2 + 1;
  const long long total = (long long)H * nb;
  for (long long i = blockIdx.x * 256ll + threadIdx.x; i < total; i += (long long)gridDim.x * 256) {
    const int h = (int)(i / nb), f = (int)(i - (long long)h * nb);
    const int p0 = inv[f], p1 = inv[f == 0 ? 0 : n - f];
    float2 a = make_float2(0.f, 0.f), b = make_float2(0.f, 0.f);
    for (int s = 0; s < nsplit; ++s) {  // fixed order: deterministic
      const float2* row = acc + ((long long)s * H + h) * n;
      const float2 x = row[p0], y = row[p1];
      a.x += x.x;
      a.y += x.y;
      b.x += y.x;
      b.y += y.y;
    }
    out[i] = make_float2(scale * (a.x + b.x), scale * (a.y - b.y));
  }
}

// A filter row's value as float and back, for k stored as fp16 (KT = 0) or bfloat16 (1) bits,
// float (2) or double (3): the backward's fast path reads k and writes dk in k's own dtype.
template <int KT>
struct KType;
template <>
struct KType<0> {
  typedef unsigned short T;
  static __device__ __forceinline__ float in(T v) { return mc::Dt<0>::one(v); }
  static __device__ __forceinline__ T out(float f) { return mc::Dt<0>::from(f); }
};
template <>
struct KType<1> {
  typedef unsigned short T;
  static __device__ __forceinline__ float in(T v) { return mc::Dt<1>::one(v); }
  static __device__ __forceinline__ T out(float f) { return mc::Dt<1>::from(f); }
};
template <>
struct KType<2> {
  typedef float T;
  static __device__ __forceinline__ float in(T v) { return v; }
  static __device__ __forceinline__ T out(float f) { return f; }
};
template <>
struct KType<3> {
  typedef double T;
  static __device__ __forceinline__ float in(T v) { return (float)v; }
  static __device__ __forceinline__ T out(float f) { return (double)f; }
};

// out[h][j] = k[h][j] for j < lk, else 0 (h < H, j < n): the zero-padded float32 rows one
// rfft turns into the filter's spectrum. k: H rows of row_len values (lk <= row_len, n).
template <int KT>
__global__ void __launch_bounds__(256)
pad_filter(const typename KType<KT>::T* __restrict__ k, int H, int lk, int row_len, int n,
           float* __restrict__ out) {
  const long long total = (long long)H * n;
  for (long long i = blockIdx.x * 256ll + threadIdx.x; i < total; i += (long long)gridDim.x * 256) {
    const int h = (int)(i / n), j = (int)(i - (long long)h * n);
    out[i] = j < lk ? KType<KT>::in(k[(long long)h * row_len + j]) : 0.f;
  }
}

// dk[h][s] = corr[h][(start + s) mod n] for s < lk, 0 for lk <= s < row_len (causal taps past
// L reach no output), in k's dtype: dk_hermitian's inverse rfft cut to the filter's window.
template <int KT>
__global__ void __launch_bounds__(256)
dk_window(const float* __restrict__ corr, int H, int n, int start, int lk, int row_len,
          typename KType<KT>::T* __restrict__ dk) {
  const long long total = (long long)H * row_len;
  for (long long i = blockIdx.x * 256ll + threadIdx.x; i < total; i += (long long)gridDim.x * 256) {
    const int h = (int)(i / row_len), s = (int)(i - (long long)h * row_len);
    int j = start + s;
    j = j >= n ? j - n : j;
    dk[i] = KType<KT>::out(s < lk ? corr[(long long)h * n + j] : 0.f);
  }
}

// ---------------------------------------------------------------------------------------------
// Per-channel transforms in shared memory (n <= DIRECT_MAX_N in cufftconv.fused): one launch
// where cuFFT takes three (padding, the batched rfft, the ordering kernel) or the backward's
// dk takes three (dk_hermitian, the inverse rfft, dk_window). A real size-n transform is one
// complex size-M = n / 2 transform of the even / odd samples as (re, im) plus a split step;
// the complex one is radix-2 in fp32 on bit-reversed input (256 threads, M in [128, 4096]).

// tw[j] = exp(-2 pi i j / M), j < M / 2.
__device__ __forceinline__ void fft_twiddles(float2* tw, int M) {
  for (int j = threadIdx.x; j < M / 2; j += 256) {
    float s, c;
    sincospif(-2.f * (float)j / (float)M, &s, &c);
    tw[j] = make_float2(c, s);
  }
}

// Where sample m of an M = 2^lg point transform goes before block_fft (bit reversal).
__device__ __forceinline__ int fft_slot(int m, int lg) { return (int)(__brev((unsigned)m) >> (32 - lg)); }

// In place: z (bit-reversed order, written before a barrier) -> its DFT in natural order,
// exp(-2 pi i ...) (INV: exp(+...), unnormalised). Ends with a barrier.
template <bool INV>
__device__ __forceinline__ void block_fft(float2* z, const float2* tw, int lg) {
  const int M = 1 << lg;
  for (int s = 0; s < lg; ++s) {
    const int hs = 1 << s;
    for (int b = threadIdx.x; b < M / 2; b += 256) {
      const int j = b & (hs - 1), i0 = ((b >> s) << (s + 1)) | j, i1 = i0 + hs;
      const float2 w = tw[j << (lg - 1 - s)];
      const float wy = INV ? -w.y : w.y;
      const float2 a = z[i0], c = z[i1];
      const float2 t = make_float2(c.x * w.x - c.y * wy, c.x * wy + c.y * w.x);
      z[i0] = make_float2(a.x + t.x, a.y + t.y);
      z[i1] = make_float2(a.x - t.x, a.y - t.y);
    }
    __syncthreads();
  }
}

// k's rows in their dtype (H rows of row_len, the first lk taps used, zero padded to n) ->
// FusedConv.filter_spectrum's rows: own (k's spectrum) and / or rev (the adjoint, shift as
// kernel_order_spectrum<true>); a null output is skipped. Shared: (M + 1) + M / 2 float2.
template <int KT>
__global__ void __launch_bounds__(256)
filter_spectra_direct(const typename KType<KT>::T* __restrict__ k, int lk, int row_len, int n,
                      const int* __restrict__ freq, long long shift, unsigned short* __restrict__ rev,
                      unsigned short* __restrict__ own) {
  extern __shared__ float2 sp_smem[];
  const int M = n / 2, lg = 30 - __clz(n), h = blockIdx.x, tid = threadIdx.x;
  float2 *z = sp_smem, *tw = sp_smem + M + 1;
  fft_twiddles(tw, M);
  const typename KType<KT>::T* row = k + (long long)h * row_len;
  for (int m = tid; m < M; m += 256) {  // z[m] = x[2 m] + i x[2 m + 1]
    const float a = 2 * m < lk ? KType<KT>::in(row[2 * m]) : 0.f;
    const float b = 2 * m + 1 < lk ? KType<KT>::in(row[2 * m + 1]) : 0.f;
    z[fft_slot(m, lg)] = make_float2(a, b);
  }
  __syncthreads();
  block_fft<false>(z, tw, lg);
  // split: X[f] = E + W^f O, X[M - f] = conj(E - W^f O) with E = (Z[f] + conj(Z[M - f])) / 2,
  // O = (Z[f] - conj(Z[M - f])) / 2i, W = exp(-2 pi i / n); X[0], X[M] from Z[0]
  for (int f = tid; f <= M / 2; f += 256) {
    const float2 a = z[f], b = z[f == 0 ? 0 : M - f];
    if (f == 0) {
      z[0] = make_float2(a.x + a.y, 0.f);
      z[M] = make_float2(a.x - a.y, 0.f);
      continue;
    }
    const float ex = 0.5f * (a.x + b.x), ey = 0.5f * (a.y - b.y);
    const float ox = 0.5f * (a.y + b.y), oy = -0.5f * (a.x - b.x);
    float s, c;
    sincospif(-2.f * (float)f / (float)n, &s, &c);
    const float tx = c * ox - s * oy, ty = c * oy + s * ox;
    z[f] = make_float2(ex + tx, ey + ty);
    z[M - f] = make_float2(ex - tx, ty - ey);
  }
  __syncthreads();
  const int e = spectrum_exponent(z, M + 1);
  const long long ro = (long long)h * (2 * n + 8);
  if (rev != nullptr) order_spectrum<true>(z, freq, n, shift, e, (u32*)(rev + ro));
  if (own != nullptr) order_spectrum<false>(z, freq, n, 0, e, (u32*)(own + ro));
}

// dk_hermitian, the unnormalised inverse rfft and dk_window in one launch: per channel h the
// Hermitian part X[f] = scale (P[f] + conj(P[n - f])) of P = sum over the splits of acc (kernel
// order, inv[f] its position), then x = its inverse real transform through the half-size one
// (Z[m] = E + i O, E = X[m] + conj(X[M - m]), O = (X[m] - conj(X[M - m])) exp(2 pi i m / n):
// z = IDFT_M(Z) = x[2 t] + i x[2 t + 1]), then dk[h][s] = x[(start + s) mod n] for s < lk, 0 up
// to row_len, in k's dtype. Shared as filter_spectra_direct's.
template <int KT>
__global__ void __launch_bounds__(256)
dk_finish(const float2* __restrict__ acc, int nsplit, int H, int n, const int* __restrict__ inv,
          float scale, int start, int lk, int row_len, typename KType<KT>::T* __restrict__ dk) {
  extern __shared__ float2 sp_smem[];
  const int M = n / 2, lg = 30 - __clz(n), h = blockIdx.x, tid = threadIdx.x;
  float2 *z = sp_smem, *tw = sp_smem + M + 1;
  fft_twiddles(tw, M);
  const auto P = [&](int f) {  // fixed order over the splits: deterministic
    const int p = inv[f];
    float2 a = make_float2(0.f, 0.f);
    for (int s = 0; s < nsplit; ++s) {
      const float2 v = acc[((long long)s * H + h) * n + p];
      a.x += v.x;
      a.y += v.y;
    }
    return a;
  };
  const auto X = [&](int f) {
    const float2 a = P(f), b = P(f == 0 ? 0 : n - f);
    return make_float2(scale * (a.x + b.x), scale * (a.y - b.y));
  };
  for (int m = tid; m < M; m += 256) {
    const float2 a = X(m), b = X(M - m);
    const float ex = a.x + b.x, ey = a.y - b.y, dx = a.x - b.x, dy = a.y + b.y;
    float s, c;
    sincospif(2.f * (float)m / (float)n, &s, &c);
    const float ox = c * dx - s * dy, oy = c * dy + s * dx;
    z[fft_slot(m, lg)] = make_float2(ex - oy, ey + ox);
  }
  __syncthreads();
  block_fft<true>(z, tw, lg);
  const float* x = reinterpret_cast<const float*>(z);  // x[2 t], x[2 t + 1] = z[t].x, z[t].y
  typename KType<KT>::T* out = dk + (long long)h * row_len;
  for (int s = tid; s < row_len; s += 256) {
    int j = start + s;
    j = j >= n ? j - n : j;
    out[s] = KType<KT>::out(s < lk ? x[j] : 0.f);
  }
}
