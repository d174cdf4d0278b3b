// cufftconv: the two element-wise passes of a folded frequency-sparse convolution.
//
// Keeping only the frequencies f % F == 0 of an N-point FFT is the same as an n = N / F point
// circular convolution of the input folded to period n, read back with period n:
//   xf[r, m] = sum_j x[r, m + j n]           (x = pre * u, zero past L)       fold_rows
//   y[r, t]  = post[r, t] * yc[r, (t + offset) mod n],  t < Lout             tile_rows
// with yc the dense n-point convolution of xf by the folded filter (which carries the 1 / F).
// Row r = b * H + h of a (B, H, .) operand sits at b * sb + h * sh elements; the sequence axis
// has unit stride. DT = 0: fp16, DT = 1: bfloat16 (raw bits), accumulated in fp32.
#include "monarch_prims.cuh"

using mc::Dt;
using mc::u16;

// One block per row (grid B * H), threads striding along it.
template <int DT, bool PRE>
__global__ void __launch_bounds__(256)
fold_rows(const u16* __restrict__ u, const u16* __restrict__ pre, u16* __restrict__ xf, int H,
          int L, int n, int F, long long u_sb, long long u_sh, long long p_sb, long long p_sh) {
  const int r = blockIdx.x, b = r / H, h = r - b * H;
  const u16* ur = u + b * u_sb + h * u_sh;
  const u16* pr = PRE ? pre + b * p_sb + h * p_sh : nullptr;
  u16* xr = xf + (long long)r * n;
  for (int m = threadIdx.x; m < n; m += blockDim.x) {
    float s = 0.f;
    for (int t = m; t < L && t < F * n; t += n) {
      float x = Dt<DT>::one(ur[t]);
      // pre * u is rounded to the input type first, as the dense kernels do
      if (PRE) x = Dt<DT>::one(Dt<DT>::from(x * Dt<DT>::one(pr[t])));
      s += x;
    }
    xr[m] = Dt<DT>::from(s);
  }
}

template <int DT, bool POST>
__global__ void __launch_bounds__(256)
tile_rows(const u16* __restrict__ yc, const u16* __restrict__ post, u16* __restrict__ y, int H,
          int n, int Lout, int offset, long long y_sb, long long y_sh, long long p_sb,
          long long p_sh) {
  const int r = blockIdx.x, b = r / H, h = r - b * H;
  const u16* cr = yc + (long long)r * n;
  const u16* pr = POST ? post + b * p_sb + h * p_sh : nullptr;
  u16* yr = y + b * y_sb + h * y_sh;
  for (int t = threadIdx.x; t < Lout; t += blockDim.x) {
    const u16 v = cr[(t + offset) & (n - 1)];
    yr[t] = POST ? Dt<DT>::from(Dt<DT>::one(v) * Dt<DT>::one(pr[t])) : v;
  }
}
