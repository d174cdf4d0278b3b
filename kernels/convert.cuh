// cufftconv: storage <-> compute conversions for the element-wise stages of the cuFFT path.
//
// 16-bit storage: float16 is CuPy's float16 type; bfloat16 travels as its raw uint16 bits
// (CuPy has no bfloat16), so unsigned short always means bfloat16 bits here.
#pragma once

template <typename C, typename T>
__device__ __forceinline__ C cfc_widen(T x) {
  return static_cast<C>(x);
}

template <>
__device__ __forceinline__ float cfc_widen<float, unsigned short>(unsigned short x) {
  return __uint_as_float(static_cast<unsigned int>(x) << 16);
}

template <>
__device__ __forceinline__ double cfc_widen<double, unsigned short>(unsigned short x) {
  return static_cast<double>(__uint_as_float(static_cast<unsigned int>(x) << 16));
}

template <typename T, typename C>
__device__ __forceinline__ T cfc_narrow(C y) {
  return static_cast<T>(y);
}

// float -> bfloat16 bits, round to nearest even; NaN stays a (quiet) NaN.
template <>
__device__ __forceinline__ unsigned short cfc_narrow<unsigned short, float>(float y) {
  const unsigned int b = __float_as_uint(y);
  if ((b & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
  return static_cast<unsigned short>((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

template <>
__device__ __forceinline__ unsigned short cfc_narrow<unsigned short, double>(double y) {
  return cfc_narrow<unsigned short, float>(static_cast<float>(y));
}
