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
// Limits of the prototype: fp16 in and out, L = N = 4096 circular, no gates, B even with
// (B / 2) % P == 0, contiguous (B, H, 4096) rows, no per-pair exponent (inputs of unit scale).
#include "monarch_prims.cuh"

namespace fp {
using mc::u16;
using mc::u32;

__device__ __forceinline__ void ldsm_x4(u32 d[4], u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
               : "r"(addr)
               : "memory");
}
__device__ __forceinline__ void stsm_x4(u32 addr, const u32 s[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1,%2,%3,%4};" ::"r"(addr), "r"(s[0]), "r"(s[1]),
               "r"(s[2]), "r"(s[3])
               : "memory");
}
__device__ __forceinline__ void stsm_x4_t(u32 addr, const u32 s[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1,%2,%3,%4};" ::"r"(addr), "r"(s[0]),
               "r"(s[1]), "r"(s[2]), "r"(s[3])
               : "memory");
}

// Work plane: 256 rows r = 16 a + b of 16 halves (two 16-byte chunks h); chunk index XOR-ed
// with (a ^ b >> 2) & 7 so that 8 rows with a or b consecutive hit 8 bank groups.
__device__ __forceinline__ u32 wofs(int a, int b, int h) {
  const int q = 2 * (16 * a + b) + h;
  return static_cast<u32>(q ^ ((a ^ (b >> 2)) & 7)) * 16u;
}
// Staging plane (natural order): rows rs = 16 n1 + n2 of 16 halves, chunk c = n3 >> 3.
__device__ __forceinline__ u32 sofs(int rs, int c) {
  const int q = 2 * rs + c;
  return static_cast<u32>(q ^ ((rs >> 2) & 1)) * 16u;
}

struct Mat {
  u32 r[4], i[4], n[4];  // Re, Im, -Im as A fragments
};
// Table in shared memory: (32 matrices, 3 components Re / Im / -Im) row-major 16x16 fp16, rows
// of two 16-byte chunks (chunk XOR (row >> 2) & 1: 8 consecutive rows hit 8 bank groups).
// Matrices 0..15: F1[j]; 16..31: F2[j] = F3[j] (the same matrices). TRANS loads the transpose,
// which with Im and -Im swapped gives the inverse stages' conjugate transposes.
template <bool INV>
__device__ __forceinline__ Mat load_mat(u32 tab, int mat, int lane) {
  const int mi = lane >> 3, i = lane & 7;
  const int row = i + 8 * (INV ? (mi >> 1) : (mi & 1)), ch = INV ? (mi & 1) : (mi >> 1);
  const u32 off = static_cast<u32>((2 * row + ch) ^ ((row >> 2) & 1)) * 16u;
  const u32 base = tab + mat * (3 * 512) + off;
  Mat m;
  if (INV) {
    mc::ldsm_x4_t(m.r, base);
    mc::ldsm_x4_t(m.n, base + 512);
    mc::ldsm_x4_t(m.i, base + 1024);
  } else {
    ldsm_x4(m.r, base);
    ldsm_x4(m.i, base + 512);
    ldsm_x4(m.n, base + 1024);
  }
  return m;
}

struct Acc {
  float r[4], i[4];
};
// z = M x, x as B fragments {Re k0-7, Re k8-15, Im k0-7, Im k8-15}.
__device__ __forceinline__ Acc cmma(const Mat& m, const u32 b[4]) {
  Acc z;
#pragma unroll
  for (int c = 0; c < 4; ++c) z.r[c] = z.i[c] = 0.f;
  mc::mma16816(z.r, m.r, b[0], b[1]);
  mc::mma16816(z.r, m.n, b[2], b[3]);
  mc::mma16816(z.i, m.i, b[0], b[1]);
  mc::mma16816(z.i, m.r, b[2], b[3]);
  return z;
}
// {Re rows 0-7, Re rows 8-15, Im rows 0-7, Im rows 8-15} in the A/C 16-bit layout.
__device__ __forceinline__ void pack(u32 o[4], const Acc& z) {
  o[0] = mc::pack_h2(z.r[0], z.r[1]);
  o[1] = mc::pack_h2(z.r[2], z.r[3]);
  o[2] = mc::pack_h2(z.i[0], z.i[1]);
  o[3] = mc::pack_h2(z.i[2], z.i[3]);
}

template <int P>
struct Fold4k {
  static constexpr int N = 4096;
  static constexpr int THREADS = 256;
  static constexpr int PLANE = N * 2;         // bytes per 16-bit plane
  static constexpr int WORK = 2 * P * PLANE;  // work planes (re, im of each pair)
  static constexpr int TAB = 32 * 3 * 512;    // DFT matrices
  static constexpr int SMEM = 2 * WORK + TAB;  // work, input staging, table

  const u16* __restrict__ u;
  u16* __restrict__ y;
  const float4* __restrict__ kf;  // (H, 16 k2, 2 halves, 32 lanes, 4 values) complex fp32
  int B, H;
  u32 work, staging, tab;  // shared addresses
  int lane, warp, tid;

  __device__ __forceinline__ long long row_of(int unit, int wp) const {
    const int pi = unit * P + (wp >> 1), bp2 = B / 2;
    const int h = pi / bp2, b = 2 * (pi % bp2) + (wp & 1);
    return (static_cast<long long>(b) * H + h) * N;
  }
  __device__ __forceinline__ u32 wpl(int wp) const { return work + wp * PLANE; }

  __device__ __forceinline__ void issue_load(int unit) {
    constexpr int CH = 2 * P * (PLANE / 16);
#pragma unroll
    for (int ci = tid; ci < CH; ci += THREADS) {
      const int wp = ci / (PLANE / 16), rem = ci % (PLANE / 16);
      const int rs = rem >> 1, c = rem & 1;
      mc::cp_async16(staging + wp * PLANE + sofs(rs, c), u + row_of(unit, wp) + 16 * rs + 8 * c, 16);
    }
    mc::cp_async_commit();
  }
  // Natural order (staging) -> work layout: rows n2 of 8 contiguous n3 become rows n3 of 8
  // contiguous n2.
  __device__ __forceinline__ void transpose_in() {
    const int mi = lane >> 3, i = lane & 7, h = mi & 1, c = mi >> 1;
#pragma unroll
    for (int job = warp; job < 2 * P * 16; job += THREADS / 32) {
      const int wp = job >> 4, n1 = job & 15;
      u32 d[4];
      ldsm_x4(d, staging + wp * PLANE + sofs(16 * n1 + 8 * h + i, c));
      stsm_x4_t(wpl(wp) + wofs(n1, 8 * c + i, h), d);
    }
  }
  // Work layout -> y: ldmatrix gives (n3, two n2), movmatrix (n2, two n3): 4-byte stores, a
  // warp instruction covering 8 rows of 16 contiguous bytes.
  __device__ __forceinline__ void store(int unit) {
    const int mi = lane >> 3, i = lane & 7, h = mi & 1, c = mi >> 1, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int job = warp; job < 2 * P * 16; job += THREADS / 32) {
      const int wp = job >> 4, n1 = job & 15;
      u32 d[4];
      ldsm_x4(d, wpl(wp) + wofs(n1, 8 * c + i, h));
      u16* row = y + row_of(unit, wp) + 256 * n1;
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int qh = q & 1, qc = q >> 1;
        __stcs(reinterpret_cast<u32*>(row + 16 * (8 * qh + g) + 8 * qc + 2 * t), mc::movt(d[q]));
      }
    }
  }

  // F1 / I1: item n3 (fixed b), tiles h = column half (n2); rows a = contracted / output digit.
  template <bool INV>
  __device__ __forceinline__ void stage_outer() {
    const int mi = lane >> 3, i = lane & 7, pl = mi >> 1, kh = mi & 1;
#pragma unroll
    for (int j = warp; j < 16; j += THREADS / 32) {
      const Mat m = load_mat<INV>(tab, j, lane);
#pragma unroll
      for (int p = 0; p < P; ++p)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const u32 a = wpl(2 * p + pl) + wofs(8 * kh + i, j, h);
          u32 b[4], o[4];
          mc::ldsm_x4_t(b, a);
          pack(o, cmma(m, b));
          stsm_x4(a, o);
        }
    }
  }
  // F2 (INV false): item k1 (fixed a); tiles nh = column half (n3); read rows n3 (contiguous
  // n2), write rows k2 (contiguous n3). I2 (INV true): read rows k2 transposed (contiguous n3 =
  // columns), write rows n3 transposed (contiguous n2).
  template <bool INV>
  __device__ __forceinline__ void stage_second() {
    const int mi = lane >> 3, i = lane & 7, pl = mi >> 1, kh = mi & 1;
#pragma unroll
    for (int j = warp; j < 16; j += THREADS / 32) {
      const Mat m = load_mat<INV>(tab, 16 + j, lane);
#pragma unroll
      for (int p = 0; p < P; ++p) {
        const u32 base = wpl(2 * p + pl);
        u32 b[2][4], o[2][4];
#pragma unroll
        for (int nh = 0; nh < 2; ++nh) {
          if (INV)
            mc::ldsm_x4_t(b[nh], base + wofs(j, 8 * kh + i, nh));
          else
            ldsm_x4(b[nh], base + wofs(j, 8 * nh + i, kh));
        }
#pragma unroll
        for (int nh = 0; nh < 2; ++nh) pack(o[nh], cmma(m, b[nh]));
#pragma unroll
        for (int nh = 0; nh < 2; ++nh) {
          if (INV)
            stsm_x4_t(base + wofs(j, 8 * nh + i, kh), o[nh]);
          else
            stsm_x4(base + wofs(j, 8 * kh + i, nh), o[nh]);
        }
      }
    }
  }
  // F3, filter, I3 in registers: item k2 (fixed b), tiles ch = column half (k1); rows
  // a = k1 hold 16 contiguous n3.
  __device__ __forceinline__ void stage_mid(int h) {
    const int mi = lane >> 3, i = lane & 7, pl = mi >> 1, kh = mi & 1;
#pragma unroll 1
    for (int j = warp; j < 16; j += THREADS / 32) {
      const Mat mf = load_mat<false>(tab, 16 + j, lane), mv = load_mat<true>(tab, 16 + j, lane);
#pragma unroll
      for (int ch = 0; ch < 2; ++ch) {
        const float4* kp = kf + ((static_cast<long long>(h) * 16 + j) * 2 + ch) * 64 + lane * 2;
        const float4 k01 = __ldg(kp), k23 = __ldg(kp + 1);
        const float kr[4] = {k01.x, k01.z, k23.x, k23.z}, ki[4] = {k01.y, k01.w, k23.y, k23.w};
#pragma unroll
        for (int p = 0; p < P; ++p) {
          const u32 a = wpl(2 * p + pl) + wofs(8 * ch + i, j, kh);
          u32 b[4], o[4];
          ldsm_x4(b, a);
          Acc z = cmma(mf, b);
#pragma unroll
          for (int c = 0; c < 4; ++c) {
            const float zr = z.r[c], zi = z.i[c];
            z.r[c] = zr * kr[c] - zi * ki[c];
            z.i[c] = zr * ki[c] + zi * kr[c];
          }
          pack(o, z);
#pragma unroll
          for (int q = 0; q < 4; ++q) b[q] = mc::movt(o[q]);
          pack(o, cmma(mv, b));
          stsm_x4_t(a, o);
        }
      }
    }
  }

  __device__ __forceinline__ void run(const uint4* __restrict__ gtab) {
    extern __shared__ __align__(128) unsigned char fold_smem[];
    work = mc::smem_u32(fold_smem);
    staging = work + WORK;
    tab = staging + WORK;
    tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
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
      __syncthreads();
      stage_mid((unit * P) / (B / 2));
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

template <int P>
__global__ void __launch_bounds__(256, 2) fold4k(const unsigned short* u, unsigned short* y, const float4* kf,
                                                 const uint4* tab, int B, int H) {
  fp::Fold4k<P> k;
  k.u = u, k.y = y, k.kf = kf, k.B = B, k.H = H;
  k.run(tab);
}
