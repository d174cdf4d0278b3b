"""PyTorch integration: autograd, ``nn.Module``, ``torch.compile``, autocast and CUDA graphs.

Import it explicitly (``import cufftconv.torch``); ``import cufftconv`` never imports PyTorch.

* :func:`fftconv`: differentiable ``y = postgate * conv(pregate * u, k)``. Under
  ``torch.compile`` it is the custom operator ``torch.ops.cufftconv.fftconv`` (registered
  here with a fake implementation and an autograd formula, so the compiler keeps it as one
  opaque node; its backward is ``torch.ops.cufftconv.fftconv_bwd``); in eager mode it is
  :class:`FFTConvFunction`, the same computation as a plain ``torch.autograd.Function``
  (the custom operator's eager dispatch costs about 0.3 ms of host time per call, more than
  the whole forward at small sizes).
* :class:`FFTConv1d`: a depthwise long convolution layer holding the filter as a Parameter.

Streams and memory: the work runs on PyTorch's current CUDA stream. While it runs, CuPy
allocates through PyTorch's caching allocator (``torch.empty`` buffers) instead of CuPy's
pool, so temporaries and outputs are stream-ordered PyTorch memory. That is what makes CUDA
graph capture work: captured allocations land in the graph's private pool. Nothing in
forward or backward synchronises with the host.

Autocast: inside ``torch.autocast(device_type, dtype)`` :func:`fftconv` casts ``u`` and the
gates (when they are floating point and not float64) to the autocast dtype, and leaves the
filter ``k`` in its own dtype. The convolution then runs as for those dtypes: fp16/bf16 data
with float32 FFT arithmetic and a float32 filter spectrum (for a float32 ``k``), the output
in the autocast dtype, ``dk`` in k's dtype (float32 for a float32 Parameter).

Limits:

* CUDA graphs: run the op once (forward and backward) before capture, as PyTorch asks for
  any captured code. The first call for a new shape creates a cuFFT plan and compiles CuPy
  kernels, and neither may happen during capture. cuFFT plans are cached by CuPy per
  thread and their work areas are shared by every call with the same shape: do not replay
  a graph concurrently with another call of the same shape on another stream.
* Double backward (``create_graph=True`` through the convolution) is not supported.
* ``torch.compile(dynamic=True)``: shapes are read as Python ints by the real kernel; the
  fake implementation propagates symbolic shapes.
"""

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from . import grad as _grad
from .api import _fast_fftconv
from .api import fftconv as _fftconv
from .device import cupy_or_none
from .validation import check_mode, output_length

__all__ = ["FFTConv1d", "FFTConvFunction", "fftconv", "fftconv_bwd"]


# --------------------------------------------------------------------------- CuPy memory


_held: dict[int, Tensor] = {}


def _torch_malloc(size: int, device: int) -> int:
    # torch.empty: stream-ordered on PyTorch's current stream, and inside CUDA graph capture
    # it comes from the graph's private pool.
    buf = torch.empty(max(int(size), 1), dtype=torch.uint8, device=torch.device("cuda", device))
    ptr = buf.data_ptr()
    _held[ptr] = buf
    return ptr


def _torch_free(ptr: int, device: int, _held: dict[int, Any] = _held) -> None:
    # Bound at definition: CuPy may free its last blocks at interpreter exit, after this
    # module's globals were cleared.
    _held.pop(ptr, None)


_allocator: Any = None


@contextlib.contextmanager
def _torch_memory(t: Tensor) -> Iterator[None]:
    """Make CuPy allocate through PyTorch while working on CUDA tensor ``t``."""
    global _allocator
    cp = cupy_or_none() if t.is_cuda else None
    if cp is None:
        yield
        return
    if _allocator is None:
        _allocator = cp.cuda.memory.PythonFunctionAllocator(_torch_malloc, _torch_free)
    with cp.cuda.using_allocator(_allocator.malloc):
        yield


# --------------------------------------------------------------------------- kernels


def _capturing(t: Tensor) -> bool:
    """Whether PyTorch's current stream is capturing a CUDA graph. The fast paths' workspaces
    come from PyTorch's allocator, but a first call on a new stream may make a cuFFT plan,
    whose work area CuPy allocates: under capture that must come from the graph's pool, so
    such calls take the route under :func:`_torch_memory`."""
    return t.is_cuda and torch.cuda.is_current_stream_capturing()


def _forward(
    u: Tensor, k: Tensor, pregate: Tensor | None, postgate: Tensor | None, mode: str
) -> Tensor:
    u, k = u.detach(), k.detach()
    pre = None if pregate is None else pregate.detach()
    post = None if postgate is None else postgate.detach()
    if not _capturing(u):  # the fast path allocates through PyTorch itself
        y = _fast_fftconv(u, k, pre, post, mode)
        if y is not None:
            return y
    with _torch_memory(u):
        return _fftconv(u, k, mode=mode, pregate=pre, postgate=post)


def _backward(
    dy: Tensor,
    u: Tensor,
    k: Tensor,
    pregate: Tensor | None,
    postgate: Tensor | None,
    mode: str,
    needs: tuple[bool, bool, bool, bool],
) -> tuple[Tensor | None, ...]:
    dy, u, k = dy.detach(), u.detach(), k.detach()
    pre = None if pregate is None else pregate.detach()
    post = None if postgate is None else postgate.detach()
    if not _capturing(u):
        grads = _grad._fast_bwd(dy, u, k, pre, post, mode, needs)
        if grads is not None:
            return grads
    with _torch_memory(u):
        return _grad._fftconv_bwd(dy, u, k, mode=mode, pregate=pre, postgate=post, needs=needs)


def _out_shape(u: Tensor, k: Tensor, mode: str) -> list[Any]:
    lead = torch.broadcast_shapes(u.shape[:-1], k.shape[:-1])
    return [*lead, output_length(u.shape[-1], k.shape[-1], mode)]


@torch.library.custom_op("cufftconv::fftconv", mutates_args=())
def _op_fftconv(
    u: Tensor, k: Tensor, pregate: Tensor | None, postgate: Tensor | None, mode: str
) -> Tensor:
    return _forward(u, k, pregate, postgate, mode)


@_op_fftconv.register_fake
def _(u: Tensor, k: Tensor, pregate: Tensor | None, postgate: Tensor | None, mode: str):
    check_mode(mode)
    return u.new_empty(_out_shape(u, k, mode))


@torch.library.custom_op("cufftconv::fftconv_bwd", mutates_args=())
def _op_fftconv_bwd(
    dy: Tensor,
    u: Tensor,
    k: Tensor,
    pregate: Tensor | None,
    postgate: Tensor | None,
    mode: str,
    needs: list[bool],
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    grads = _backward(dy, u, k, pregate, postgate, mode, tuple(needs))
    # A custom op returns tensors only: an empty one stands for "not computed".
    return tuple(  # type: ignore[return-value]
        g if g is not None else u.new_empty((0,)) for g in grads
    )


@_op_fftconv_bwd.register_fake
def _(dy, u, k, pregate, postgate, mode, needs):
    ops = (u, k, pregate, postgate)
    return tuple(
        op.new_empty(op.shape) if (op is not None and need) else u.new_empty((0,))
        for op, need in zip(ops, needs)
    )


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    u, k, pregate, postgate, mode = inputs
    ctx.mode = mode
    ctx.save_for_backward(u, k, pregate, postgate)


def _needs(ctx: Any) -> tuple[bool, bool, bool, bool]:
    return tuple(bool(n) for n in ctx.needs_input_grad[:4])  # type: ignore[return-value]


def _op_backward(ctx: Any, dy: Tensor) -> tuple[Tensor | None, ...]:
    u, k, pregate, postgate = ctx.saved_tensors
    needs = _needs(ctx)
    grads = torch.ops.cufftconv.fftconv_bwd(dy, u, k, pregate, postgate, ctx.mode, list(needs))
    return (*(g if n else None for g, n in zip(grads, needs)), None)


_op_fftconv.register_autograd(_op_backward, setup_context=_setup_context)


class FFTConvFunction(torch.autograd.Function):
    """``FFTConvFunction.apply(u, k, pregate, postgate, mode)``: the convolution as a plain
    autograd Function (eager only; :func:`fftconv` also works under ``torch.compile``)."""

    # forward(ctx, ...) rather than a separate setup_context: with setup_context, apply()
    # binds the arguments through inspect.signature on every call (about 45 us).
    @staticmethod
    def forward(
        ctx: Any, u: Tensor, k: Tensor, pregate: Tensor | None, postgate: Tensor | None,
        mode: str,
    ) -> Tensor:
        _setup_context(ctx, (u, k, pregate, postgate, mode), None)  # type: ignore[arg-type]
        return _forward(u, k, pregate, postgate, mode)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dy: Tensor) -> tuple[Tensor | None, ...]:
        u, k, pregate, postgate = ctx.saved_tensors
        return (*_backward(dy, u, k, pregate, postgate, ctx.mode, _needs(ctx)), None)


# --------------------------------------------------------------------------- public API


def _check_tensor(name: str, x: Any, optional: bool = False) -> None:
    if x is None and optional:
        return
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: got {type(x).__name__}; cufftconv.torch takes torch.Tensor")


def _autocast(x: Tensor | None) -> Tensor | None:
    """Autocast's rule for a floating-point activation: to the autocast dtype unless float64."""
    if x is None or not x.is_floating_point() or x.dtype == torch.float64:
        return x
    dev = x.device.type
    if dev in ("cuda", "cpu") and torch.is_autocast_enabled(dev):
        dt = torch.get_autocast_dtype(dev)
        if x.dtype != dt:
            return x.to(dt)
    return x


def fftconv(
    u: Tensor,
    k: Tensor,
    *,
    mode: str = "causal",
    pregate: Tensor | None = None,
    postgate: Tensor | None = None,
) -> Tensor:
    """Differentiable ``y = postgate * conv(pregate * u, k)`` on PyTorch tensors.

    Same contract as :func:`cufftconv.fftconv` (u ``(..., L)``, e.g. ``(B, H, L)``; k
    ``(..., Lk)`` broadcasting against u's leading axes, e.g. ``(H, Lk)``; mode "causal",
    "full", "same", "valid" or "circular"; gates of u's and the output's shape; output in
    u's dtype, fp16/bf16 accumulated in float32). Gradients flow to u, k and the gates; dk
    comes in k's dtype. Runs on PyTorch's current stream, works under ``torch.compile``
    (one opaque custom op), ``torch.autocast`` (u and gates cast to the autocast dtype, k
    kept) and CUDA graphs (after a warm-up call; see the module notes).

    Example:
        >>> import torch
        >>> from cufftconv.torch import fftconv
        >>> u = torch.randn(2, 4, 100, requires_grad=True)
        >>> k = torch.randn(4, 100, requires_grad=True)
        >>> fftconv(u, k).sum().backward()
        >>> u.grad.shape, k.grad.shape
        (torch.Size([2, 4, 100]), torch.Size([4, 100]))
    """
    check_mode(mode)
    _check_tensor("u", u)
    _check_tensor("k", k)
    _check_tensor("pregate", pregate, optional=True)
    _check_tensor("postgate", postgate, optional=True)
    dev = u.device.type
    if dev in ("cuda", "cpu") and torch.is_autocast_enabled(dev):  # (one check, not three)
        args = (_autocast(u), k, _autocast(pregate), _autocast(postgate), mode)
    else:
        args = (u, k, pregate, postgate, mode)
    if torch.compiler.is_compiling():
        return _op_fftconv(*args)
    return FFTConvFunction.apply(*args)


def fftconv_bwd(
    dy: Tensor,
    u: Tensor,
    k: Tensor,
    *,
    mode: str = "causal",
    pregate: Tensor | None = None,
    postgate: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """:func:`cufftconv.fftconv_bwd` on PyTorch's current stream with PyTorch-allocated memory.

    Returns ``(du, dk, dpregate, dpostgate)`` (gate gradients None without gates).

    Example:
        >>> import torch
        >>> from cufftconv.torch import fftconv_bwd
        >>> u, k = torch.randn(2, 4, 100), torch.randn(4, 30)
        >>> du, dk, _, _ = fftconv_bwd(torch.ones(2, 4, 100), u, k)
        >>> dk.shape
        torch.Size([4, 30])
    """
    check_mode(mode)
    return _backward(dy, u, k, pregate, postgate, mode, _grad.ALL)  # type: ignore[return-value]


class FFTConv1d(nn.Module):
    """Depthwise long convolution ``y = postgate * conv(pregate * u, k) (+ D * pregate * u *
    postgate)`` with one learned filter per channel (a Hyena / H3 style long conv).

    Args:
        channels: H, the channel count; inputs are ``(..., H, L)``, e.g. ``(B, H, L)``.
        kernel_size: Lk, the filter length (any ``Lk >= 1``; typically Lk = L).
        mode: "causal" (default), "full", "same", "valid" or "circular".
        skip: add a learned per-channel skip term ``D * u`` (needs an output as long as
            the input: modes "causal", "same" and "circular").
        init_std: the filter starts as ``init_std * N(0, 1)`` (default 0.02: small random
            taps, as the H3/Hyena long-conv baselines do), the skip as ``N(0, 1)``.
        device, dtype: for the Parameters (default float32 on the CPU). Keep them float32
            and use ``torch.autocast`` for 16-bit activations.

    Shapes: ``forward(u, *, pregate=None, postgate=None)`` with u ``(..., H, L)`` returns
    ``(..., H, Lout)`` in u's dtype (the autocast dtype under autocast).

    Example:
        >>> import torch
        >>> from cufftconv.torch import FFTConv1d
        >>> conv = FFTConv1d(8, 256)
        >>> conv(torch.randn(2, 8, 256)).shape
        torch.Size([2, 8, 256])
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        *,
        mode: str = "causal",
        skip: bool = False,
        init_std: float = 0.02,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, val in (("channels", channels), ("kernel_size", kernel_size)):
            if not isinstance(val, int) or isinstance(val, bool) or val < 1:
                raise ValueError(f"{name}: got {val!r}; allowed: an int >= 1")
        self.mode = check_mode(mode)
        if skip and mode not in ("causal", "same", "circular"):
            raise ValueError(
                f"skip: needs an output as long as the input; mode={mode!r} changes the length "
                "(use 'causal', 'same' or 'circular')"
            )
        if not isinstance(init_std, (int, float)) or init_std < 0:
            raise ValueError(f"init_std: got {init_std!r}; allowed: a float >= 0")
        self.channels, self.kernel_size, self.init_std = channels, kernel_size, float(init_std)
        kw = {"device": device, "dtype": dtype}
        self.kernel = nn.Parameter(torch.empty(channels, kernel_size, **kw))
        self.D = nn.Parameter(torch.empty(channels, **kw)) if skip else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.kernel.normal_(0.0, self.init_std)
            if self.D is not None:
                self.D.normal_()

    def forward(
        self, u: Tensor, *, pregate: Tensor | None = None, postgate: Tensor | None = None
    ) -> Tensor:
        if u.dim() < 2 or u.shape[-2] != self.channels:
            raise ValueError(
                f"u: got shape {tuple(u.shape)}; FFTConv1d({self.channels}, ...) takes "
                f"(..., {self.channels}, L)"
            )
        y = fftconv(u, self.kernel, mode=self.mode, pregate=pregate, postgate=postgate)
        if self.D is not None:
            v = u if pregate is None else u * pregate
            s = v * self.D[:, None]
            if postgate is not None:
                s = s * postgate
            y = y + s.to(y.dtype)
        return y

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, {self.kernel_size}, mode={self.mode!r}, "
            f"skip={self.D is not None}, init_std={self.init_std}"
        )
