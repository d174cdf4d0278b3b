// cufftconv: the backward of the FFT-4096 convolution on the twiddle-folded stages of
// twiddle_fold.cu (included at its end), and of FFT 512 / 1024 / 2048 on the same core interleaved
// (TwiddleFold::IL): dk's batch sum and, on request, du (no gates), or with both gates every
// gradient (MODE below).
//
// Per block: channel h and a share of its batch (split). A unit is the pair of u rows b0, b0 + 1
// (group 0) and the pair of dy rows b0, b0 + 1 (group 1) (IL: G sequences per row, b0 + G pl
// + p in plane pl of a group), copied into the work planes in natural order (positions [0, L)
// of u, [0, Lout) of dy, the rest zero; 4096: each warp its own rows), transposed in place,
// through F1 / F2 (both groups with the same matrices), then F3 in registers and conj(Z_u) Z_dy
// added in fp32 to a shared-memory sum (each value owned by one lane: a fixed order,
// deterministic), written at the end in the filter spectrum's order: FusedBwd's acc row (its
// Hermitian fold, one inverse FFT per channel and the window make dk). IL: the 4096-point
// product summed over the G aliases f' + N j of each f' < N is G sum_p conj(U_p) D_p[f'] (the
// cross-phase terms cancel), so the G aliases (in one thread's values and across lanes) are
// added and the row written at N positions times 1 / G.
// Same parameter list as monarch_bwd (cufftconv.fused.FusedBwd / BwdLauncher launch either).
#pragma once

namespace tf {

// HALF: u and dy within positions < N / 2 (causal; GATED: the forward's window too): their upper
// half is not copied, F1 reads and I1 writes only the lower half of their digit (the forward's
// HALF rules).
// MODE 0: dk. MODE 1 (DU): also du = the inverse FFT of Z_dy times the adjoint filter's spectrum
// (kf: FusedBwd's adjoint_spectrum), positions [0, L), as the forward kernel's middle / inverse
// stages on group 1 (group 0's are skipped), stored to du.
// MODE 2 (GATED, both gates, every gradient): group 0 holds v = pre * u and group 1 g = post *
// dy (rounded to the input type, as the forward's gate_in); dv from group 1 gives du = dv * pre
// and dpre = dv * u, and group 0 times k's spectrum (kk) through the inverse stages is conv(v, k),
// whose window [out_offset, out_offset + Lout) times dy is dpost. The inverse stages keep fp16 at
// the working scale (the forward's POST rule) and the stores apply the scale and the gate in fp32.
template <int N, int DT, bool HALF, int MODE>
struct FoldBwd : TwiddleFold<N, DT, false, MODE == 2, HALF, 0> {
  using T = TwiddleFold<N, DT, false, MODE == 2, HALF, 0>;
  static_assert(T::R == 1 || (T::R == 2 && MODE < 2), "FFT 512 .. 4096, or 8192 without gates");
  static constexpr bool DU = MODE >= 1, GATED = MODE == 2, IL = T::IL, RX = T::RX;
  static constexpr int THREADS = T::THREADS, WARPS = T::WARPS, P = T::P, RR = T::RR, ITEMS = T::ITEMS;
  static constexpr int G = T::G, C = T::C, R = T::R;
  // RX (8192): a side (u, dy) is the forward's whole unit (one pair, R groups in 2 R planes),
  // the dy side's planes after u's (SIDE planes each), each with its own maxima; else a side
  // is one group of the forward's unit.
  static constexpr int SIDE = RX ? 2 * P : 2, SIDES = RX ? 2 * T::WORK : T::WORK, NRED = RX ? 2 : 1;
  static constexpr int ACC = (RX ? N : 4096) * 8;  // fp32 (re, im) per position
  static constexpr int SMEM = SIDES + T::TAB + NRED * WARPS * P * 4 + ACC;
  const u16* __restrict__ dy;
  long long dy_sb, dy_sh;
  float* __restrict__ out;  // (nsplit, H, N, 2)
  u16* __restrict__ du;      // (B, H, L) strides du_sb, du_sh
  long long du_sb, du_sh;
  const u32* __restrict__ kk;  // GATED: k's spectrum (FusedConv.filter_spectrum's layout)
  u16* __restrict__ dpre;
  u16* __restrict__ dpost;
  long long dpre_sb, dpre_sh, dpost_sb, dpost_sh;
  int nsplit;
  u32 acc;

  // Row b of channel h of u (planes wp 0, 1) or dy (2, 3), GATE: of pre or post instead; sb:
  // its batch stride; len: its length (L or Lout).
  template <bool GATE = false>
  __device__ __forceinline__ const u16* row_of(int wp, int h, int b) const {
    if (wp < 2)
      return GATE ? this->pre + b * this->pre_sb + h * this->pre_sh : this->u + b * this->u_sb + h * this->u_sh;
    return GATE ? this->post + b * this->post_sb + h * this->post_sh : dy + b * dy_sb + h * dy_sh;
  }
  template <bool GATE = false>
  __device__ __forceinline__ long long sb_of(int wp) const {
    return wp < 2 ? (GATE ? this->pre_sb : this->u_sb) : (GATE ? this->post_sb : dy_sb);
  }
  __device__ __forceinline__ int len(int wp) const { return wp < 2 ? this->L : this->Lout; }

  // f(wp, r) for each 16-byte chunk r of plane wp that this thread copies (HALF: live ones).
  template <class F>
  __device__ __forceinline__ void each_chunk(F&& f) const {
#pragma unroll
    for (int wp = 0; wp < 4; ++wp)
#pragma unroll
      for (int r = 0; r < RR; ++r)
        if (T::live_chunk(wp, r)) f(wp, r);
  }

  // Unit: pair b0 of channel h: planes 0, 1 = u[b0], u[b0 + 1]; planes 2, 3 = dy[b0], dy[b0 + 1]
  // (IL: plane wp holds sequences b0 + G (wp & 1) .. + G - 1).
  __device__ __forceinline__ void load(int h, int b0) {
    if constexpr (IL) {
#pragma unroll 1  // (unrolled, the 4 G rows' copy addresses stay live across the unit loop: spills)
      for (int wp = 0; wp < 4; ++wp)
#pragma unroll
        for (int r = 0; r < RR; ++r)
          if (T::live_chunk(wp, r)) this->copy_il(wp, r, row_of(wp, h, b0), sb_of(wp), len(wp), wp & 1);
    } else {
      each_chunk([&](int wp, int r) {
        const int pos = this->chunk_pos(wp, r);
        const u16* row = row_of(wp, h, b0 + (wp & 1));
        const bool in = pos < len(wp);
        mc::cp_async16(this->chunk_at(wp, r), in ? row + pos : row, in ? 16 : 0);
      });
    }
    mc::cp_async_commit();
  }
  // GATED: this thread's own copied chunks times pre (group 0) / post (group 1), in place.
  __device__ __forceinline__ void gate_own(int h, int b0) {
    if constexpr (IL) {  // one group at a time (all four planes' gates at once spill)
#pragma unroll
      for (int g0 = 0; g0 < 4; g0 += 2) {
        uint4 g[2][RR];
#pragma unroll
        for (int wp = g0; wp < g0 + 2; ++wp)
#pragma unroll
          for (int r = 0; r < RR; ++r)
            if (T::live_chunk(wp, r))
              g[wp - g0][r] = this->gate_il_load(r, row_of<true>(wp, h, b0), sb_of<true>(wp), len(wp), wp & 1);
        if (g0 == 0) mc::cp_async_wait<0>();
#pragma unroll
        for (int wp = g0; wp < g0 + 2; ++wp)
#pragma unroll
          for (int r = 0; r < RR; ++r)
            if (T::live_chunk(wp, r)) this->gate_il(wp, r, g[wp - g0][r]);
      }
      return;
    }
    uint4 g[4][RR];
    each_chunk([&](int wp, int r) {
      const int pos = this->chunk_pos(wp, r);
      g[wp][r] = pos < len(wp) ? __ldg(reinterpret_cast<const uint4*>(row_of<true>(wp, h, b0 + (wp & 1)) + pos))
                               : make_uint4(0u, 0u, 0u, 0u);
    });
    mc::cp_async_wait<0>();
    each_chunk([&](int wp, int r) {
      const u32 a = this->chunk_at(wp, r);
      uint4 v = lds128(a);
      mc::gate_chunk<DT>(v, g[wp][r]);
      sts128(a, v);
    });
  }
  // The next unit's rows into L2: one bulk prefetch per sequence (4 G of them; GATED: and their gates).
  __device__ __forceinline__ void prefetch(int h, int b0) const {
    const int t = this->tid % (4 * G), wp = t / G, b = b0 + G * (wp & 1) + t % G;
    if (this->tid < 4 * G)
      mc::prefetch_run(row_of(wp, h, b), 2 * len(wp));
    else if (GATED && this->tid < 8 * G)
      mc::prefetch_run(row_of<true>(wp, h, b), 2 * len(wp));
  }
  // This thread's sum of value c of column half ch of item x of group q (RX: the sub-transform
  // of frequencies q + R f'; lane-consecutive: no conflicts); its position in the spectrum order
  // is pos() (load_k's).
  __device__ __forceinline__ u32 slot(int q, int x, int ch, int c) const {
    return acc + ((((q * ITEMS + x) * 2 + ch) * 4 + c) * THREADS + this->tid) * 8;
  }
  __device__ __forceinline__ int pos(int q, int x, int ch, int c) const {
    const int g = this->lane >> 2, t = this->lane & 3, j = this->warp + WARPS * x;
    const int tile = 16 * q + 8 * ch + 2 * t + (c & 1), lp = 4 * (j & 7) + (g >> 1);
    return tile * 256 + lp * 8 + 4 * (c >> 1) + 2 * (j >> 3) + (g & 1);
  }
  // Side s, group q: the first plane of its (re, im) pair (this lane's: + pl).
  __device__ __forceinline__ u32 side_plane(int s, int q) const { return this->work + (s * SIDE + 2 * q) * PLANE; }
  // F3 of both sides (registers), sum += conj(Z_u) Z_dy sc; DU: Z_dy times the filter (k, as
  // stage_mid: times 2^-6) and I3 back into the dy side's planes.
  __device__ __forceinline__ void mid(float sc, const u32 (&k)[R][ITEMS][2][4], const u32 (&kv)[R][ITEMS][2][4]) {
    const int pl = this->mi >> 1, kh = this->mi & 1, lane = this->lane, warp = this->warp;
#pragma unroll
    for (int x = 0; x < ITEMS; ++x) {
      const int j = warp + WARPS * x;
      const Mat mf = load_mat<false>(this->tab, T::f3_mat(j), lane);
      Mat mv;
      if constexpr (DU) mv = load_mat<true>(this->tab, T::f3_mat(j), lane);
#pragma unroll
      for (int q = 0; q < R; ++q)
#pragma unroll
      for (int ch = 0; ch < 2; ++ch) {
        u32 b[2][4];
#pragma unroll
        for (int p = 0; p < 2; ++p)
          ldsm_x4(b[p], side_plane(p, q) + pl * PLANE + cofs(8 * ch + this->i8, j, kh));
        const Acc zu = cmma<false>(mf, b[0]), zd = cmma<false>(mf, b[1]);
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const u32 a = slot(q, x, ch, c);
          float re, im;
          asm volatile("ld.shared.v2.f32 {%0,%1}, [%2];" : "=f"(re), "=f"(im) : "r"(a));
          re += (zu.r[c] * zd.r[c] + zu.i[c] * zd.i[c]) * sc;
          im += (zu.r[c] * zd.i[c] - zu.i[c] * zd.r[c]) * sc;
          asm volatile("st.shared.v2.f32 [%0], {%1,%2};" ::"r"(a), "f"(re), "f"(im));
        }
        if constexpr (DU) {  // group 1 times kr; GATED: group 0 times kk too
#pragma unroll
          for (int p = GATED ? 0 : 1; p < 2; ++p) {
            Acc z = p ? zd : zu;
#pragma unroll
            for (int c = 0; c < 4; ++c) {
              const u32 kw = p ? k[q][x][ch][c] : kv[q][x][ch][c];
              const float kr = mc::h2lo(kw) * 0.015625f, ki = mc::h2hi(kw) * 0.015625f;
              const float zr = z.r[c], zi = z.i[c];
              z.r[c] = zr * kr - zi * ki;
              z.i[c] = zr * ki + zi * kr;
            }
            u32 o[4], bb[4];
            pack<0>(o, z, 1.f);
#pragma unroll
            for (int w = 0; w < 4; ++w) bb[w] = mc::movt(o[w]);
            pack<0>(o, cmma<true>(mv, bb), 1.f);
            stsm_x4_t(side_plane(p, q) + pl * PLANE + cofs(8 * ch + this->i8, j, kh), o);
          }
        }
      }
    }
  }

  // Store jobs of this warp (the live blocks of the natural-order planes [w0, w1)) in batches of
  // NB: ld(wp, b, t) for each job of a batch first (their gate loads overlap), then st(wp, b, t,
  // v, ld's value): this lane's 16 bytes v at position t of sequence b (IL: 32 / G lanes per
  // sequence, each a chunk gathered from its G / 2 pieces) of the unit's pair b0.
  template <int NB, class Ld, class St>
  __device__ __forceinline__ void each_out(int b0, int w0, int w1, Ld&& ld, St&& st) const {
    constexpr int QB = 32 / G;
    const int p = this->lane / QB, q = this->lane % QB;
    const auto job = [&](int x, int& wp, int& n1, int& b, int& t) {
      wp = x * WARPS / 16, n1 = (this->warp + WARPS * x) & 15;
      b = b0 + G * (wp & 1) + p, t = 16 * C * n1 + 8 * q;
      return T::live_block(x) && wp >= w0 && wp < w1;
    };
#pragma unroll
    for (int x0 = 0; x0 < T::JOBS; x0 += NB) {
      decltype(ld(0, 0, 0)) gv[NB];
#pragma unroll
      for (int x = x0; x < x0 + NB; ++x) {
        int wp, n1, b, t;
        if (job(x, wp, n1, b, t)) gv[x - x0] = ld(wp, b, t);
      }
#pragma unroll
      for (int x = x0; x < x0 + NB; ++x) {
        int wp, n1, b, t;
        if (job(x, wp, n1, b, t)) st(wp, b, t, this->out_chunk(wp, n1, p, q), gv[x - x0]);
      }
    }
  }
  // du rows of the unit from group 1's planes (2, 3): work -> natural order in place (this
  // warp's blocks), 16-byte stores of positions [0, L).
  __device__ __forceinline__ void store_du(int h, int b0) {
    this->to_natural(2);
    each_out<1>(b0, 2, 4, [](int, int, int) { return 0; }, [&](int, int b, int t, const uint4& v, int) {
      if (t < this->L) __stcs(reinterpret_cast<uint4*>(du + b * du_sb + h * du_sh + t), v);
    });
  }

  // GATED: all four planes to natural order (this warp's blocks), then per 16-byte chunk at
  // frame position t: group 1 (dv, t < L): du = dv * pre, dpre = dv * u; group 0 (conv(v, k)):
  // dpost[t - out_offset] = its value * dy for t in the window. sg / sv: 2^e of dv / conv(v, k)
  // as two factors each. HALF: one group at a time, the gate loads of its (two live) blocks
  // issued together; else each block's loads at its use (batches spill at 128 registers).
  __device__ __forceinline__ void store_gated(int h, int b0, float sg1, float sg2, float sv1, float sv2) {
    this->to_natural(0);
    const auto gate = [](const u16* row, int t) { return __ldg(reinterpret_cast<const uint4*>(row + t)); };
    const u16* pre_h = this->pre + h * this->pre_sh;
    const u16* u_h = this->u + h * this->u_sh;
    const u16* dy_h = dy + h * dy_sh;
    const auto dv_out = [&](int b, int t, const uint4& v, const uint4& gp, const uint4& gu) {
      __stcs(reinterpret_cast<uint4*>(du + b * du_sb + h * du_sh + t), finish<DT>(v, gp, sg1, sg2));
      __stcs(reinterpret_cast<uint4*>(dpre + b * dpre_sb + h * dpre_sh + t), finish<DT>(v, gu, sg1, sg2));
    };
    const auto post_out = [&](int b, int to, const uint4& v, const uint4& gy) {
      __stcs(reinterpret_cast<uint4*>(dpost + b * dpost_sb + h * dpost_sh + to), finish<DT>(v, gy, sv1, sv2));
    };
    const auto in_window = [&](int t) { return t >= this->out_offset && t - this->out_offset < this->Lout; };
    if constexpr (HALF) {
      struct Two {
        uint4 p, u;
      };
      each_out<4>(
          b0, 2, 4,
          [&](int, int b, int t) {
            Two g{};
            if (t < this->L) g = {gate(pre_h + b * this->pre_sb, t), gate(u_h + b * this->u_sb, t)};
            return g;
          },
          [&](int, int b, int t, const uint4& v, const Two& g) {
            if (t < this->L) dv_out(b, t, v, g.p, g.u);
          });
      each_out<4>(
          b0, 0, 2,
          [&](int, int b, int t) { return in_window(t) ? gate(dy_h + b * dy_sb, t - this->out_offset) : uint4{}; },
          [&](int, int b, int t, const uint4& v, const uint4& gy) {
            if (in_window(t)) post_out(b, t - this->out_offset, v, gy);
          });
    } else {
      each_out<1>(b0, 0, 4, [](int, int, int) { return 0; }, [&](int wp, int b, int t, const uint4& v, int) {
        if (wp >= 2) {
          if (t < this->L) dv_out(b, t, v, gate(pre_h + b * this->pre_sb, t), gate(u_h + b * this->u_sb, t));
        } else if (in_window(t)) {
          post_out(b, t - this->out_offset, v, gate(dy_h + b * dy_sb, t - this->out_offset));
        }
      });
    }
  }

  // The sums in the filter spectrum's order (FusedBwd's acc row); IL: each f' < N once, the sum
  // of its G aliases f' + N j (j = c >> 1 and lane bits 4, 3 of f's 256 (8 (c >> 1) + g)) times
  // 1 / G, added in a fixed order.
  __device__ __forceinline__ void write_sums(int split, int h) const {
    float2* o = reinterpret_cast<float2*>(out + (static_cast<long long>(split) * this->H + h) * N * 2);
    const int g = this->lane >> 2, t = this->lane & 3;
#pragma unroll
    for (int q = 0; q < R; ++q)
#pragma unroll
    for (int x = 0; x < ITEMS; ++x)
#pragma unroll
      for (int ch = 0; ch < 2; ++ch)
#pragma unroll
        for (int c = 0; c < (IL ? 2 : 4); ++c) {
          float re, im;
          asm volatile("ld.shared.v2.f32 {%0,%1}, [%2];" : "=f"(re), "=f"(im) : "r"(slot(q, x, ch, c)));
          if constexpr (IL) {
            float r2, i2;
            asm volatile("ld.shared.v2.f32 {%0,%1}, [%2];" : "=f"(r2), "=f"(i2) : "r"(slot(q, x, ch, c + 2)));
            re += r2, im += i2;  // bit 11
#pragma unroll
            for (int m = 16; m >= 64 / G; m >>= 1) {  // bits 10 (lane bit 4), 9 (lane bit 3)
              re += __shfl_xor_sync(0xffffffffu, re, m);
              im += __shfl_xor_sync(0xffffffffu, im, m);
            }
            const int f = 8 * ch + 2 * t + (c & 1) + 16 * (this->warp + WARPS * x) + 256 * g;
            if (f < N) o[T::spec_pos(f)] = make_float2(re * (1.f / G), im * (1.f / G));
          } else {
            o[pos(q, x, ch, c)] = make_float2(re, im);
          }
        }
  }

  // RX: side s's planes (and maxima) as the forward kernel's work / staging (in place).
  __device__ __forceinline__ void use_side(int s, u32 base, u32 red0) {
    this->work = this->staging = base + s * T::WORK;
    this->red = red0 + s * WARPS * P * 4;
  }
  // RX: unit pi (pair b0 = 2 pi of channel h): the forward's radix step and stages on both
  // sides, the product in mid (side 0's work as the base), DU: the inverse on the dy side and
  // the forward's store_rx into du (y, Lout, out_offset standing for du's rows, L, 0).
  __device__ __forceinline__ void unit_rx(int h, int pi, int p1, u32 base, u32 red0) {
    const int b0 = 2 * pi;
#pragma unroll
    for (int s = 0; s < 2; ++s) {  // natural order; each warp fills its own rows
      use_side(s, base, red0);
#pragma unroll
      for (int sp = 0; sp < 2 * P; ++sp)
#pragma unroll
        for (int r = 0; r < RR; ++r) {
          if (!T::live_chunk(sp, r)) continue;
          const int pos = this->chunk_pos(sp, r);
          const u16* row = row_of(2 * s, h, b0 + (sp & 1));
          const bool in = pos < len(2 * s);
          mc::cp_async16(this->chunk_at(sp, r), in ? row + pos : row, in ? 16 : 0);
        }
    }
    mc::cp_async_commit();
    mc::cp_async_wait<0>();
    __syncwarp();
    int e[2];
#pragma unroll
    for (int s = 0; s < 2; ++s) use_side(s, base, red0), this->stage_max();
    __syncthreads();
#pragma unroll
    for (int s = 0; s < 2; ++s) use_side(s, base, red0), e[s] = this->pair_exp(0);
    if (pi + 1 < p1) prefetch(h, b0 + 2);
#pragma unroll
    for (int s = 0; s < 2; ++s) use_side(s, base, red0), this->transpose_rx(e[s]);
    __syncthreads();
    const float one[P] = {1.f, 1.f};
#pragma unroll
    for (int s = 0; s < 2; ++s) use_side(s, base, red0), this->template stage_outer<false>(one, one);
    __syncthreads();
#pragma unroll
    for (int s = 0; s < 2; ++s) use_side(s, base, red0), this->template stage_second<false>();
    u32 k[R][ITEMS][2][4];
    int ef = 0;
    if constexpr (DU) this->load_k(k, ef, h);
    __syncthreads();
    use_side(0, base, red0);
    mid(exp2i(min(max(e[0] + e[1] + 12, -126), 127)), k, k);
    __syncthreads();
    if constexpr (DU) {
      use_side(1, base, red0);
      this->template stage_second<true>();
      __syncthreads();
      this->template stage_outer<true>(one, one);
      __syncthreads();
      const int ed = min(max(e[1] + ef + 6 - 1, -250), 250);  // (the inverse radix-2 step: 1 / 2)
      const int lout = this->Lout, off = this->out_offset;
      this->Lout = this->L, this->out_offset = 0;
      this->store_rx(h * (this->B >> 1) + pi, exp2i(ed >> 1), exp2i(ed - (ed >> 1)));
      this->Lout = lout, this->out_offset = off;
    }
    __syncthreads();  // (the next unit's copies overwrite the work planes)
  }

  __device__ __forceinline__ void run(unsigned char* smem) {
    const u32 base = mc::smem_u32(smem);
    this->work = base;
    this->staging = this->work;  // in place
    this->tab = base + SIDES;
    this->red = this->tab + T::TAB;
    const u32 red0 = this->red;
    acc = this->red + NRED * WARPS * P * 4;
    this->tid = threadIdx.x, this->lane = this->tid & 31, this->warp = this->tid >> 5;
    this->mi = this->lane >> 3, this->i8 = this->lane & 7;
    build_table<T::RT>(smem + SIDES, this->tid, THREADS);
    for (int i = this->tid; i < ACC / 8; i += THREADS)  // (the slots are this thread's: no barrier)
      asm volatile("st.shared.v2.f32 [%0], {%1,%2};" ::"r"(acc + i * 8), "f"(0.f), "f"(0.f));
    // units of channel h: pairs of G sequences per side
    const int h = blockIdx.x / nsplit, split = blockIdx.x % nsplit, nu = this->B / (2 * G);
    const int p0 = split * nu / nsplit, p1 = (split + 1) * nu / nsplit;
    __syncthreads();
    if constexpr (RX) {
      for (int pi = p0; pi < p1; ++pi) unit_rx(h, pi, p1, base, red0);
    } else {
      for (int pi = p0; pi < p1; ++pi) {
        const int b0 = 2 * G * pi;
        // IL: tid-derived copy addresses recomputed per unit (hoisted out of the loop, they spill)
        if constexpr (IL) asm volatile("" : "+r"(this->tid));
        load(h, b0);
        if constexpr (GATED)
          gate_own(h, b0);
        else
          mc::cp_async_wait<0>();
        if constexpr (IL)
          __syncthreads();  // (a warp's copies span other warps' rows)
        else
          __syncwarp();  // (this warp's own rows)
        this->transpose_in();  // in place (staging = work), maxima per pair
        __syncthreads();
        const int eu = this->pair_exp(0), ed = this->pair_exp(1);
        float s[2], s2[2];
        s[0] = DT == 0 ? exp2i(-eu) : 1.f, s2[0] = exp2i(-eu);
        s[1] = DT == 0 ? exp2i(-ed) : 1.f, s2[1] = exp2i(-ed);
        if (pi + 1 < p1) prefetch(h, b0 + 2 * G);
        this->template stage_outer<false>(s, s2);
        __syncthreads();
        this->template stage_second<false>();
        u32 k[R][ITEMS][2][4], kv[R][ITEMS][2][4];
        int ef = 0, efv = 0;
        if constexpr (DU) this->load_k(k, ef, h);
        if constexpr (GATED) {
          const u32* kr = this->kf;
          this->kf = kk;
          this->load_k(kv, efv, h);
          this->kf = kr;
        }
        __syncthreads();
        mid(exp2i(min(max(eu + ed + 12, -126), 127)), k, kv);
        __syncthreads();
        if constexpr (DU) {
          // (no gates: group 0's inverse would be read by nobody)
          this->template stage_second<true, GATED ? 0 : 1>();
          __syncthreads();
          // du's scale 2^(ed + ef + 6) (GATED: conv(v, k)'s 2^(eu + efv + 6) too), as two factors:
          // into I1's epilogue, or (GATED) applied by the store
          const int e = min(max(ed + ef + 6, -250), 250), ev = min(max(eu + efv + 6, -250), 250);
          float o1[2], o2[2];
          o1[0] = o1[1] = GATED ? 1.f : exp2i(e >> 1), o2[0] = o2[1] = GATED ? 1.f : exp2i(e - (e >> 1));
          this->template stage_outer<true, false, GATED ? 0 : 1>(o1, o2);
          __syncthreads();
          if constexpr (GATED)
            store_gated(h, b0, exp2i(e >> 1), exp2i(e - (e >> 1)), exp2i(ev >> 1), exp2i(ev - (ev >> 1)));
          else
            store_du(h, b0);
        }
        __syncthreads();  // (the next unit's copies overwrite the work planes)
      }
    }
    write_sums(split, h);
  }
};

}  // namespace tf

// MODE 0 / 1 read no gate, kk, dpre or dpost; outs is implied by MODE.
template <int N, int DT, bool HALF, int MODE>
__global__ void __launch_bounds__(256, N == 8192 ? 1 : 2)
    twiddle_fold_bwd(const unsigned short* __restrict__ u, const unsigned short* __restrict__ pre,
                     const unsigned short* __restrict__ dy, const unsigned short* __restrict__ post,
                     const unsigned short* __restrict__ kr, const unsigned short* __restrict__ kk,
                     unsigned short* __restrict__ du, unsigned short* __restrict__ dpre,
                     unsigned short* __restrict__ dpost, float* __restrict__ acc, long long u_sb, long long u_sh,
                     long long pre_sb, long long pre_sh, long long dy_sb, long long dy_sh, long long post_sb,
                     long long post_sh, long long du_sb, long long du_sh, long long dpre_sb, long long dpre_sh,
                     long long dpost_sb, long long dpost_sh, int B, int H, int L, int Lout, int out_offset,
                     int nsplit, int outs) {
  extern __shared__ __align__(16) unsigned char fb_smem[];
  tf::FoldBwd<N, DT, HALF, MODE> k;
  k.u = u, k.dy = dy, k.out = acc, k.u_sb = u_sb, k.u_sh = u_sh, k.dy_sb = dy_sb, k.dy_sh = dy_sh;
  k.kf = reinterpret_cast<const unsigned*>(kr), k.du = du, k.du_sb = du_sb, k.du_sh = du_sh;
  k.pre = pre, k.post = post, k.pre_sb = pre_sb, k.pre_sh = pre_sh, k.post_sb = post_sb, k.post_sh = post_sh;
  k.kk = reinterpret_cast<const unsigned*>(kk), k.dpre = dpre, k.dpost = dpost;
  k.dpre_sb = dpre_sb, k.dpre_sh = dpre_sh, k.dpost_sb = dpost_sb, k.dpost_sh = dpost_sh;
  k.out_offset = out_offset;
  k.y = du, k.y_sb = du_sb, k.y_sh = du_sh;  // (8192: the forward's store writes du)
  k.B = B, k.H = H, k.L = L, k.Lout = Lout, k.nsplit = nsplit;
  k.run(fb_smem);
}
