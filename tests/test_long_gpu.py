"""GPU tests of the long-sequence path (FFT sizes 65536 and up, three passes).

Fresh random inputs each run, outputs poisoned with NaN (``out=``), float64 reference from
scipy.signal.fftconvolve / numpy.fft on the same rounded 16-bit inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import rel_err

cp = pytest.importorskip("cupy")
torch = pytest.importorskip("torch")
signal = pytest.importorskip("scipy.signal")

pytestmark = pytest.mark.gpu  # conftest skips it without a GPU

import cufftconv
from cufftconv import dispatch, long
from cufftconv.validation import build_spec

TOL = {"float16": 2e-3, "bfloat16": 1e-2}  # issue #4's bounds for the long path


def _ref(u, k, mode, pre=None, post=None):
    x = u if pre is None else u * pre
    L = x.shape[-1]
    if mode == "circular":
        y = np.fft.irfft(np.fft.rfft(x, axis=-1) * np.fft.rfft(k, n=L, axis=-1), n=L, axis=-1)
    elif mode == "causal":
        y = signal.fftconvolve(x, np.broadcast_to(k, x.shape[:-1] + k.shape[-1:]), axes=-1)[..., :L]
    else:
        y = signal.fftconvolve(
            x, np.broadcast_to(k, x.shape[:-1] + k.shape[-1:]), mode=mode, axes=-1
        )
    return y if post is None else y * post


@pytest.fixture(autouse=True)
def _dense_long_route(monkeypatch):
    """Short filters here test the long kernels; the partial route would take them."""
    from cufftconv.backends import partial as partial_row

    monkeypatch.setattr(partial_row, "ENABLED", False)
    cufftconv.clear_plan_cache()
    yield
    cufftconv.clear_plan_cache()


def _case(rng, dtype, B, H, L, Lk, mode, gated):
    tdt = getattr(torch, dtype)
    u = torch.randn(B, H, L, dtype=torch.float32).to(tdt)
    k = torch.from_numpy(rng.standard_normal((H, Lk)).astype(np.float32) / np.sqrt(Lk))
    pre = post = None
    if gated:
        pre = torch.randn(B, H, L).to(tdt)
    spec = build_spec(
        tuple(u.shape),
        tuple(k.shape),
        mode=mode,
        dtype=dtype,
        k_dtype="float32",
        pregate_dtype=dtype if gated else None,
        postgate_dtype=dtype if gated else None,
        device=0,
    )
    if gated:
        post = torch.randn(B, H, spec.Lout).to(tdt)
    return u, k, pre, post, spec


def _run(rng, dtype, B, H, L, Lk, mode, gated, n_expect):
    u, k, pre, post, spec = _case(rng, dtype, B, H, L, Lk, mode, gated)
    assert dispatch.choose(spec, dispatch.target_device(spec)).name == "long-monarch"
    assert long.SUPPORTED_N and n_expect in long.SUPPORTED_N
    dev = "cuda"
    out = torch.full(spec.out_shape, float("nan"), dtype=u.dtype, device=dev)
    y = cufftconv.fftconv(
        u.to(dev),
        k.to(dev),
        mode=mode,
        pregate=None if pre is None else pre.to(dev),
        postgate=None if post is None else post.to(dev),
        out=out,
    )
    assert y.data_ptr() == out.data_ptr()
    got = y.float().cpu().numpy().astype(np.float64)
    assert not np.isnan(got).any(), "unwritten (NaN) outputs"
    f64 = lambda t: None if t is None else t.double().numpy()
    want = _ref(f64(u), f64(k), mode, f64(pre), f64(post))
    err = rel_err(got, want)
    assert err <= TOL[dtype], f"{dtype} {mode} L={L} Lk={Lk} gated={gated}: rel err {err:.2e}"
    return err


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("n", [1 << 16, 1 << 18, 1 << 20, 1 << 22])
def test_circular_and_causal(rng, dtype, n):
    bh = {1 << 16: (3, 5), 1 << 18: (2, 3), 1 << 20: (2, 2), 1 << 22: (1, 2)}[n]
    _run(rng, dtype, *bh, n, n, "circular", False, n)
    _run(rng, dtype, *bh, n // 2, n // 2, "causal", True, n)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(
    "L,Lk,mode",
    [
        (40001, 30011, "full"),  # odd lengths -> 131072
        (65537, 4099, "same"),  # prime L -> 131072
        (100003, 77, "valid"),  # valid, FFT 131072
        (50000, 50000, "causal"),  # 65536 > L: zero padding inside the loads
        (300007, 1000, "causal"),  # -> 524288
        (1 << 17, 1 << 17, "circular"),
    ],
)
def test_modes_odd_lengths(rng, dtype, L, Lk, mode):
    for gated in (False, True):
        spec = build_spec((1, 1, L), (1, Lk), mode=mode, dtype=dtype, k_dtype="float32")
        from cufftconv.backends.long import fft_size

        n = fft_size(spec)
        _run(rng, dtype, 1, 3, L, Lk, mode, gated, n)  # B = 1: unpaired sequence


def test_cupy_noncontiguous_and_plan(rng):
    """CuPy fp16 input as a strided view, through a plan holding k (spectrum kept)."""
    B, H, L = 3, 4, 1 << 16
    base = cp.asarray(rng.standard_normal((B, 2 * H, L)).astype(np.float16))
    u = base[:, ::2]  # non-contiguous view
    k = cp.asarray(rng.standard_normal((H, 1000)).astype(np.float32) / 30)
    plan = cufftconv.FFTConv(u.shape, k=k, dtype="float16", mode="causal")
    assert plan.route == "long-monarch"
    before = base.copy()
    for _ in range(2):
        y = plan(u)
        want = _ref(u.get().astype(np.float64), k.get().astype(np.float64), "causal")
        assert rel_err(y.get(), want) <= TOL["float16"]
    assert bool((base == before).all()), "input written"


def test_deterministic(rng):
    u = cp.asarray(rng.standard_normal((2, 3, 1 << 18)).astype(np.float16))
    k = cp.asarray(rng.standard_normal((3, 1 << 18)).astype(np.float32))
    a = cufftconv.fftconv(u, k, mode="circular")
    b = cufftconv.fftconv(u, k, mode="circular")
    assert bool((a.view(cp.uint16) == b.view(cp.uint16)).all())


@pytest.mark.parametrize("chunk_bytes,streams", [(1, 1), (1, 3), (1 << 20, 2), (1 << 40, 4)])
def test_chunking_gives_same_result(rng, chunk_bytes, streams):
    """Launch groups of any size, on one or several side streams, agree bitwise."""
    n = 1 << 16
    conv = long.LongConv(n, "float16", pregate=False, postgate=False)
    u = cp.asarray(rng.standard_normal((5, 3, n)).astype(np.float16))
    k = cp.asarray(rng.standard_normal((3, n)).astype(np.float32))
    kf = conv.filter_spectrum(k)
    y1 = cp.full((5, 3, n), np.nan, dtype=np.float16)
    y2 = cp.full((5, 3, n), np.nan, dtype=np.float16)
    conv(u, kf, y1, L=n, out_offset=0, Lout=n, chunk_bytes=chunk_bytes, streams=streams)
    conv(u, kf, y2, L=n, out_offset=0, Lout=n, chunk_bytes=1 << 40, streams=1)
    assert bool((y1.view(cp.uint16) == y2.view(cp.uint16)).all())


@pytest.mark.parametrize("max_row", long.ROW_CHOICES)
def test_each_row_length_at_4m(rng, max_row):
    """Both row lengths (16K rows where they fit, 8K rows on 99 KB parts) against float64."""
    n = 1 << 22
    conv = long.LongConv(n, "float16", pregate=True, postgate=True, max_row=max_row)
    assert conv.n2 == min(max_row, n // 256)
    u, pre, post = (rng.standard_normal((1, 2, n)).astype(np.float16) for _ in range(3))
    k = rng.standard_normal((2, 5000)).astype(np.float32)
    kf = conv.filter_spectrum(cp.asarray(k))
    y = cp.full((1, 2, n), np.nan, dtype=np.float16)
    g = {"pregate": cp.asarray(pre), "postgate": cp.asarray(post)}
    conv(cp.asarray(u), kf, y, L=n, out_offset=0, Lout=n, **g)
    x = u.astype(np.float64) * pre.astype(np.float64)
    want = _ref(x, k.astype(np.float64), "circular") * post.astype(np.float64)
    assert rel_err(y.get(), want) <= TOL["float16"]


# ------------------------------------------------------------------------------------------------
# Hardening on the long route (issue #7's checks for this family)
# ------------------------------------------------------------------------------------------------
def test_nan_propagates_to_its_pair_only(rng):
    """A NaN in one sequence shows in that sequence's output (and at most its packed partner,
    b xor 1 of the same channel); no crash, no silent zeros elsewhere."""
    n = 1 << 17
    u = rng.standard_normal((4, 2, n)).astype(np.float16)
    u[1, 0, 1000] = np.nan
    k = rng.standard_normal((2, 300)).astype(np.float32)
    y = cufftconv.fftconv(cp.asarray(u), cp.asarray(k)).get()
    bad = np.isnan(y.astype(np.float32)).any(axis=-1)
    assert bad[1, 0], "the NaN vanished"
    allowed = np.zeros_like(bad)
    allowed[0:2, 0] = True
    assert not bad[~allowed].any()
    ok = ~bad
    want = _ref(np.nan_to_num(u.astype(np.float64)), k.astype(np.float64), "causal")
    assert rel_err(y[ok], want[ok]) <= TOL["float16"]


def test_inputs_never_written(rng):
    n = 1 << 16
    u = cp.asarray(rng.standard_normal((3, 2, n)).astype(np.float16))
    pre = cp.asarray(rng.standard_normal((3, 2, n)).astype(np.float16))
    post = cp.asarray(rng.standard_normal((3, 2, n)).astype(np.float16))
    k = cp.asarray(rng.standard_normal((2, n)).astype(np.float32))
    before = [a.copy() for a in (u, pre, post, k)]
    cufftconv.fftconv(u, k, mode="circular", pregate=pre, postgate=post)
    for a, b in zip((u, pre, post, k), before):
        assert bool((a.view(cp.uint8) == b.view(cp.uint8)).all()), "an input was written"


def test_threads_first_use(rng):
    """8 threads at once on long configurations nobody compiled yet (bf16 gated, FFT 2**19)."""
    import threading

    n = 1 << 19
    cases = [
        (
            torch.randn(2, 2, n // 2).to(torch.bfloat16).cuda(),
            torch.randn(2, 2, n // 2).to(torch.bfloat16).cuda(),
            torch.from_numpy(rng.standard_normal((2, 64)).astype(np.float32)).cuda(),
        )
        for _ in range(8)
    ]
    out, errors = [None] * 8, []
    barrier = threading.Barrier(8)

    def work(i):
        try:
            u, g, k = cases[i]
            barrier.wait()
            out[i] = cufftconv.fftconv(u, k, pregate=g, postgate=g)
            torch.cuda.current_stream().synchronize()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for (u, g, k), y in zip(cases, out):
        f = [a.double().cpu().numpy() for a in (u, g, k)]
        want = _ref(f[0], f[2], "causal", f[1], f[1])
        assert rel_err(y.float().cpu().numpy(), want) <= TOL["bfloat16"]
