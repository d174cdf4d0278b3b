// cufftconv: the two element-wise passes of a folded frequency-sparse convolution.
//
// Keeping only the frequencies f % F == 0 of an N-point FFT is the same as an n = N / F point
// circular convolution of the input folded to period n, read back with period n:
//   xf[r, m] = sum_j x[r, m + j n]           (x = pre * u, zero past L)       fold_rows
//   y[r, t]  = post[r, t] * yc[r, (t + offset) mod n],  t < Lout             tile_rows
// with yc the dense n-point convolution of xf by the folded filter (which carries the 1 / F).
// Row r = b * H + h of a (B, H, .) operand sits at b * sb + h * sh elements; the sequence axis
// has unit stride. DT = 0: fp16, DT = 1: bfloat16 (raw bits), accumulated in fp32.
// Both passes are bound by HBM: each thread takes a chunk of 8 consecutive elements, moved as
// one 16-byte access wherever the row is aligned and the chunk lies inside it.
#include "monarch_prims.cuh"

using mc::Dt;
using mc::u16;
using mc::u32;

// Thread index i -> row r = i / cpr = b * H + h. In 32 bits when every index fits (64-bit
// divisions cost enough instructions to slow these memory-bound passes).
__device__ __forceinline__ void split_index(long long i, int cpr, int H, long long chunks,
                                            long long& r, long long& b, long long& h) {
  if (chunks <= 0x7fffffffLL) {
    const unsigned ri = (unsigned)i / (unsigned)cpr, bi = ri / (unsigned)H;
    r = ri;
    b = bi;
    h = ri - bi * (unsigned)H;
  } else {
    r = i / cpr;
    b = r / H;
    h = r - b * H;
  }
}

// x[t .. t+7] (zero from L on) as 8 floats: one 16-byte load when aligned and inside.
template <int DT, bool PRE>
__device__ __forceinline__ void load8(float (&x)[8], const u16* ur, const u16* pr, int t, int L,
                                      bool aligned) {
  if (aligned && t + 8 <= L) {
    const uint4 v = mc::ldg_stream16(ur + t);
    const u32* w = (const u32*)&v;
    uint4 g;
    if (PRE) g = mc::ldg_stream16(pr + t);
    const u32* gw = (const u32*)&g;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      float lo = Dt<DT>::lo(w[k]), hi = Dt<DT>::hi(w[k]);
      if (PRE) {  // pre * u is rounded to the input type first, as the dense kernels do
        const u32 p = Dt<DT>::pack(lo * Dt<DT>::lo(gw[k]), hi * Dt<DT>::hi(gw[k]));
        lo = Dt<DT>::lo(p);
        hi = Dt<DT>::hi(p);
      }
      x[2 * k] = lo;
      x[2 * k + 1] = hi;
    }
    return;
  }
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    float v = 0.f;
    if (t + e < L) {
      v = Dt<DT>::one(ur[t + e]);
      if (PRE) v = Dt<DT>::one(Dt<DT>::from(v * Dt<DT>::one(pr[t + e])));
    }
    x[e] = v;
  }
}

// Thread i: chunk c = i % (n / 8) of row r = i / (n / 8) of xf (n a power of two >= 256).
template <int DT, bool PRE>
__global__ void __launch_bounds__(256)
fold_rows(const u16* __restrict__ u, const u16* __restrict__ pre, u16* __restrict__ xf, int H,
          int L, int n, int F, long long u_sb, long long u_sh, long long p_sb, long long p_sh,
          long long chunks) {
  const long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i >= chunks) return;
  const int cpr = n >> 3;
  long long r, b, h;
  split_index(i, cpr, H, chunks, r, b, h);
  const int m = (int)(i - r * cpr) * 8;
  const u16* ur = u + b * u_sb + h * u_sh;
  const u16* pr = PRE ? pre + b * p_sb + h * p_sh : nullptr;
  const bool aligned = (((unsigned long long)ur | (PRE ? (unsigned long long)pr : 0ull)) & 15) == 0;
  float s[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  const int end = min(L, F * n);
#pragma unroll 4
  for (int t = m; t < end; t += n) {
    float x[8];
    load8<DT, PRE>(x, ur, pr, t, end, aligned);
#pragma unroll
    for (int e = 0; e < 8; ++e) s[e] += x[e];
  }
  uint4 o;
  u32* ow = (u32*)&o;
#pragma unroll
  for (int k = 0; k < 4; ++k) ow[k] = Dt<DT>::pack(s[2 * k], s[2 * k + 1]);
  *(uint4*)(xf + r * n + m) = o;
}

// Outputs [start, Lout) are written; yc has strides (c_sb, c_sh). start = n with yc = y itself
// (offset 0, no postgate: the kernel wrote the first period into y, the rest is copied from
// it, which saves writing and reading a separate yc). Thread i: outputs t .. t+7 (t = 8 (i % cpr)) of row r = i / cpr, cpr = ceil(Lout / 8). yc
// (B * H * n, read F times over) is small and stays in cache; y and post stream.
template <int DT, bool POST>
__global__ void __launch_bounds__(256)
tile_rows(const u16* __restrict__ yc, const u16* __restrict__ post, u16* __restrict__ y, int H,
          int n, int Lout, int offset, int start, long long y_sb, long long y_sh, long long c_sb,
          long long c_sh, long long p_sb, long long p_sh, long long chunks) {
  const long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i >= chunks) return;
  const int cpr = (Lout - start + 7) >> 3;
  long long r, b, h;
  split_index(i, cpr, H, chunks, r, b, h);
  const int t = start + (int)(i - r * cpr) * 8;
  const u16* cr = yc + b * c_sb + h * c_sh;
  const u16* pr = POST ? post + b * p_sb + h * p_sh : nullptr;
  u16* yr = y + b * y_sb + h * y_sh;
  const int s0 = (t + offset) & (n - 1);
  u16 v[8];
  if ((s0 & 7) == 0 && ((unsigned long long)cr & 15) == 0) {  // one aligned chunk of yc
    const uint4 c = __ldg((const uint4*)(cr + s0));
    const u16* cv = (const u16*)&c;
#pragma unroll
    for (int e = 0; e < 8; ++e) v[e] = cv[e];
  } else {
#pragma unroll
    for (int e = 0; e < 8; ++e) v[e] = __ldg(cr + ((s0 + e) & (n - 1)));
  }
  const bool vec = t + 8 <= Lout &&
                   (((unsigned long long)yr | (POST ? (unsigned long long)pr : 0ull)) & 15) == 0;
  if (vec) {
    uint4 o;
    u32* ow = (u32*)&o;
    if (POST) {
      const uint4 g = mc::ldg_stream16(pr + t);
      const u32* gw = (const u32*)&g;
#pragma unroll
      for (int k = 0; k < 4; ++k)
        ow[k] = Dt<DT>::pack(Dt<DT>::one(v[2 * k]) * Dt<DT>::lo(gw[k]),
                             Dt<DT>::one(v[2 * k + 1]) * Dt<DT>::hi(gw[k]));
    } else {
#pragma unroll
      for (int k = 0; k < 4; ++k) ow[k] = (u32)v[2 * k] | ((u32)v[2 * k + 1] << 16);
    }
    __stcs((uint4*)(yr + t), o);
    return;
  }
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    if (t + e >= Lout) break;
    yr[t + e] = POST ? Dt<DT>::from(Dt<DT>::one(v[e]) * Dt<DT>::one(pr[t + e])) : v[e];
  }
}
