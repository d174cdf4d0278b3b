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

template <bool REVERSE>
__global__ void __launch_bounds__(256)
kernel_order_spectrum(const float2* __restrict__ kr, const int* __restrict__ freq, int n,
                      long long shift, unsigned short* __restrict__ out) {
  __shared__ float wmax[8];
  const int h = blockIdx.x, tid = threadIdx.x, nb = n / 2 + 1;
  const float2* row = kr + (long long)h * nb;
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
  const float sc = ldexpf(1.f, -e);
  const long long sh = ((shift % n) + n) % n;
  u32* dst = (u32*)(out + (long long)h * (2 * n + 8));
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
