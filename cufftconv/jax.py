"""JAX integration: a differentiable :func:`fftconv` (``jax.custom_vjp``).

Import it explicitly (``import cufftconv.jax``); ``import cufftconv`` never imports JAX.

Two ways in, chosen per call:

* Eager (concrete arrays, also inside eager ``jax.grad`` / ``jax.value_and_grad``): the
  arrays go to :func:`cufftconv.fftconv` / :func:`cufftconv.fftconv_bwd` as they are: GPU
  arrays zero-copy through DLPack (computed by CuPy on the GPU, the result handed back after
  a stream synchronisation, since JAX exposes no stream to order against); CPU arrays on the
  CPU path (or the GPU, when there is one).
* Traced (under ``jax.jit``, ``jax.vmap``, ``lax.scan``, ...): through
  ``jax.pure_callback``. Correct anywhere, but the data makes a round trip through host
  memory on every call (and ``vmap`` loops over the batch, ``vmap_method="sequential"``), so
  on a GPU it is much slower than the eager path. Keep the convolution outside ``jit`` for
  speed until an XLA FFI target exists.

JAX preallocates most of the GPU's memory by default, which leaves little to CuPy: set
``XLA_PYTHON_CLIENT_PREALLOCATE=false`` (or ``XLA_PYTHON_CLIENT_MEM_FRACTION``) for large
problems.
"""

import functools
from typing import Any

import jax
import numpy as np

from . import grad as _grad
from .api import fftconv as _fftconv
from .interop import Operand
from .validation import ConvSpec, check_mode, spec_from_operands

__all__ = ["fftconv"]


def _traced(*xs: Any) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in xs)


def _op(name: str, x: Any) -> Operand | None:
    if x is None:
        return None
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{name}: got {type(x).__name__}; cufftconv.jax takes JAX arrays")
    return Operand(name, x, "jax", tuple(x.shape), str(np.dtype(x.dtype)), None)


def _spec(u: Any, k: Any, pregate: Any, postgate: Any, mode: str) -> ConvSpec:
    """Validate shapes and dtypes (works on tracers: metadata only)."""
    return spec_from_operands(
        _op("u", u), _op("k", k), _op("pregate", pregate), _op("postgate", postgate), None, mode
    )


def _host(x: Any) -> Any:
    return None if x is None else np.asarray(x)


def _callback(fn: Any, out: Any, *args: Any) -> Any:
    """``fn(*args)`` through ``jax.pure_callback``; None arguments stay None."""
    present = [i for i, a in enumerate(args) if a is not None]

    def cb(*arrays: Any) -> Any:
        full: list[Any] = [None] * len(args)
        for i, a in zip(present, arrays):
            full[i] = np.asarray(a)
        res = fn(*full)
        if isinstance(res, tuple):
            return tuple(np.asarray(r) for r in res if r is not None)
        return np.asarray(res)

    return jax.pure_callback(cb, out, *[args[i] for i in present], vmap_method="sequential")


def _primal(u: Any, k: Any, pregate: Any, postgate: Any, mode: str) -> Any:
    def run(u: Any, k: Any, pre: Any, post: Any) -> Any:
        return _fftconv(u, k, mode=mode, pregate=pre, postgate=post)

    if not _traced(u, k, pregate, postgate):
        return run(u, k, pregate, postgate)
    spec = _spec(u, k, pregate, postgate, mode)
    out = jax.ShapeDtypeStruct(spec.out_shape, u.dtype)
    return _callback(run, out, u, k, pregate, postgate)


def _gradients(dy: Any, u: Any, k: Any, pregate: Any, postgate: Any, mode: str) -> tuple:
    def run(dy: Any, u: Any, k: Any, pre: Any, post: Any) -> Any:
        return _grad.fftconv_bwd(dy, u, k, mode=mode, pregate=pre, postgate=post)

    if not _traced(dy, u, k, pregate, postgate):
        return run(dy, u, k, pregate, postgate)
    ops = (u, k, pregate, postgate)
    outs = tuple(jax.ShapeDtypeStruct(a.shape, a.dtype) for a in ops if a is not None)
    res = iter(_callback(run, outs, dy, u, k, pregate, postgate))
    return tuple(None if a is None else next(res) for a in ops)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _conv(u: Any, k: Any, pregate: Any, postgate: Any, mode: str) -> Any:
    return _primal(u, k, pregate, postgate, mode)


def _conv_fwd(u: Any, k: Any, pregate: Any, postgate: Any, mode: str) -> tuple:
    return _primal(u, k, pregate, postgate, mode), (u, k, pregate, postgate)


def _conv_bwd(mode: str, res: tuple, dy: Any) -> tuple:
    u, k, pregate, postgate = res
    return _gradients(dy, u, k, pregate, postgate, mode)


_conv.defvjp(_conv_fwd, _conv_bwd)


def fftconv(
    u: Any,
    k: Any,
    *,
    mode: str = "causal",
    pregate: Any = None,
    postgate: Any = None,
) -> Any:
    """Differentiable ``y = postgate * conv(pregate * u, k)`` on JAX arrays.

    Same contract as :func:`cufftconv.fftconv`: u ``(..., L)`` (e.g. ``(B, H, L)``) in
    float16, bfloat16, float32 or float64; k ``(..., Lk)`` broadcasting against u's leading
    axes (e.g. ``(H, Lk)``), any real float dtype; mode "causal", "full", "same", "valid" or
    "circular"; gates of u's and the output's shape. Returns u's dtype on u's device.
    Gradients (``jax.grad``, ``jax.vjp``) come from :func:`cufftconv.fftconv_bwd`: each in
    its operand's dtype, dk summed over the axes where k was broadcast.

    Eager calls run zero-copy on the GPU; under ``jax.jit`` / ``vmap`` it goes through
    ``jax.pure_callback`` (correct, but through host memory): see the module notes.
    Shapes, dtypes and mode are checked before any work, also when traced.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from cufftconv.jax import fftconv
        >>> u, k = jnp.ones((2, 4, 100)), jnp.ones((4, 100)) / 100
        >>> dk = jax.grad(lambda k: fftconv(u, k).sum())(k)
        >>> dk.shape
        (4, 100)
    """
    check_mode(mode)
    _spec(u, k, pregate, postgate, mode)
    return _conv(u, k, pregate, postgate, mode)
