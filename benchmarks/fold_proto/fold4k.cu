// Prototype (benchmarks only, not dispatched): FFT size 4096 circular convolution with every
// twiddle folded into the tensor-core DFT matrices.
//
// Why: the dispatched kernel (kernels/monarch_conv.cu) multiplies by its twiddles elementwise
// in fp32 (174 of the 364 instructions of a 256-point core item). Here a tile is 16 values of
// the contracted digit x 8 values of a digit the stage's twiddle does not depend on, with the
// third digit fixed per tile, so the twiddle is a per-tile constant diagonal and folds into the
// 16x16 DFT matrix (16 matrices per stage, one per value of the fixed digit).
//   m = 256 n1 + 16 n2 + n3, f = k1 + 16 k2 + 256 k3, w_M = exp(-2 pi i / M):
//   F1[n3] (k1, n1) = w16^(n1 k1) w4096^(n3 k1) / 4   contract n1, columns n2, fixed n3
//   F2[k1] (k2, n2) = w16^(n2 k2) w256^(n2 k1) / 4    contract n2, columns n3, fixed k1
//   F3[k2] (k3, n3) = w16^(n3 k3) w256^(n3 k2) / 4    contract n3, columns k1, fixed k2
//   inverse stages: the conjugate transposes, in reverse order; 4^-6 = 1 / 4096.
// Data stay fp16 in shared memory; tiles move with ldmatrix / stmatrix (sm_90), plain or
// transposed so that every stage reads and writes rows of 16 contiguous values.
// Shared-memory rows are 16 halves (two 16-byte chunks); chunk (a, b, h) of row 16 a + b sits at
// 35 a + 2 b + h + (b >> 2): 8 rows with a or b consecutive hit 8 bank groups, and every
// offset is a lane part plus a warp-uniform part (no XOR), so addresses fold into immediates.
// Limits of the prototype: fp16 in and out, L = N = 4096 circular, no gates, B even with
// (B / 2) % P == 0, contiguous (B, H, 4096) rows, no per-pair exponent (inputs of unit scale).
#include "monarch_prims.cuh"

namespace fp {
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
__device__ __forceinline__ void stsm_x4(u32 addr, const u32 s[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1,%2,%3,%4};" ::"r"(addr), "r"(s[0]), "r"(s[1]),
               "r"(s[2]), "r"(s[3]));
}
__device__ __forceinline__ void stsm_x4_t(u32 addr, const u32 s[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1,%2,%3,%4};" ::"r"(addr), "r"(s[0]),
               "r"(s[1]), "r"(s[2]), "r"(s[3]));
}

constexpr int ROWS_CHUNKS = 35;            // chunks per 16 rows (32 + 3 of skew)
constexpr int PLANE = 16 * ROWS_CHUNKS * 16;  // bytes per padded 16-bit plane of 4096 values
// Byte offset of chunk h of row (a, b).
__device__ __forceinline__ constexpr u32 cofs(int a, int b, int h) {
  return static_cast<u32>(ROWS_CHUNKS * a + 2 * b + h + (b >> 2)) * 16u;
}

struct Mat {
  u32 r[4], i[4];  // Re, Im as A fragments
};
// Table: (32 matrices, Re / Im) row-major 16x16 fp16 rows at cofs(0, row, half) (560 bytes a
// component). Matrices 0..15: F1[j]; 16..31: F2[j] = F3[j]. INV loads the transposes: with
// Im negated in cmma, the conjugate transposes of the inverse stages.
constexpr int MAT_BYTES = 2 * ROWS_CHUNKS * 16;
template <bool INV>
__device__ __forceinline__ Mat load_mat(u32 tab, int mat, int lane) {
  const int mi = lane >> 3, i = lane & 7;
  const int row = i + 8 * (INV ? (mi >> 1) : (mi & 1)), ch = INV ? (mi & 1) : (mi >> 1);
  const u32 base = tab + mat * MAT_BYTES + cofs(0, row, ch);
  Mat m;
  if (INV) {
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
// z = M x (INV: z = conj(M)^T x given M's transposed fragments), x as B fragments
// {Re k0-7, Re k8-15, Im k0-7, Im k8-15}.
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
// {Re rows 0-7, Re rows 8-15, Im rows 0-7, Im rows 8-15} in the A/C 16-bit layout.
__device__ __forceinline__ void pack(u32 o[4], const Acc& z) {
  o[0] = mc::pack_h2(z.r[0], z.r[1]);
  o[1] = mc::pack_h2(z.r[2], z.r[3]);
  o[2] = mc::pack_h2(z.i[0], z.i[1]);
  o[3] = mc::pack_h2(z.i[2], z.i[3]);
}

template <int P, int WARPS>
struct Fold4k {
  static constexpr int N = 4096;
  static constexpr int THREADS = 32 * WARPS;
  static constexpr int WORK = 2 * P * PLANE;     // work planes (re, im of each pair)
  static constexpr int TAB = 32 * MAT_BYTES;     // DFT matrices
  static constexpr int SMEM = 2 * WORK + TAB;    // work, input staging, table
  static constexpr int JOBS = 2 * P * 16 / WARPS;  // 16x16 blocks per warp in the transposes

  const u16* __restrict__ u;
  u16* __restrict__ y;
  const uint4* __restrict__ kf;  // (H, 16 k2, 2 halves, 32 lanes, 4 values) complex fp16 (re, im)
  int B, H;
  u32 work, staging, tab;  // shared addresses
  int lane, warp, tid, mi, i8;

  // The unit's P pairs: sequences b0 .. b0 + 2P - 1 of channel h, plane wp at row0 + wp * H * N.
  __device__ __forceinline__ long long row0_of(int unit) const {
    const int pi = unit * P, bp2 = B / 2, h = pi / bp2, b0 = 2 * (pi % bp2);
    return (static_cast<long long>(b0) * H + h) * N;
  }

  __device__ __forceinline__ void issue_load(int unit) {
    constexpr int PER = N * 2 / 16;  // 16-byte chunks of a plane
    static_assert(PER % THREADS == 0, "whole chunk rounds");
    const u16* src = u + row0_of(unit);
    const long long stride = static_cast<long long>(H) * N;
#pragma unroll
    for (int wp = 0; wp < 2 * P; ++wp)
#pragma unroll
      for (int r = 0; r < PER / THREADS; ++r) {
        const int ci = tid + r * THREADS, rs = ci >> 1, c = ci & 1;  // rs = 16 n1 + n2, c = n3 half
        mc::cp_async16(staging + wp * PLANE + cofs(rs >> 4, rs & 15, c), src + wp * stride + 8 * ci, 16);
      }
    mc::cp_async_commit();
  }
  // Natural order (staging: rows n2 of contiguous n3) -> work (rows n3 of contiguous n2).
  __device__ __forceinline__ void transpose_in() {
    const int h = mi & 1, c = mi >> 1;
#pragma unroll
    for (int x = 0; x < JOBS; ++x) {
      const int job = warp + WARPS * x, wp = job >> 4, n1 = job & 15;
      u32 d[4];
      ldsm_x4(d, staging + wp * PLANE + cofs(n1, 8 * h + i8, c));
      stsm_x4_t(work + wp * PLANE + cofs(n1, 8 * c + i8, h), d);
    }
  }
  // Work -> natural order in place (each warp rewrites its own 16x16 blocks), then 16-byte
  // streaming stores.
  __device__ __forceinline__ void store(int unit) {
    const long long row0 = row0_of(unit);
    const int h = mi & 1, c = mi >> 1;
#pragma unroll
    for (int x = 0; x < JOBS; ++x) {
      const int job = warp + WARPS * x, wp = job >> 4, n1 = job & 15;
      u32 d[4];
      ldsm_x4(d, work + wp * PLANE + cofs(n1, 8 * c + i8, h));
      stsm_x4_t(work + wp * PLANE + cofs(n1, 8 * h + i8, c), d);
    }
    __syncwarp();
#pragma unroll
    for (int x = 0; x < JOBS; ++x) {
      const int job = warp + WARPS * x, wp = job >> 4, n1 = job & 15;
      const int n2 = lane >> 1, c = lane & 1;
      uint4 v;
      const u32 a = work + wp * PLANE + cofs(n1, n2, c);
      asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(a));
      __stcs(reinterpret_cast<uint4*>(y + row0 + wp * static_cast<long long>(H) * N + 256 * n1 + 8 * lane), v);
    }
  }

  // F1 / I1: item n3 (fixed b), tiles h = column half (n2); rows a = contracted / output digit.
  template <bool INV>
  __device__ __forceinline__ void stage_outer() {
    const int pl = mi >> 1, kh = mi & 1;
#pragma unroll
    for (int j = warp; j < 16; j += WARPS) {
      const Mat m = load_mat<INV>(tab, j, lane);
      u32 b[P][2][4];
#pragma unroll
      for (int p = 0; p < P; ++p)
#pragma unroll
        for (int h = 0; h < 2; ++h) ldsm_x4_t(b[p][h], work + (2 * p + pl) * PLANE + cofs(8 * kh + i8, j, h));
#pragma unroll
      for (int p = 0; p < P; ++p)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          u32 o[4];
          pack(o, cmma<INV>(m, b[p][h]));
          stsm_x4(work + (2 * p + pl) * PLANE + cofs(8 * kh + i8, j, h), o);
        }
    }
  }
  // F2 (INV false): item k1 (fixed a); tiles nh = column half (n3); read rows n3 (contiguous
  // n2), write rows k2 (contiguous n3). I2 (INV true): read rows k2 transposed (contiguous n3 =
  // columns), write rows n3 transposed (contiguous n2).
  template <bool INV>
  __device__ __forceinline__ void stage_second() {
    const int pl = mi >> 1, kh = mi & 1;
#pragma unroll
    for (int j = warp; j < 16; j += WARPS) {
      const Mat m = load_mat<INV>(tab, 16 + j, lane);
      u32 b[P][2][4];
#pragma unroll
      for (int p = 0; p < P; ++p)
#pragma unroll
        for (int nh = 0; nh < 2; ++nh) {
          const u32 base = work + (2 * p + pl) * PLANE;
          if (INV)
            ldsm_x4_t(b[p][nh], base + cofs(j, 8 * kh + i8, nh));
          else
            ldsm_x4(b[p][nh], base + cofs(j, 8 * nh + i8, kh));
        }
#pragma unroll
      for (int p = 0; p < P; ++p) {
        const u32 base = work + (2 * p + pl) * PLANE;
        u32 o[2][4];
#pragma unroll
        for (int nh = 0; nh < 2; ++nh) pack(o[nh], cmma<INV>(m, b[p][nh]));
#pragma unroll
        for (int nh = 0; nh < 2; ++nh) {
          if (INV)
            stsm_x4_t(base + cofs(j, 8 * nh + i8, kh), o[nh]);
          else
            stsm_x4(base + cofs(j, 8 * kh + i8, nh), o[nh]);
        }
      }
    }
  }
  // The filter fragments of this warp's middle-stage items (loaded before the barrier ahead of
  // the stage, so their latency hides behind it).
  static constexpr int ITEMS = 16 / WARPS;
  __device__ __forceinline__ void load_k(uint4 (&k)[ITEMS][2], int h) const {
#pragma unroll
    for (int x = 0; x < ITEMS; ++x)
#pragma unroll
      for (int ch = 0; ch < 2; ++ch)
        k[x][ch] = __ldg(kf + ((static_cast<long long>(h) * 16 + warp + WARPS * x) * 2 + ch) * 32 + lane);
  }
  // F3, filter, I3 in registers: item k2 (fixed b), tiles ch = column half (k1); rows
  // a = k1 hold 16 contiguous n3.
  __device__ __forceinline__ void stage_mid(const uint4 (&k)[ITEMS][2]) {
    const int pl = mi >> 1, kh = mi & 1;
#pragma unroll
    for (int x = 0; x < ITEMS; ++x) {
      const int j = warp + WARPS * x;
      const Mat mf = load_mat<false>(tab, 16 + j, lane), mv = load_mat<true>(tab, 16 + j, lane);
      u32 b[2][P][4];
#pragma unroll
      for (int ch = 0; ch < 2; ++ch)
#pragma unroll
        for (int p = 0; p < P; ++p) ldsm_x4(b[ch][p], work + (2 * p + pl) * PLANE + cofs(8 * ch + i8, j, kh));
#pragma unroll
      for (int ch = 0; ch < 2; ++ch) {
        const u32 kw[4] = {k[x][ch].x, k[x][ch].y, k[x][ch].z, k[x][ch].w};
        float kr[4], ki[4];
#pragma unroll
        for (int c = 0; c < 4; ++c) kr[c] = mc::h2lo(kw[c]), ki[c] = mc::h2hi(kw[c]);
#pragma unroll
        for (int p = 0; p < P; ++p) {
          u32 o[4], bb[4];
          Acc z = cmma<false>(mf, b[ch][p]);
#pragma unroll
          for (int c = 0; c < 4; ++c) {
            const float zr = z.r[c], zi = z.i[c];
            z.r[c] = zr * kr[c] - zi * ki[c];
            z.i[c] = zr * ki[c] + zi * kr[c];
          }
          pack(o, z);
#pragma unroll
          for (int q = 0; q < 4; ++q) bb[q] = mc::movt(o[q]);
          pack(o, cmma<true>(mv, bb));
          stsm_x4_t(work + (2 * p + pl) * PLANE + cofs(8 * ch + i8, j, kh), o);
        }
      }
    }
  }

  __device__ __forceinline__ void run(const uint4* __restrict__ gtab) {
    extern __shared__ __align__(128) unsigned char fold_smem[];
    work = mc::smem_u32(fold_smem);
    staging = work + WORK;
    tab = staging + WORK;
    tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, mi = lane >> 3, i8 = lane & 7;
    for (int c = tid; c < TAB / 16; c += THREADS) mc::cp_async16(tab + c * 16, gtab + c, 16);
    const int nunits = (B / 2) * H / P;
    if (blockIdx.x < nunits) issue_load(blockIdx.x);
    for (int unit = blockIdx.x; unit < nunits; unit += gridDim.x) {
      mc::cp_async_wait<0>();
      __syncthreads();
      transpose_in();
      __syncthreads();
      if (unit + static_cast<int>(gridDim.x) < nunits) issue_load(unit + gridDim.x);
      stage_outer<false>();
      __syncthreads();
      stage_second<false>();
      uint4 k[ITEMS][2];
      load_k(k, (unit * P) / (B / 2));
      __syncthreads();
      stage_mid(k);
      __syncthreads();
      stage_second<true>();
      __syncthreads();
      stage_outer<true>();
      __syncthreads();
      store(unit);
    }
  }
};

}  // namespace fp

template <int P, int WARPS, int MINB>
__global__ void __launch_bounds__(32 * WARPS, MINB) fold4k(const unsigned short* u, unsigned short* y, const uint4* kf,
                                                           const uint4* tab, int B, int H) {
  fp::Fold4k<P, WARPS> k;
  k.u = u, k.y = y, k.kf = kf, k.B = B, k.H = H;
  k.run(tab);
}
