"""``FFTConv``: a convolution plan for repeated calls with the same shapes."""

from __future__ import annotations

import contextlib
from typing import Any

from . import dispatch, freqmask
from .device import DeviceInfo
from .interop import (
    Operand,
    describe,
    execution_context,
    to_device,
    to_host,
    torch_empty,
    wrap,
    writable_view,
)
from .validation import ConvSpec, build_spec, check_gates, check_out


class FFTConv:
    """A plan for ``y = postgate * conv(pregate * u, k)`` with fixed shapes, dtypes and mode.

    Planning validates the signature once, picks the execution path from the dispatch
    table (``plan.route``), and builds what that path needs (compiled kernels, DFT and
    twiddle tables, FFT plans). If the filter ``k`` is given at planning, its spectrum is
    computed once and reused by every call. Compared with calling :func:`cufftconv.fftconv`
    each time, a call skips planning and the re-validation of what the plan fixed; it only
    checks that the operands match the planned shapes, dtype and device.

    Args:
        u_shape: shape ``(..., L)`` of the input, e.g. ``(B, H, L)``.
        k: the filter ``(..., Lk)`` (any real float dtype), fixed for the plan's life. Or
            give ``k_shape`` instead and pass ``k`` at each call.
        k_shape: shape of the filter when ``k`` is passed per call.
        dtype: u's dtype: "float16", "bfloat16", "float32" or "float64".
        k_dtype: the filter's dtype when ``k`` is passed per call (default "float32").
        mode: "causal" (default), "full", "same", "valid" or "circular".
        pregate, postgate: whether calls pass gates (of dtype ``dtype``; pregate has u's
            shape, postgate the output's).
        device: CUDA device index of the operands, "cpu" for host arrays (NumPy, CPU
            tensors), or None for the current CUDA device (host when there is no GPU).
        path: force one row of the dispatch table (e.g. "cufft" for the exact path, to
            compare); None (default) lets the table choose. ValueError if the row declines.
        freq_keep: frequency-sparse plan keeping about this fraction of the spectrum (a
            float in (0, 1]): the first ``m = round(16 * freq_keep)`` residue classes of
            ``cufftconv.freqmask.KEEP_ORDER`` (m at least 1, odd m > 1 rounded up); 1.0 is
            dense. E.g. 0.25 keeps ``f % 4 == 0`` (classes {0, 4, 8, 12}), 0.5 keeps
            ``f % 2 == 0``.
        freq_mask: frequency-sparse plan with explicit classes: 16 booleans, keep frequency
            f iff ``freq_mask[f % 16]`` (Hermitian-symmetric, at least one True; all True is
            dense). At most one of freq_keep and freq_mask.

    Frequency-sparse plans compute ``y = postgate * crop(IFFT_N(FFT_N(pregate * u) *
    FFT_N(k) * M))``, ``M[f] = mask[f % 16]``, with the FFT size ``N =
    cufftconv.freqmask.fft_size(L, Lk, mode)`` (``plan.spec.freq_n``: the power of two
    ``>= L + Lk - 1``, or ``>= L + min(Lk, L) - 1`` for causal, at least 16; ``N = L`` for
    circular, which needs ``L % 16 == 0``) and the dense mode's output window; see
    :func:`cufftconv.fftconv`. The mask is applied to the filter spectrum at planning (or
    per call when k is passed per call).

    Example:
        >>> import numpy as np, cufftconv
        >>> u = np.random.randn(2, 3, 100).astype(np.float32)
        >>> k = np.random.randn(3, 100).astype(np.float32)
        >>> with cufftconv.FFTConv(u.shape, k=k, dtype="float32") as plan:
        ...     y = plan(u)
        >>> y.shape
        (2, 3, 100)
        >>> sparse = cufftconv.FFTConv(u.shape, k=k, dtype="float32", freq_keep=0.5)
        >>> sparse.spec.freq_n, sum(sparse.spec.freq_mask)  # N = 256, 8 of 16 classes
        (256, 8)
    """

    def __init__(
        self,
        u_shape: tuple[int, ...],
        *,
        k: Any = None,
        k_shape: tuple[int, ...] | None = None,
        dtype: str = "float16",
        k_dtype: str | None = None,
        mode: str = "causal",
        pregate: bool = False,
        postgate: bool = False,
        device: int | str | None = None,
        path: str | None = None,
        freq_keep: float | None = None,
        freq_mask: Any = None,
    ) -> None:
        mask = freqmask.resolve(freq_keep, freq_mask)
        kop = None
        if k is not None:
            kop = describe("k", k)
            if k_shape is not None and tuple(k_shape) != kop.shape:
                raise ValueError(f"k_shape: got {tuple(k_shape)} but k has shape {kop.shape}")
            if k_dtype is not None and k_dtype != kop.dtype:
                raise TypeError(f"k_dtype: got {k_dtype} but k has dtype {kop.dtype}")
            k_shape, k_dtype = kop.shape, kop.dtype
        elif k_shape is None:
            raise ValueError("k_shape: give the filter k or its shape k_shape")
        dev = _resolve_device(device, kop)
        for name, flag in (("pregate", pregate), ("postgate", postgate)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name}: got {flag!r}; allowed: True or False")
        self._spec = build_spec(
            tuple(u_shape),
            tuple(k_shape),
            mode=mode,
            dtype=dtype,
            k_dtype=k_dtype or "float32",
            pregate_dtype=dtype if pregate else None,
            postgate_dtype=dtype if postgate else None,
            device=dev,
            freq_mask=mask,
        )
        self._setup(path)
        self._kspec = None
        self._fast = None
        if kop is not None:
            with self._context(kop):
                self._kspec = self._executor.spectrum(self._import(kop))
                if self._route.name == "fused-monarch":
                    from .backends.fused import fast_call

                    self._fast = fast_call(self._executor, self._kspec, self._dev.index)

    @classmethod
    def _from_spec(cls, spec: ConvSpec) -> FFTConv:
        plan = cls.__new__(cls)
        plan._spec = spec
        plan._setup()
        plan._kspec = None
        plan._fast = None
        return plan

    def _setup(self, path: str | None = None) -> None:
        self._dev: DeviceInfo | None = dispatch.target_device(self._spec)
        self._route = dispatch.choose(self._spec, self._dev, path=path)
        with self._context(None):
            self._executor = self._route.build(self._spec, self._dev)

    def _fast_with_k(self) -> Any:
        """The per-call fast path of :func:`cufftconv.fftconv` for this (k-less) plan's spec,
        ``fast(u, k, pregate, postgate) -> y or None``, or None where its route has none."""
        if self._route.name != "fused-monarch" or self._dev is None:
            return None
        from .backends.fused import fast_call_k

        with self._context(None):
            return fast_call_k(self._executor, self._dev.index)

    @property
    def route(self) -> str:
        """Name of the dispatch-table row this plan runs (e.g. "cufft")."""
        return self._route.name

    @property
    def spec(self) -> ConvSpec:
        return self._spec

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self._spec.out_shape

    def __call__(
        self,
        u: Any,
        k: Any = None,
        *,
        pregate: Any = None,
        postgate: Any = None,
        out: Any = None,
    ) -> Any:
        """Run the plan. Operands must match the planned shapes, dtypes and device."""
        if self._fast is not None and k is None:
            try:
                y = self._fast(u, pregate, postgate, out)
            except Exception as err:
                if _is_out_of_memory(err):
                    raise self._memory_error() from err
                raise
            if y is not None:
                return y
        s = self._spec
        uop = describe("u", u)
        if uop.shape != s.u_shape or uop.dtype != s.dtype or uop.device != s.device:
            raise ValueError(
                f"u: got shape {uop.shape}, dtype {uop.dtype} on {uop.where}; this plan is for "
                f"shape {s.u_shape}, dtype {s.dtype} on {_where(s.device)}"
            )
        kop = None
        if k is None and self._kspec is None:
            raise ValueError("k: this plan holds no filter; pass k")
        if k is not None:
            if self._kspec is not None:
                raise ValueError("k: this plan already holds a filter; make a new plan to change it")
            kop = describe("k", k)
            if kop.shape != s.k_shape or kop.dtype != s.k_dtype or kop.device != s.device:
                raise ValueError(
                    f"k: got shape {kop.shape}, dtype {kop.dtype} on {kop.where}; this plan is "
                    f"for shape {s.k_shape}, dtype {s.k_dtype} on {_where(s.device)}"
                )
        pre = _gate("pregate", pregate, s.pregate_dtype, uop)
        post = _gate("postgate", postgate, s.postgate_dtype, uop)
        check_gates(s, pre, post)
        oop = None
        if out is not None:
            oop = describe("out", out)
            if oop.device != s.device:
                raise ValueError(f"out: is on {oop.where} but u is on {uop.where}")
            check_out(s, uop, oop)
        return self._execute(uop, kop, pre, post, oop)

    execute = __call__

    def _execute(
        self,
        uop: Operand,
        kop: Operand | None,
        pre: Operand | None,
        post: Operand | None,
        oop: Operand | None,
    ) -> Any:
        try:
            return self._execute_on_device(uop, kop, pre, post, oop)
        except Exception as err:
            if _is_out_of_memory(err):
                raise self._memory_error() from err
            raise

    def _memory_error(self) -> MemoryError:
        s = self._spec
        return MemoryError(
            f"cufftconv: not enough {'GPU' if self._dev else 'host'} memory for "
            f"u of shape {s.u_shape} ({s.dtype}), k {s.k_shape}, mode={s.mode!r} on the "
            f"{self.route!r} path (output {s.out_shape}); split the batch or free memory"
        )

    def _execute_on_device(
        self,
        uop: Operand,
        kop: Operand | None,
        pre: Operand | None,
        post: Operand | None,
        oop: Operand | None,
    ) -> Any:
        ex = self._executor
        with self._context(uop):
            kspec = self._kspec if kop is None else ex.spectrum(self._import(kop))
            result = None
            if oop is not None:
                target = writable_view(oop)
            elif uop.kind == "torch" and uop.device is not None:
                # Let PyTorch's caching allocator own the output: no DLPack on the way back.
                result, target = torch_empty(self._spec.out_shape, uop)
            else:
                target = None
            y = ex.run(
                self._import(uop),
                kspec,
                None if pre is None else self._import(pre),
                None if post is None else self._import(post),
                out=target if _module_of(target) is ex.xp else None,
            )
            if result is not None:
                return result
            if oop is None:
                return wrap(y, uop, self._spec.dtype)
            if y is not target:  # host arrays computed on the GPU
                target[...] = ex.xp.asnumpy(y)
            return oop.obj

    def _import(self, op: Operand) -> Any:
        """Bring an operand to where the executor computes (GPU or host)."""
        if self._executor.xp.__name__ == "numpy":
            return to_host(op)
        return to_device(op)

    def _context(self, op: Operand | None) -> Any:
        if self._dev is None:
            return contextlib.nullcontext()
        return execution_context(op if op is not None else _NO_OPERAND, self._dev.index)

    def free(self) -> None:
        """Release the plan's filter spectrum and executor."""
        self._kspec = None
        self._fast = None
        self._executor = None

    def __enter__(self) -> FFTConv:  # noqa: PYI034 - Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.free()

    def __repr__(self) -> str:
        s = self._spec
        sparse = ""
        if s.freq_mask is not None:
            kept = tuple(r for r, keep in enumerate(s.freq_mask) if keep)
            sparse = f", freq_classes={kept}, freq_n={s.freq_n}"
        return (
            f"FFTConv(u_shape={s.u_shape}, k_shape={s.k_shape}, dtype={s.dtype!r}, "
            f"mode={s.mode!r}, gated={s.gated}{sparse}, route={self.route!r})"
        )


_NO_OPERAND = Operand("none", None, "cupy", (), "float32", None)


def _is_out_of_memory(err: BaseException) -> bool:
    """CuPy's OutOfMemoryError is a MemoryError; PyTorch's is a RuntimeError of its own."""
    return isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError"


def _where(device: int | None) -> str:
    return "host" if device is None else f"cuda:{device}"


def _module_of(arr: Any) -> Any:
    import numpy as np

    if arr is None:
        return None
    if isinstance(arr, np.ndarray):
        return np
    from .device import require_cupy

    return require_cupy()


def _gate(name: str, gate: Any, planned: str | None, uop: Operand) -> Operand | None:
    if gate is None:
        if planned is not None:
            raise ValueError(f"{name}: this plan was made with {name}=True; pass {name}")
        return None
    if planned is None:
        raise ValueError(f"{name}: this plan was made without {name}; make a plan with {name}=True")
    op = describe(name, gate)
    if op.dtype != planned or op.device != uop.device:
        raise ValueError(
            f"{name}: got dtype {op.dtype} on {op.where}; this plan expects dtype {planned} "
            f"on {uop.where}"
        )
    return op


def _resolve_device(device: int | str | None, kop: Operand | None) -> int | None:
    from .device import device_count, gpu_available, require_cupy

    if device == "cpu":
        dev = None
    elif device is None:
        if kop is not None:
            return kop.device
        dev = int(require_cupy().cuda.Device().id) if gpu_available() else None
    elif isinstance(device, int) and not isinstance(device, bool):
        if not 0 <= device < device_count():
            raise ValueError(
                f"device: got {device}; this machine has {device_count()} CUDA device(s)"
            )
        dev = device
    else:
        raise TypeError(f"device: got {device!r}; allowed: None, 'cpu' or a CUDA device index")
    if kop is not None and kop.device != dev:
        raise ValueError(f"k: is on {kop.where} but device={device!r}")
    return dev

