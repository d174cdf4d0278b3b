// cufftconv: tensor-core pieces shared by the twiddle-folded kernels (twiddle_fold.cu,
// pair_fold.cu): ldmatrix / stmatrix (sm_90), the padded 16x16 fp16 row layout of their
// shared-memory planes and DFT tables, complex 16x16 x 16x8 products on mma.sync m16n8k16.
#pragma once
#include "monarch_prims.cuh"

namespace tf {
using mc::u16;
using mc::u32;

__device__ __forceinline__ void ldsm_x4(u32 d[4], u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(u32 d[4], u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x2_t(u32 d[2], u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];" : "=r"(d[0]), "=r"(d[1]) : "r"(addr));
}
__device__ __forceinline__ void stsm_x2(u32 addr, u32 s0, u32 s1) {
  asm volatile("stmatrix.sync.aligned.m8n8.x2.shared.b16 [%0], {%1,%2};" ::"r"(addr), "r"(s0), "r"(s1));
}
__device__ __forceinline__ void stsm_x4(u32 addr, const u32 s[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1,%2,%3,%4};" ::"r"(addr), "r"(s[0]), "r"(s[1]),
               "r"(s[2]), "r"(s[3]));
}
__device__ __forceinline__ void stsm_x4_t(u32 addr, const u32 s[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1,%2,%3,%4};" ::"r"(addr), "r"(s[0]),
               "r"(s[1]), "r"(s[2]), "r"(s[3]));
}
__device__ __forceinline__ uint4 lds128(u32 a) {
  uint4 v;
  asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(a));
  return v;
}
__device__ __forceinline__ float exp2i(int e) { return __uint_as_float(static_cast<u32>(e + 127) << 23); }
__device__ __forceinline__ void sts128(u32 a, const uint4& v) {
  asm volatile("st.shared.v4.u32 [%0], {%1,%2,%3,%4};" ::"r"(a), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w));
}

// Shared-memory planes: 16-value rows (two 16-byte chunks); chunk h of row 16 a + b sits at
// 35 a + 2 b + h + (b >> 2): 8 rows with a or with b consecutive hit 8 bank groups, and an
// offset is a lane part plus a warp-uniform part, so addresses fold into immediates.
constexpr int ROW_CHUNKS = 35;
constexpr int PLANE = 16 * ROW_CHUNKS * 16;  // bytes per plane of 4096 16-bit values
__device__ __forceinline__ constexpr u32 cofs(int a, int b, int h) {
  return static_cast<u32>(ROW_CHUNKS * a + 2 * b + h + (b >> 2)) * 16u;
}

// Table: 32 matrices (0..15: F1[j]; 16..31: F2[j] = F3[j]), Re then Im, row-major 16x16 fp16
// rows at cofs(0, row, half).
constexpr int MAT_BYTES = 2 * ROW_CHUNKS * 16;
struct Mat {
  u32 r[4], i[4];  // A fragments
};
template <bool TRANS>
__device__ __forceinline__ Mat load_mat(u32 tab, int mat, int lane) {
  const int mi = lane >> 3, i = lane & 7;
  const int row = i + 8 * (TRANS ? (mi >> 1) : (mi & 1)), ch = TRANS ? (mi & 1) : (mi >> 1);
  const u32 base = tab + mat * MAT_BYTES + cofs(0, row, ch);
  Mat m;
  if (TRANS) {
    ldsm_x4_t(m.r, base);
    ldsm_x4_t(m.i, base + MAT_BYTES / 2);
  } else {
    ldsm_x4(m.r, base);
    ldsm_x4(m.i, base + MAT_BYTES / 2);
  }
  return m;
}
struct Acc {
  float r[4], i[4];
};
// c += a b on m16n8k8 (fp16 operands, fp32 accumulators): A {rows 0-7, rows 8-15}, B one register.
__device__ __forceinline__ void mma1688(float c[4], u32 a0, u32 a1, u32 b) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(b));
}
// z = M x (INV: conj(M)^T x from M's transposed fragments); x as B fragments {Re k0-7,
// Re k8-15, Im k0-7, Im k8-15}.
template <bool INV>
__device__ __forceinline__ Acc cmma(const Mat& m, const u32 b[4]) {
  Acc z;
#pragma unroll
  for (int c = 0; c < 4; ++c) z.r[c] = z.i[c] = 0.f;
  if (INV) {  // Re = Mr xr + Mi xi, Im = Mr xi - Mi xr
    mc::mma16816(z.r, m.r, b[0], b[1]);
    mc::mma16816(z.r, m.i, b[2], b[3]);
    mc::mma16816(z.i, m.r, b[2], b[3]);
    mc::mma16816(z.i, m.i, mc::neg_h2(b[0]), mc::neg_h2(b[1]));
  } else {  // Re = Mr xr - Mi xi, Im = Mi xr + Mr xi
    mc::mma16816(z.r, m.r, b[0], b[1]);
    mc::mma16816(z.r, m.i, mc::neg_h2(b[2]), mc::neg_h2(b[3]));
    mc::mma16816(z.i, m.i, b[0], b[1]);
    mc::mma16816(z.i, m.r, b[2], b[3]);
  }
  return z;
}
// cmma with the matrix's negated imaginary part at hand (mn = -m.i): a matrix that serves many
// tiles negates once instead of every tile's operand. The same products in the same order.
template <bool INV>
__device__ __forceinline__ Acc cmma_n(const Mat& m, const u32 (&mn)[4], const u32 b[4]) {
  Acc z;
#pragma unroll
  for (int c = 0; c < 4; ++c) z.r[c] = z.i[c] = 0.f;
  mc::mma16816(z.r, m.r, b[0], b[1]);
  mc::mma16816(z.r, INV ? m.i : mn, b[2], b[3]);
  mc::mma16816(z.i, INV ? m.r : m.i, INV ? b[2] : b[0], INV ? b[3] : b[1]);
  mc::mma16816(z.i, INV ? mn : m.r, INV ? b[0] : b[2], INV ? b[1] : b[3]);
  return z;
}
// {Re rows 0-7, Re rows 8-15, Im rows 0-7, Im rows 8-15} in the A/C 16-bit layout, times s.
template <int DT>
__device__ __forceinline__ void pack(u32 o[4], const Acc& z, float s) {
  using D = mc::Dt<DT>;
  o[0] = D::pack(z.r[0] * s, z.r[1] * s);
  o[1] = D::pack(z.r[2] * s, z.r[3] * s);
  o[2] = D::pack(z.i[0] * s, z.i[1] * s);
  o[3] = D::pack(z.i[2] * s, z.i[3] * s);
}

// W 32-bit words (16, 8 or 4 bytes): the pieces of the interleaved kernels' (TwiddleFold::IL)
// shared-memory rows.
template <int W>
struct Words {
  static_assert(W == 1 || W == 2 || W == 4, "4, 8 or 16 bytes");
  u32 w[W];
};
template <int W>
__device__ __forceinline__ Words<W> lds_words(u32 a) {
  Words<W> v;
  if constexpr (W == 4)
    asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.w[0]), "=r"(v.w[1]), "=r"(v.w[2]), "=r"(v.w[3]) : "r"(a));
  else if constexpr (W == 2)
    asm volatile("ld.shared.v2.u32 {%0,%1}, [%2];" : "=r"(v.w[0]), "=r"(v.w[1]) : "r"(a));
  else
    asm volatile("ld.shared.u32 %0, [%1];" : "=r"(v.w[0]) : "r"(a));
  return v;
}
template <int W>
__device__ __forceinline__ void sts_words(u32 a, const Words<W>& v) {
  if constexpr (W == 4)
    asm volatile("st.shared.v4.u32 [%0], {%1,%2,%3,%4};" ::"r"(a), "r"(v.w[0]), "r"(v.w[1]), "r"(v.w[2]), "r"(v.w[3]));
  else if constexpr (W == 2)
    asm volatile("st.shared.v2.u32 [%0], {%1,%2};" ::"r"(a), "r"(v.w[0]), "r"(v.w[1]));
  else
    asm volatile("st.shared.u32 [%0], %1;" ::"r"(a), "r"(v.w[0]));
}
// 4 W bytes global -> shared, asynchronous; src_bytes 0 zero-fills (16 bytes bypass L1).
template <int W>
__device__ __forceinline__ void cp_async_words(u32 dst, const void* src, int src_bytes) {
  if constexpr (W == 4) {
    mc::cp_async16(dst, src, src_bytes);
  } else {
    asm volatile(
        "{.reg .u64 ga; cvta.to.global.u64 ga, %1; cp.async.ca.shared.global [%0], [ga], %2, %3;}" ::"r"(dst),
        "l"((unsigned long long)src), "n"(4 * W), "r"(src_bytes)
        : "memory");
  }
}
// x = pre * u per word, rounded to the input type (mc::gate_chunk's rule).
template <int DT, int W>
__device__ __forceinline__ void gate_words(Words<W>& v, const u32* g) {
  using D = mc::Dt<DT>;
#pragma unroll
  for (int k = 0; k < W; ++k) v.w[k] = D::pack(D::lo(v.w[k]) * D::lo(g[k]), D::hi(v.w[k]) * D::hi(g[k]));
}

// POST: 8 fp16 values at the working scale -> the output type, times s1 s2 and the postgate.
template <int DT>
__device__ __forceinline__ uint4 finish(const uint4& v, const uint4& g, float s1, float s2) {
  const u32* vv = reinterpret_cast<const u32*>(&v);
  const u32* gg = reinterpret_cast<const u32*>(&g);
  uint4 o;
  u32* oo = reinterpret_cast<u32*>(&o);
  using D = mc::Dt<DT>;
#pragma unroll
  for (int k = 0; k < 4; ++k)
    oo[k] = D::pack(mc::h2lo(vv[k]) * s1 * s2 * D::lo(gg[k]), mc::h2hi(vv[k]) * s1 * s2 * D::hi(gg[k]));
  return o;
}
// mx: the largest |x| of a sequence set as 16-bit DT bits; 2^-ex brings it into
// (2^(top - 1), 2^top] (0 for zero or non-finite; 2^-ex stays finite, so a bf16 set below
// 2^-117 keeps fewer bits).
template <int DT>
__device__ __forceinline__ int scale_exp(u32 mx, int top) {
  const float f = mc::Dt<DT>::one(static_cast<u16>(mx));
  if (!(f > 0.f) || !(f < __int_as_float(0x7f800000))) return 0;
  const int biased = (__float_as_uint(f) >> 23) & 0xff;  // f < 2^(biased - 126)
  return max(biased - 126 - top, -125);
}
// The forward kernels' common arguments (monarch_conv_fwd's list, less the outer strides and
// the tile list) into a kernel struct K with these field names.
template <class K>
__device__ __forceinline__ void bind_args(K& k, const u16* u, const u16* pre, const u16* kf, u16* y, const u16* post,
                                          long long u_sb, long long u_sh, long long pre_sb, long long pre_sh,
                                          long long y_sb, long long y_sh, long long post_sb, long long post_sh,
                                          int B, int H, int L, int out_offset, int Lout) {
  k.u = u, k.pre = pre, k.kf = reinterpret_cast<const u32*>(kf), k.y = y, k.post = post;
  k.u_sb = u_sb, k.u_sh = u_sh, k.pre_sb = pre_sb, k.pre_sh = pre_sh;
  k.y_sb = y_sb, k.y_sh = y_sh, k.post_sb = post_sb, k.post_sh = post_sh;
  k.B = B, k.H = H, k.L = L, k.out_offset = out_offset, k.Lout = Lout;
}
}  // namespace tf
