"""Backward row on the 16-bit kernel families: the fused backward kernel where it covers the FFT
size (256..16384), else three of the four gradients through the forward kernels
(:mod:`cufftconv.fused` up to FFT size 32768, :mod:`cufftconv.long` above).

With ``y = post * window(conv(pre * u, k))`` and ``dc = dy * post`` (see :mod:`cufftconv.grad`):

* ``dv = corr(dc, k)[:L]`` is a forward convolution of dy (post in the kernel's pregate slot)
  with the reversed, shifted filter ``r[m] = k[(offset - m) mod n]`` (spectrum
  ``exp(-2 pi i f offset / n) conj(K[f])``), output window ``[0, L)``. The circular wrap never
  reaches k: n is at least the linear length ``L + Lk - 1`` (causal: k cut to L taps), and for
  circular mode the adjoint is the circular correlation itself. ``du = dv * pre`` and
  ``dpre = dv * u`` come out of the same kernel with pre, resp. u, in its postgate slot.
* ``dpost = dy * window(conv(pre * u, k))`` is the forward with dy in the postgate slot.
* ``dk = corr(dc, v)`` summed over the batch: the exact cuFFT adjoint, or at FFT sizes beyond
  the fused backward kernel's (32768), that kernel at its largest size on blocks: the linear
  correlation split into blocks of n_b / 2 samples of dc and of v, one kernel call per pair of
  blocks whose lags reach dk (three for causal L = n / 2), summed by lag (:meth:`_dk_by_blocks`).

Where :class:`cufftconv.fused.FusedBwd` covers the FFT size (256..16384) and dk is wanted, it
computes all four in one kernel instead: both sides transformed on chip, the batch sum of dk
kept in fp32 with one inverse FFT per channel after, dc's transform continued through the
reversed filter for dv (du, dpre) and v's through k for dpost.

Every kernel call runs at the forward's speed; fp16/bf16 in, fp32 arithmetic, 16-bit out.
"""

from __future__ import annotations

from typing import Any

from ..device import DeviceInfo, require_cupy
from ..dtypes import from_compute, to_compute
from ..fused import FusedConv
from ..grad import ALL, Needs, wanted
from ..validation import ConvSpec
from . import fused as fused_row
from . import long as long_row

NAME = "monarch-adjoint"


def _family(spec: ConvSpec, dev: DeviceInfo | None) -> tuple[str, Any] | str:
    """('fused' | 'long', FFT size) for a spec the forward kernels take, else why not."""
    if spec.freq_mask is not None:
        return "frequency-sparse convolutions have no backward pass"
    reason = fused_row.accepts(spec, dev)
    if reason is None:
        # (every size the forward kernel fits has a backward kernel that fits: dk_shared_bytes
        # <= shared_bytes for n <= 16384)
        return "fused", fused_row.fft_size(spec)
    long_reason = long_row.accepts(spec, dev)
    if long_reason is None:
        return "long", long_row.fft_size(spec)
    return f"fused: {reason}; long: {long_reason}"


def accepts(spec: ConvSpec, dev: DeviceInfo | None) -> str | None:
    fam = _family(spec, dev)
    return fam if isinstance(fam, str) else None


def _fused_bwd(n: int, dtype: str, dev: DeviceInfo | None) -> bool:
    """Whether the fused backward kernel covers FFT size n on dev (None: assume it fits)."""
    from .. import fused

    if n not in fused.DK_SIZES:
        return False
    return dev is None or fused.dk_shared_bytes(n, dtype) <= dev.smem_per_block_optin


class AdjointBwdExecutor:
    """Where the fused backward kernel covers the FFT size and dk is wanted: dk, du and
    dpregate from it (one kernel) and dpostgate from the forward kernel. Elsewhere du,
    dpregate and dpostgate through the forward kernels and dk through cuFFT."""

    def __init__(
        self,
        spec: ConvSpec,
        dev: DeviceInfo | None,
        *,
        family: tuple[str, int] | None = None,
        xp: Any = None,
        make_kernel: Any = None,
        make_bwd: Any = None,
        exact: Any = None,
        dk_blocks: tuple[Any, int] | None = None,
    ) -> None:
        """``family``/``xp``/``make_kernel``/``make_bwd``/``exact``/``dk_blocks`` replace the
        dispatch decision, CuPy, the kernel classes, the exact executor and the blocked dk's
        (kernel, FFT size) (host tests run the executor on NumPy stand-ins; with
        ``make_kernel`` and neither ``make_bwd`` nor ``dk_blocks``, dk takes the exact
        executor)."""
        from .. import fused, long

        fam = _family(spec, dev) if family is None else family
        assert not isinstance(fam, str), fam
        fam_name, self.n = fam
        self.xp = require_cupy() if xp is None else xp
        self.spec = spec
        self.B, self.H = fused_row.batch_channels(spec)
        self.k_used = min(spec.Lk, spec.L) if spec.mode == "causal" else spec.Lk
        conv = make_kernel or (fused.FusedConv if fam_name == "fused" else long.LongConv)
        has_pre, has_post = spec.pregate_dtype is not None, spec.postgate_dtype is not None
        n, dt = self.n, spec.dtype
        # kernel configurations: (pregate slot, postgate slot) present
        self.adj_du = conv(n, dt, pregate=has_post, postgate=has_pre)
        self.adj_dpre = conv(n, dt, pregate=has_post, postgate=True) if has_pre else None
        self.fwd_dpost = conv(n, dt, pregate=has_pre, postgate=True) if has_post else None
        self.bwd = None
        if make_bwd is not None:
            self.bwd = make_bwd(n, dt, pregate=has_pre, postgate=has_post)
        elif make_kernel is None and fam_name == "fused" and _fused_bwd(n, dt, dev):
            self.bwd = fused.FusedBwd(n, dt, pregate=has_pre, postgate=has_post)
        # dk by blocks through the fused backward kernel at its largest size (n beyond it;
        # circular mode wraps, so it keeps the exact dk)
        self.dk_blocks = dk_blocks
        nb = max(fused.DK_SIZES)
        if (
            dk_blocks is None
            and self.bwd is None
            and make_kernel is None
            and fam_name == "fused"
            and n > nb
            and spec.mode != "circular"
            and _fused_bwd(nb, dt, dev)
        ):
            self.dk_blocks = (fused.FusedBwd(nb, dt, pregate=has_pre, postgate=has_post), nb)
        self._exact = exact  # built on first use: dk where no dk kernel covers n

    def _rows(self, a: Any, length: int) -> Any:
        a = a.reshape(self.B, self.H, length)
        return a if a.strides[-1] == a.itemsize else self.xp.ascontiguousarray(a)

    def _k32(self, k: Any) -> Any:
        """The taps of k that reach an output, (H, k_used) float32."""
        kc = to_compute(k[..., : self.k_used], self.spec.k_dtype, "float32", self.xp)
        return kc.reshape(self.H, self.k_used)

    def _filters(self, k: Any, need_r: bool, need_k: bool) -> tuple[Any, Any]:
        """Kernel-order spectra of the reversed filter r (for dv) and of k (for dpost)."""
        cp, s, n = self.xp, self.spec, self.n
        kc = self._k32(k)
        R = K = None
        if need_r and isinstance(self.adj_du, FusedConv):  # r's spectrum straight from k's
            R = self.adj_du.filter_spectrum(kc, reverse_shift=s.offset)
        elif need_r:
            kpad = cp.zeros((self.H, n), dtype=cp.float32)
            kpad[:, : self.k_used] = kc
            r = kpad[:, (s.offset - cp.arange(n)) % n]  # r[m] = k[(offset - m) mod n]
            del kpad
            R = self.adj_du.filter_spectrum(r)
        if need_k:
            K = self.fwd_dpost.filter_spectrum(kc)
        return R, K

    def run_bwd(
        self,
        dy: Any,
        u: Any,
        k: Any,
        pregate: Any | None,
        postgate: Any | None,
        *,
        needs: Needs = ALL,
    ) -> tuple[Any, Any, Any, Any]:
        """(du, dk, dpregate, dpostgate) as :class:`cufftconv.grad.BwdExecutor` specifies."""
        cp, s = self.xp, self.spec
        need_u, need_k, need_pre, need_post = wanted(needs, pregate, postgate)
        L, Lout = s.L, s.Lout
        dy3 = self._rows(dy, Lout)
        post3 = None if postgate is None else self._rows(postgate, Lout)
        pre3 = None if pregate is None else self._rows(pregate, L)
        fused_bwd = need_k and self.bwd is not None
        blocks = need_k and self.dk_blocks is not None
        u3 = self._rows(u, L) if (need_pre or need_post or fused_bwd or blocks) else None
        # (the fused backward builds its own spectra below)
        R, K = (None, None) if fused_bwd else self._filters(k, need_u or need_pre, need_post)

        du = dpre = dpost = dk = None
        if fused_bwd:  # all four in one kernel
            kr, kk = self.bwd.spectra(self._k32(k), s.offset, adjoint=need_u or need_pre,
                                      filt=need_post)
            du = cp.empty((self.B, self.H, L), dtype=dy3.dtype) if need_u else None
            dpre = cp.empty((self.B, self.H, L), dtype=dy3.dtype) if need_pre else None
            dpost = cp.empty((self.B, self.H, Lout), dtype=dy3.dtype) if need_post else None
            dkc = self.bwd(u3, dy3, kr, L=L, out_offset=s.offset, Lout=Lout, Lk=self.k_used,
                           pregate=pre3, postgate=post3, du=du, dpre=dpre, kk=kk, dpost=dpost)
            dk = self._dk_out(dkc)
            du = None if du is None else du.reshape(s.u_shape)
            dpre = None if dpre is None else dpre.reshape(s.u_shape)
            dpost = None if dpost is None else dpost.reshape(s.out_shape)
            need_u = need_pre = need_k = need_post = False
        if need_u:
            du = cp.empty((self.B, self.H, L), dtype=dy3.dtype)
            self.adj_du(dy3, R, du, L=Lout, out_offset=0, Lout=L, pregate=post3, postgate=pre3)
            du = du.reshape(s.u_shape)
        if need_pre:
            dpre = cp.empty((self.B, self.H, L), dtype=dy3.dtype)
            self.adj_dpre(dy3, R, dpre, L=Lout, out_offset=0, Lout=L, pregate=post3, postgate=u3)
            dpre = dpre.reshape(s.u_shape)
        if need_post:
            dpost = cp.empty((self.B, self.H, Lout), dtype=dy3.dtype)
            self.fwd_dpost(
                u3, K, dpost, L=L, out_offset=s.offset, Lout=Lout, pregate=pre3, postgate=dy3
            )
            dpost = dpost.reshape(s.out_shape)
        if need_k and blocks:
            dk = self._dk_out(self._dk_by_blocks(u3, dy3, pre3, post3))
        elif need_k:
            dk = self.exact_executor().run_bwd(
                dy, u, k, pregate, postgate, needs=(False, True, False, False)
            )[1]
        return du, dk, dpre, dpost

    def _dk_by_blocks(self, u3: Any, dy3: Any, pre3: Any, post3: Any) -> Any:
        """dk (H, k_used) float32 from the fused backward kernel at FFT size n_b < n.

        dk[s] = c[s - offset], c[d] = sum over b, t of g[t] v[t - d] (linear: the spec's n
        leaves no wrap). With T = n_b / 2, g's block a (t = aT + i, i < lg) and v's block b
        (m = bT + j, j < lv) give lags d = (a - b) T + e, e = i - j in (-lv, lg): one kernel
        call at FFT size n_b with window offset lv - 1 returns c_ab[e] at s' = e + lv - 1 for
        s' < lg + lv - 1 (span < n_b: no wrap). Pairs whose lags miss [-offset, Lk - offset)
        are skipped; the rest are added by lag (float32).
        """
        kern, nb = self.dk_blocks
        s, xp = self.spec, self.xp
        T = nb // 2
        L, Lout, off, lk = s.L, s.Lout, s.offset, self.k_used
        dk = None  # in the kernel's output dtype (float32)

        def block(a: Any, start: int, length: int) -> Any:
            return None if a is None else a[..., start : start + length]

        for a0 in range(0, Lout, T):
            lg = min(T, Lout - a0)
            for b0 in range(0, L, T):
                lv = min(T, L - b0)
                # s = d + off = shift + s', s' in [0, lg + lv - 1)
                shift = a0 - b0 - (lv - 1) + off
                lo, hi = max(shift, 0), min(shift + lg + lv - 1, lk)
                if lo >= hi:
                    continue
                part = kern(
                    block(u3, b0, lv), block(dy3, a0, lg), None, L=lv, out_offset=lv - 1,
                    Lout=lg, Lk=lg + lv - 1, pregate=block(pre3, b0, lv),
                    postgate=block(post3, a0, lg),
                )
                if dk is None:
                    dk = xp.zeros((self.H, lk), dtype=part.dtype)
                dk[:, lo:hi] += part[:, lo - shift : hi - shift]
        return xp.zeros((self.H, lk), dtype=xp.float32) if dk is None else dk

    def _dk_out(self, dkc: Any) -> Any:
        """dk in k's shape and dtype from the kernel's (H, k_used) float32."""
        s, cp = self.spec, self.xp
        if self.k_used < s.Lk:  # causal: taps past L never reach an output
            full = cp.zeros((self.H, s.Lk), dtype=dkc.dtype)
            full[:, : self.k_used] = dkc
            dkc = full
        return from_compute(dkc.reshape(s.k_shape), s.k_dtype, cp)

    def fast_bwd(self, device: int, needs: Needs) -> Any:
        """:func:`fast_bwd` of this executor."""
        return fast_bwd(self, device, needs)

    def exact_executor(self) -> Any:
        """The exact cuFFT backward (dk where the fused dk kernel does not run)."""
        if self._exact is None:
            from ..grad import CufftBwdExecutor

            self._exact = CufftBwdExecutor(self.spec)
        return self._exact


def fast_bwd(ex: AdjointBwdExecutor, device: int, needs: Needs) -> Any:
    """A per-call fast path of ``fftconv_bwd`` for one spec and ``needs``: C-contiguous
    PyTorch or CuPy operands of exactly the spec's shapes and dtypes on ``device`` go to one
    pre-resolved :class:`cufftconv.fused.BwdLauncher` (no spec, no per-call checks).

    With dk wanted, the fused backward kernel (:class:`cufftconv.fused.BwdLauncher`, FFT
    sizes 256..16384); without dk, k's spectra and one forward-kernel launch per wanted
    gradient (:class:`_ForwardKernelLaunches`, every fused FFT size 256..32768).

    Returns ``fast(dy, u, k, pregate, postgate) -> (du, dk, dpregate, dpostgate) or None``
    (None: take the general path, which also raises the proper errors), or None where
    neither applies (the long route, dk by blocks at 32768).
    """
    from ..interop.fastcheck import fast_kinds

    s = ex.spec
    has_pre, has_post = s.pregate_dtype is not None, s.postgate_dtype is not None
    need_u, need_k, need_pre, need_post = wanted(
        needs, True if has_pre else None, True if has_post else None
    )
    if ex.xp.__name__ != "cupy" or ex.B * ex.H * s.Lout == 0:
        return None
    cp = ex.xp
    outs = int(need_u) | (int(need_pre) << 1) | (int(need_post) << 2)
    if need_k and ex.bwd is not None:
        launch = ex.bwd.launcher(ex.B, ex.H, s.L, s.offset, s.Lout, s.Lk, ex.k_used, s.k_dtype,
                                 outs)
    elif not need_k and outs and isinstance(ex.adj_du, FusedConv):
        launch = _ForwardKernelLaunches(ex, outs)
    else:
        return None
    u_shape, out_shape, k_shape = s.u_shape, s.out_shape, s.k_shape
    kinds = fast_kinds(cp, device, s.dtype, s.k_dtype)
    get_device = cp.cuda.runtime.getDevice

    def fast(dy: Any, u: Any, k: Any, pre: Any, post: Any) -> Any:
        if (pre is not None) != has_pre or (post is not None) != has_post:
            return None
        kind = kinds.get(type(u))
        if kind is None or kind.k_dtype is None or get_device() != device:
            return None
        ok, dt, kdt = kind.ok, kind.dtype, kind.k_dtype
        if not (ok(u, u_shape, dt) and ok(dy, out_shape, dt) and ok(k, k_shape, kdt)):
            return None
        if (pre is not None and not ok(pre, u_shape, dt)) or (
            post is not None and not ok(post, out_shape, dt)
        ):
            return None
        stream = kind.stream()
        new, addr = kind.empty_like, kind.addr
        du = new(u) if need_u else None
        dpre = new(u) if need_pre else None
        dpost = new(dy) if need_post else None
        dk = new(k) if need_k else None
        u_p, dy_p = addr(u), addr(dy)
        hold, ws = kind.workspace(launch.ws_bytes)
        launch(
            u_p, u_p if pre is None else addr(pre), dy_p, dy_p if post is None else addr(post),
            addr(k), u_p if du is None else addr(du), u_p if dpre is None else addr(dpre),
            u_p if dpost is None else addr(dpost), 0 if dk is None else addr(dk), stream, ws,
        )
        del hold  # free for reuse in stream order
        return du, dk, dpre, dpost

    return fast


class _ForwardKernelLaunches:
    """du / dpregate / dpostgate without dk, pre-resolved as :meth:`AdjointBwdExecutor.run_bwd`
    computes them: the spectra of the reversed filter (du, dpregate) and of k (dpostgate) in
    one :class:`cufftconv.fused.SpectrumLauncher` call, then one forward-kernel launch per
    gradient (``Launcher``s of the executor's ``adj_du``, ``adj_dpre``, ``fwd_dpost``).
    Called like :class:`cufftconv.fused.BwdLauncher` (dk's pointer ignored)."""

    def __init__(self, ex: AdjointBwdExecutor, outs: int) -> None:
        from .. import fused

        s, n, H = ex.spec, ex.n, ex.H
        self.spectra = fused.SpectrumLauncher(n, H, s.Lk, ex.k_used, s.k_dtype,
                                              fused.adjoint_shifts(s.offset, outs))
        self.offs, self.ws_bytes = fused._layout(self.spectra.ws_sizes)
        B, L, Lout = ex.B, s.L, s.Lout
        self.du = ex.adj_du.launcher(B, H, Lout, 0, L) if outs & 1 else None
        self.dpre = ex.adj_dpre.launcher(B, H, Lout, 0, L) if outs & 2 else None
        self.dpost = ex.fwd_dpost.launcher(B, H, L, s.offset, Lout) if outs & 4 else None

    def __call__(
        self, u: int, pre: int, dy: int, post: int, k: int, du: int, dpre: int, dpost: int,
        dk: int, stream, ws: int,
    ) -> None:
        spectra = tuple(ws + o for o in self.offs[2:])
        self.spectra(stream, k, ws, spectra)
        kr, kk = spectra[0], spectra[-1]  # the reversed filter's first, k's own last
        # gates the kernel was not built with are never read: any pointer will do
        if self.du is not None:
            self.du(dy, post, kr, du, pre, stream)
        if self.dpre is not None:
            self.dpre(dy, post, kr, dpre, u, stream)
        if self.dpost is not None:
            self.dpost(u, pre, kk, dpost, dy, stream)


__all__ = ["NAME", "AdjointBwdExecutor", "accepts", "fast_bwd"]
