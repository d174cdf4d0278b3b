// cufftconv: low-level device primitives for the fused Monarch FFT-convolution kernels.
//
// Header-free on purpose (no <cuda_fp16.h>, no <mma.h>): everything is inline PTX or an NVRTC
// built-in, so the kernels compile under NVRTC with no include path at all.
//
// Conventions used by every fragment helper below (PTX ISA, mma.m16n8k16, 16-bit inputs):
//   lane = 4*g + t  (g = lane >> 2 in 0..7, t = lane & 3)
//   A (16x16, row major) regs: a0 = A[g][2t..2t+1], a1 = A[g+8][2t..], a2 = A[g][2t+8..], a3 = A[g+8][2t+8..]
//   B (16x8, "col")      regs: b0 = B[2t..2t+1][g],  b1 = B[2t+8..2t+9][g]
//   C (16x8, fp32)            : c0 = C[g][2t], c1 = C[g][2t+1], c2 = C[g+8][2t], c3 = C[g+8][2t+1]
// The low 16 bits of a packed register hold the element with the smaller column/row index.
#pragma once

namespace mc {

typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned long long u64;

struct cf {  // complex fp32
  float x, y;
};

__device__ __forceinline__ cf cmul(cf a, cf b) { return {a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x}; }
__device__ __forceinline__ cf cscale(cf a, float s) { return {a.x * s, a.y * s}; }

// ---------------------------------------------------------------------------------------------
// 16-bit conversions. DT = 0: IEEE fp16, DT = 1: bfloat16. The tensor-core type is always fp16.
// ---------------------------------------------------------------------------------------------
__device__ __forceinline__ u32 pack_h2(float lo, float hi) {
  u32 r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
__device__ __forceinline__ float h2lo(u32 w) {
  float f;
  asm("{.reg .b16 l, h; mov.b32 {l, h}, %1; cvt.f32.f16 %0, l;}" : "=f"(f) : "r"(w));
  return f;
}
__device__ __forceinline__ float h2hi(u32 w) {
  float f;
  asm("{.reg .b16 l, h; mov.b32 {l, h}, %1; cvt.f32.f16 %0, h;}" : "=f"(f) : "r"(w));
  return f;
}

template <int DT>
struct Dt;

template <>
struct Dt<0> {  // fp16 storage
  static __device__ __forceinline__ float lo(u32 w) { return h2lo(w); }
  static __device__ __forceinline__ float hi(u32 w) { return h2hi(w); }
  static __device__ __forceinline__ u32 pack(float l, float h) { return pack_h2(l, h); }
  static __device__ __forceinline__ float one(u16 v) {
    float f;
    asm("{.reg .b16 x; mov.b16 x, %1; cvt.f32.f16 %0, x;}" : "=f"(f) : "h"(v));
    return f;
  }
  static __device__ __forceinline__ u16 from(float f) {
    u16 r;
    asm("{.reg .b16 x; cvt.rn.f16.f32 x, %1; mov.b16 %0, x;}" : "=h"(r) : "f"(f));
    return r;
  }
};

template <>
struct Dt<1> {  // bfloat16 storage
  static __device__ __forceinline__ float lo(u32 w) { return __uint_as_float(w << 16); }
  static __device__ __forceinline__ float hi(u32 w) { return __uint_as_float(w & 0xffff0000u); }
  static __device__ __forceinline__ u32 pack(float l, float h) {
    u32 r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(h), "f"(l));
    return r;
  }
  static __device__ __forceinline__ float one(u16 v) { return __uint_as_float(((u32)v) << 16); }
  static __device__ __forceinline__ u16 from(float f) { return (u16)(pack(f, 0.f) & 0xffffu); }
};

// x = pre * u of one 16-byte chunk, rounded to the input type (as the reference rounds it).
template <int DT>
__device__ __forceinline__ void gate_chunk(uint4& v, const uint4& g) {
  u32* vv = (u32*)&v;
  const u32* gg = (const u32*)&g;
#pragma unroll
  for (int k = 0; k < 4; ++k)
    vv[k] = Dt<DT>::pack(Dt<DT>::lo(vv[k]) * Dt<DT>::lo(gg[k]), Dt<DT>::hi(vv[k]) * Dt<DT>::hi(gg[k]));
}

// Two fp16 products, each rounded once (no contraction into a later add).
__device__ __forceinline__ u32 hmul2(u32 a, u32 b) {
  u32 r;
  asm("mul.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  return r;
}

// Largest |value| of packed 16-bit floats, as ordered bits (works for fp16 and bf16).
__device__ __forceinline__ u32 absmax_bits(u32 m, u32 w) {
  w &= 0x7fff7fffu;
  m = max(m, w & 0xffffu);
  return max(m, w >> 16);
}

// absmax_bits per 16-bit half: m's halves hold running maxima (packed; one max.u16x2 on sm_90).
__device__ __forceinline__ u32 absmax2(u32 m, u32 w) {
  w &= 0x7fff7fffu;
#if __CUDA_ARCH__ >= 900
  u32 r;
  asm("max.u16x2 %0, %1, %2;" : "=r"(r) : "r"(m), "r"(w));
  return r;
#else
  return max(m & 0xffffu, w & 0xffffu) | (max(m >> 16, w >> 16) << 16);
#endif
}

// ---------------------------------------------------------------------------------------------
// Tensor-core and shared-memory matrix primitives.
// ---------------------------------------------------------------------------------------------
__device__ __forceinline__ u32 smem_u32(const void* p) {
  u64 a;
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(a) : "l"((u64)p));
  return (u32)a;
}

// c += A(16x16 f16) * B(16x8 f16), fp32 accumulate.
__device__ __forceinline__ void mma16816(float c[4], const u32 a[4], u32 b0, u32 b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four transposed 8x8 b16 matrices; lane l gives the address of row (l & 7) of matrix (l >> 3).
// Thread (g, t) receives, for each matrix, elements [row 2t][col g] and [row 2t+1][col g].
__device__ __forceinline__ void ldsm_x4_t(u32 d[4], u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
               : "r"(addr)
               : "memory");
}

// Transpose of one 8x8 b16 matrix held in the A/C-fragment layout (row g, cols 2t..2t+1).
__device__ __forceinline__ u32 movt(u32 a) {
  u32 d;
  asm("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;" : "=r"(d) : "r"(a));
  return d;
}

__device__ __forceinline__ u32 neg_h2(u32 a) { return a ^ 0x80008000u; }

// ---------------------------------------------------------------------------------------------
// Global memory (streaming cache hints: every element is touched exactly once).
// ---------------------------------------------------------------------------------------------
__device__ __forceinline__ uint4 ldg_stream16(const void* p) { return __ldcs((const uint4*)p); }
__device__ __forceinline__ u16 ldg_stream2(const u16* p) { return __ldcs(p); }
__device__ __forceinline__ u32 ldg_stream4(const void* p) { return __ldcs((const u32*)p); }
__device__ __forceinline__ void stg_stream2(u16* p, u16 v) { __stcs(p, v); }
__device__ __forceinline__ void stg_stream4(void* p, u32 v) { __stcs((u32*)p, v); }

// L2 prefetch at normal priority (evict_last measured no better, and its lines would outlive
// their one use next to the L2-resident filter spectra and dk rows). A hint: no register,
// nothing waits on it. The address must be valid global memory.
__device__ __forceinline__ void prefetch_l2(const void* p) {
  asm volatile("{.reg .u64 ga; cvta.to.global.u64 ga, %0; prefetch.global.L2 [ga];}" ::"l"((u64)p));
}
// L2 prefetch of a contiguous run (16-byte aligned, a multiple of 16 bytes): one instruction
// on sm_90 (cp.async.bulk.prefetch); one prefetch per 128-byte line before.
__device__ __forceinline__ void prefetch_run(const void* p, int bytes) {
#if __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(__cvta_generic_to_global(p)), "r"(bytes) : "memory");
#else
  for (int o = 0; o < bytes; o += 128) prefetch_l2(static_cast<const char*>(p) + o);
#endif
}

// ---------------------------------------------------------------------------------------------
// Asynchronous global -> shared copies (sm_80+): 16 bytes, the bytes past src_bytes zero-filled.
// ---------------------------------------------------------------------------------------------
__device__ __forceinline__ void cp_async16(u32 dst, const void* src, int src_bytes) {
  asm volatile(
      "{.reg .u64 ga; cvta.to.global.u64 ga, %1; cp.async.cg.shared.global [%0], [ga], 16, %2;}" ::"r"(dst),
      "l"((u64)src), "r"(src_bytes)
      : "memory");
}
// 4, 8 or 16 bytes global -> shared through L1 (.ca; the source must be BYTES-aligned).
template <int BYTES>
__device__ __forceinline__ void cp_async_ca(u32 dst, const void* src) {
  static_assert(BYTES == 4 || BYTES == 8 || BYTES == 16, "cp.async.ca copies 4, 8 or 16 bytes");
  asm volatile("{.reg .u64 ga; cvta.to.global.u64 ga, %1; cp.async.ca.shared.global [%0], [ga], %2;}" ::"r"(dst),
               "l"((u64)src), "n"(BYTES)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int NPEND>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(NPEND) : "memory");
}

// 8 consecutive 16-bit values row[n .. n+7] (zero beyond len), vectorised when the row is
// 16-byte aligned.
__device__ __forceinline__ uint4 load_chunk8(const u16* row, int n, int len, bool aligned16) {
  uint4 v = make_uint4(0u, 0u, 0u, 0u);
  if (aligned16 && n + 8 <= len) return ldg_stream16(row + n);
  if (n < len) {
    u32 w[4] = {0u, 0u, 0u, 0u};
#pragma unroll
    for (int e = 0; e < 8; ++e)
      if (n + e < len) w[e >> 1] |= ((u32)ldg_stream2(row + n + e)) << (16 * (e & 1));
    v = make_uint4(w[0], w[1], w[2], w[3]);
  }
  return v;
}

// V consecutive 16-bit values (V = 2, 4, 8) as V/2 packed words: shared memory, and streaming
// global loads/stores. The address must be 2V-byte aligned.
template <int V>
__device__ __forceinline__ void lds_v(u32 (&w)[V / 2], const u16* p) {
  if constexpr (V == 8) {
    const uint4 v = *(const uint4*)p;
    w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
  } else if constexpr (V == 4) {
    const uint2 v = *(const uint2*)p;
    w[0] = v.x, w[1] = v.y;
  } else {
    w[0] = *(const u32*)p;
  }
}
template <int V>
__device__ __forceinline__ void sts_v(u16* p, const u32 (&w)[V / 2]) {
  if constexpr (V == 8) {
    *(uint4*)p = make_uint4(w[0], w[1], w[2], w[3]);
  } else if constexpr (V == 4) {
    *(uint2*)p = make_uint2(w[0], w[1]);
  } else {
    *(u32*)p = w[0];
  }
}
template <int V>
__device__ __forceinline__ void ldg_v(u32 (&w)[V / 2], const u16* p) {
  if constexpr (V == 8) {
    const uint4 v = __ldcs((const uint4*)p);
    w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
  } else if constexpr (V == 4) {
    const uint2 v = __ldcs((const uint2*)p);
    w[0] = v.x, w[1] = v.y;
  } else {
    w[0] = __ldcs((const u32*)p);
  }
}
template <int V>
__device__ __forceinline__ void stg_v(u16* p, const u32 (&w)[V / 2]) {
  if constexpr (V == 8) {
    __stcs((uint4*)p, make_uint4(w[0], w[1], w[2], w[3]));
  } else if constexpr (V == 4) {
    __stcs((uint2*)p, make_uint2(w[0], w[1]));
  } else {
    __stcs((u32*)p, w[0]);
  }
}

}  // namespace mc
