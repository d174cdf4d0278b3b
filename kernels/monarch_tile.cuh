// cufftconv: complex 16x16 tiles and the building blocks of one FFT stage.
//
// A complex tile holds 16x16 complex values spread over one warp. On the accumulator side
// (fp32) it is two 16x8 C fragments per component: CTile::r[j][c], CTile::i[j][c] with
// j = 8-column half, c = C-register index. Element e = 4*j + c of a lane sits at
//     row = g + 8*(c >> 1),  col = 8*j + 2*t + (c & 1).
// On the 16-bit side (fp16) the same tile is an A fragment per component (HTile), which is
// exactly the C layout packed in pairs, so the result of one stage feeds the next as A.
//
// A complex 16-point DFT runs on tensor cores as real matmuls with fp32 accumulation:
//   * "A = data" form:  Z = Y * F, Y an HTile (rows = other index, cols = contracted digit),
//     F constant as B fragments. 8 mma per tile.
//   * "B = data" form:  Z = F * X, X given as B fragments with the contraction split in two
//     k-steps [Re rows 8s..8s+7 ; Im rows 8s..8s+7] (s = 0, 1), F constant as A fragments.
//     Dropping k-step 1 computes the DFT of an input whose upper half is zero (zero padding).
// Inverse DFTs use conj(F) through conj(F x) = conj(F conj(x)): conjugate the input (a sign
// flip on the 16-bit side) and the fp32 result, so only the forward constants are kept.
#pragma once
#include "monarch_prims.cuh"

namespace mc {

struct CTile {
  float r[2][4];
  float i[2][4];
};
struct HTile {  // A fragments of the real and imaginary parts
  u32 r[4];
  u32 i[4];
};

__device__ __forceinline__ void ctile_zero(CTile& c) {
#pragma unroll
  for (int j = 0; j < 2; ++j)
#pragma unroll
    for (int k = 0; k < 4; ++k) c.r[j][k] = c.i[j][k] = 0.f;
}

__device__ __forceinline__ cf ctile_get(const CTile& c, int e) { return {c.r[e >> 2][e & 3], c.i[e >> 2][e & 3]}; }
__device__ __forceinline__ void ctile_set(CTile& c, int e, cf v) {
  c.r[e >> 2][e & 3] = v.x;
  c.i[e >> 2][e & 3] = v.y;
}

// fp32 tile -> fp16 A fragments (optionally conjugated).
template <bool CONJ>
__device__ __forceinline__ HTile ctile_pack(const CTile& c) {
  HTile h;
  const float s = CONJ ? -1.f : 1.f;
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    h.r[2 * j + 0] = pack_h2(c.r[j][0], c.r[j][1]);
    h.r[2 * j + 1] = pack_h2(c.r[j][2], c.r[j][3]);
    h.i[2 * j + 0] = pack_h2(s * c.i[j][0], s * c.i[j][1]);
    h.i[2 * j + 1] = pack_h2(s * c.i[j][2], s * c.i[j][3]);
  }
  return h;
}

// Transpose of a 16x16 A fragment (blocks (0,1) and (1,0) swap, each 8x8 block transposed).
__device__ __forceinline__ void afrag_transpose(u32 d[4], const u32 a[4]) {
  d[0] = movt(a[0]);
  d[1] = movt(a[2]);
  d[2] = movt(a[1]);
  d[3] = movt(a[3]);
}

// Constant DFT-16 fragments of one thread (forward, F[i][k] = exp(-2 pi i ik / 16)).
struct Dft16 {
  u32 ar[2][4];  // A fragments for the "B = data" form, k-step s: [Fr | -Fi] columns 8s..8s+7
  u32 ai[2][4];  //                                                 [Fi |  Fr]
  u32 br[2][2];  // B fragments of Fr for the "A = data" form, n-half j
  u32 bi[2][2];  // B fragments of Fi
};

// w16(m) = exp(-2 pi i m / 16) from a caller-supplied accurate table lookup.
template <bool SPLIT_B, class W16>
__device__ __forceinline__ Dft16 make_dft16(int lane, W16 w16, u32 opaque_zero) {
  const int g = lane >> 2, t = lane & 3;
  Dft16 d;
  auto fr = [&](int i, int k) { return w16((i * k) & 15).x; };
  auto fi = [&](int i, int k) { return w16((i * k) & 15).y; };
#pragma unroll
  for (int s = 0; s < 2; ++s) {
    const int k0 = 8 * s + 2 * t;
    d.ar[s][0] = pack_h2(fr(g, k0), fr(g, k0 + 1));
    d.ar[s][1] = pack_h2(fr(g + 8, k0), fr(g + 8, k0 + 1));
    d.ar[s][2] = pack_h2(-fi(g, k0), -fi(g, k0 + 1));
    d.ar[s][3] = pack_h2(-fi(g + 8, k0), -fi(g + 8, k0 + 1));
    d.ai[s][0] = pack_h2(fi(g, k0), fi(g, k0 + 1));
    d.ai[s][1] = pack_h2(fi(g + 8, k0), fi(g + 8, k0 + 1));
    d.ai[s][2] = pack_h2(fr(g, k0), fr(g, k0 + 1));
    d.ai[s][3] = pack_h2(fr(g + 8, k0), fr(g + 8, k0 + 1));
  }
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    const int n = 8 * j + g;
    d.br[j][0] = pack_h2(fr(2 * t, n), fr(2 * t + 1, n));
    d.br[j][1] = pack_h2(fr(2 * t + 8, n), fr(2 * t + 9, n));
    d.bi[j][0] = pack_h2(fi(2 * t, n), fi(2 * t + 1, n));
    d.bi[j][1] = pack_h2(fi(2 * t + 8, n), fi(2 * t + 9, n));
  }
  // F is symmetric, so the B fragments equal A-fragment registers in another arrangement. With
  // SPLIT_B they are kept as separate registers (xor with opaque_zero, 0 at run time but unknown
  // to the compiler), so that no mma needs register moves to pair its operands (~35 moves per
  // 256-point core item); this costs up to 8 registers.
  if constexpr (SPLIT_B) {
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        d.br[j][k] ^= opaque_zero;
        d.bi[j][k] ^= opaque_zero;
      }
  }
  return d;
}

// B fragments of a complex data tile for the "B = data" form: b[s][j][0] = Re rows 8s..8s+7,
// b[s][j][1] = Im rows 8s..8s+7, columns 8j..8j+7.
struct BTile {
  u32 b[2][2][2];
};

// "B = data" form: c = F * x (F forward), k-steps 0..KS-1 (KS = 1: rows 8..15 of x are zero).
template <int KS>
__device__ __forceinline__ void cdft_bdata(CTile& c, const Dft16& F, const BTile& x) {
  ctile_zero(c);
#pragma unroll
  for (int j = 0; j < 2; ++j)
#pragma unroll
    for (int s = 0; s < KS; ++s) {
      mma16816(c.r[j], F.ar[s], x.b[s][j][0], x.b[s][j][1]);
      mma16816(c.i[j], F.ai[s], x.b[s][j][0], x.b[s][j][1]);
    }
}

// "A = data" form: c = y * F (CONJ_IN: c = conj(y) * F), output n-halves 0..JN-1 only
// (JN = 1 computes output columns 0..7). CONJ_OUT: c = conj(that), at no cost (the imaginary
// part's operands are negated on the 16-bit side instead of the 8 fp32 results).
template <bool CONJ_IN, int JN, bool CONJ_OUT = false>
__device__ __forceinline__ void cdft_adata(CTile& c, const Dft16& F, const HTile& y) {
  // forward: Re = yr Fr - yi Fi, Im = yr Fi + yi Fr; conj input flips the sign of yi, conj
  // output the sign of Im: Im' = (-yr) Fi + (-+yi) Fr.
  u32 ny[4], nr[4];
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    ny[k] = neg_h2(y.i[k]);
    nr[k] = neg_h2(y.r[k]);
  }
  ctile_zero(c);
#pragma unroll
  for (int j = 0; j < JN; ++j) {
    mma16816(c.r[j], y.r, F.br[j][0], F.br[j][1]);
    mma16816(c.r[j], CONJ_IN ? y.i : ny, F.bi[j][0], F.bi[j][1]);
    mma16816(c.i[j], CONJ_OUT ? nr : y.r, F.bi[j][0], F.bi[j][1]);
    mma16816(c.i[j], (CONJ_IN != CONJ_OUT) ? ny : y.i, F.br[j][0], F.br[j][1]);
  }
}

// HTile (A layout, rows = contracted digit) -> BTile of the same matrix (rows = contraction).
__device__ __forceinline__ BTile htile_to_b(const HTile& h) {
  BTile x;
#pragma unroll
  for (int s = 0; s < 2; ++s)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      x.b[s][j][0] = movt(h.r[s + 2 * j]);
      x.b[s][j][1] = movt(h.i[s + 2 * j]);
    }
  return x;
}

// ---------------------------------------------------------------------------------------------
// Small fp32 DFTs (radix 2, 4, 8) on complex values, natural order in and out.
// INV = true uses exp(+2 pi i ...). No scaling.
// ---------------------------------------------------------------------------------------------
template <bool INV>
__device__ __forceinline__ cf mul_mi(cf a) {  // a * (-i) forward, a * (+i) inverse
  return INV ? cf{-a.y, a.x} : cf{a.y, -a.x};
}

template <int R, bool INV>
struct SmallDft;

template <bool INV>
struct SmallDft<1, INV> {
  static __device__ __forceinline__ void run(cf*) {}
};
template <bool INV>
struct SmallDft<2, INV> {
  static __device__ __forceinline__ void run(cf* x) {
    const cf a = x[0], b = x[1];
    x[0] = {a.x + b.x, a.y + b.y};
    x[1] = {a.x - b.x, a.y - b.y};
  }
};
template <bool INV>
struct SmallDft<4, INV> {
  static __device__ __forceinline__ void run(cf* x) {
    const cf a0 = {x[0].x + x[2].x, x[0].y + x[2].y}, a1 = {x[0].x - x[2].x, x[0].y - x[2].y};
    const cf b0 = {x[1].x + x[3].x, x[1].y + x[3].y};
    const cf b1 = mul_mi<INV>({x[1].x - x[3].x, x[1].y - x[3].y});
    x[0] = {a0.x + b0.x, a0.y + b0.y};
    x[2] = {a0.x - b0.x, a0.y - b0.y};
    x[1] = {a1.x + b1.x, a1.y + b1.y};
    x[3] = {a1.x - b1.x, a1.y - b1.y};
  }
};
template <bool INV>
struct SmallDft<8, INV> {
  static __device__ __forceinline__ void run(cf* x) {
    cf e[4] = {x[0], x[2], x[4], x[6]}, o[4] = {x[1], x[3], x[5], x[7]};
    SmallDft<4, INV>::run(e);
    SmallDft<4, INV>::run(o);
    const float h = 0.70710678118654752f;
    // o[k] *= w8^k, w8 = exp(-+ 2 pi i / 8)
    o[1] = INV ? cf{h * (o[1].x - o[1].y), h * (o[1].x + o[1].y)} : cf{h * (o[1].x + o[1].y), h * (o[1].y - o[1].x)};
    o[2] = mul_mi<INV>(o[2]);
    o[3] = INV ? cf{-h * (o[3].x + o[3].y), h * (o[3].x - o[3].y)} : cf{h * (o[3].y - o[3].x), -h * (o[3].x + o[3].y)};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      x[k] = {e[k].x + o[k].x, e[k].y + o[k].y};
      x[k + 4] = {e[k].x - o[k].x, e[k].y - o[k].y};
    }
  }
};

}  // namespace mc
