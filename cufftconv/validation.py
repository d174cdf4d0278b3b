"""Argument checks. Everything here reads metadata only and runs before any device work.

Every error names the argument, what it got and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .interop import Operand

MODES = ("causal", "full", "same", "valid", "circular")
U_DTYPES = ("float16", "bfloat16", "float32", "float64")
FILTER_DTYPES = U_DTYPES  # k and the gates: any real float type
_PRECISION = {"float16": 0, "bfloat16": 0, "float32": 1, "float64": 2}


def check_mode(mode: object) -> str:
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"mode: got {mode!r}; allowed: {', '.join(repr(m) for m in MODES)}")
    return mode


def check_dtype(name: str, dtype: str, allowed: tuple[str, ...] = U_DTYPES) -> str:
    if dtype not in allowed:
        raise TypeError(
            f"{name}: dtype {dtype} is not supported; allowed: {', '.join(allowed)} "
            "(cast integer, bool or complex data to a float type first)"
        )
    return dtype


def output_length(L: int, Lk: int, mode: str) -> int:
    """Length of the output's last axis for ``mode`` (scipy.signal.fftconvolve semantics)."""
    if mode in ("causal", "same", "circular"):
        return L
    if mode == "full":
        return L + Lk - 1
    if mode == "valid":
        return abs(L - Lk) + 1
    raise AssertionError(mode)


def output_offset(L: int, Lk: int, mode: str) -> int:
    """Where the output starts inside the full linear convolution."""
    if mode in ("causal", "full", "circular"):
        return 0
    if mode == "same":
        return (Lk - 1) // 2
    if mode == "valid":
        return min(L, Lk) - 1
    raise AssertionError(mode)


def linear_length(L: int, Lk: int, mode: str) -> int:
    """Smallest FFT size that gives the needed outputs without wrap-around."""
    if mode == "circular":
        return L
    if mode == "causal":
        return L + min(Lk, L) - 1
    return L + Lk - 1


def compute_dtype(*dtypes: str | None) -> str:
    """Precision for the exact (cuFFT / NumPy) paths: never below float32, float64 if any is."""
    ranks = [_PRECISION[d] for d in dtypes if d is not None]
    return "float64" if max(ranks) == 2 else "float32"


@dataclass(frozen=True)
class ConvSpec:
    """A validated convolution signature (no data): what a plan is built for."""

    u_shape: tuple[int, ...]
    k_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    mode: str
    dtype: str
    k_dtype: str
    pregate_dtype: str | None
    postgate_dtype: str | None
    device: int | None  # None: host arrays
    # frequency-sparse: keep frequency f of the size-freq_n FFT iff freq_mask[f % 16]
    freq_mask: tuple[bool, ...] | None = None

    @property
    def freq_n(self) -> int | None:
        """FFT size of a frequency-sparse convolution (None when dense)."""
        if self.freq_mask is None:
            return None
        from .freqmask import fft_size

        return fft_size(self.L, self.Lk, self.mode)

    @property
    def L(self) -> int:
        return self.u_shape[-1]

    @property
    def Lk(self) -> int:
        return self.k_shape[-1]

    @property
    def Lout(self) -> int:
        return self.out_shape[-1]

    @property
    def offset(self) -> int:
        return output_offset(self.L, self.Lk, self.mode)

    @property
    def lead_shape(self) -> tuple[int, ...]:
        return self.out_shape[:-1]

    @property
    def gated(self) -> bool:
        return self.pregate_dtype is not None or self.postgate_dtype is not None


def _check_shape(name: str, shape: tuple[int, ...]) -> None:
    if len(shape) == 0:
        raise ValueError(f"{name}: got a 0-d array; allowed: an array of shape (..., length)")
    if any(s == 0 for s in shape):
        raise ValueError(f"{name}: got an empty array of shape {shape}; every axis must be >= 1")


def build_spec(
    u_shape: tuple[int, ...],
    k_shape: tuple[int, ...],
    *,
    mode: str,
    dtype: str,
    k_dtype: str,
    pregate_dtype: str | None = None,
    postgate_dtype: str | None = None,
    device: int | None = None,
    freq_mask: tuple[bool, ...] | None = None,
) -> ConvSpec:
    """Check shapes, dtypes and mode; return the spec. Raises ValueError / TypeError.

    ``freq_mask``: an already resolved mask (:func:`cufftconv.freqmask.resolve`) or None.
    """
    mode = check_mode(mode)
    u_shape, k_shape = tuple(int(s) for s in u_shape), tuple(int(s) for s in k_shape)
    _check_shape("u", u_shape)
    _check_shape("k", k_shape)
    check_dtype("u", dtype)
    check_dtype("k", k_dtype, FILTER_DTYPES)
    for gname, gdt in (("pregate", pregate_dtype), ("postgate", postgate_dtype)):
        if gdt is not None:
            check_dtype(gname, gdt, FILTER_DTYPES)
    if len(k_shape) > len(u_shape):
        raise ValueError(
            f"k: got {len(k_shape)} dimensions (shape {k_shape}) but u has {len(u_shape)} "
            f"(shape {u_shape}); k must have shape (..., Lk) with at most u's dimensions, "
            "e.g. (H, Lk) for u (B, H, L)"
        )
    try:
        lead = np.broadcast_shapes(u_shape[:-1], k_shape[:-1])
    except ValueError:
        raise ValueError(
            f"k: leading axes {k_shape[:-1]} (from shape {k_shape}) do not broadcast against "
            f"u's leading axes {u_shape[:-1]} (from shape {u_shape}); allowed: k (..., Lk) "
            "whose leading axes broadcast with u's, e.g. (H, Lk) or (1, H, Lk) for u (B, H, L)"
        ) from None
    L, Lk = u_shape[-1], k_shape[-1]
    if mode == "circular" and Lk > L:
        raise ValueError(
            f"k: length Lk={Lk} is longer than u's length L={L}; mode='circular' needs Lk <= L "
            "(use mode='full' or 'causal' for a linear convolution)"
        )
    out_shape = tuple(lead) + (output_length(L, Lk, mode),)
    spec = ConvSpec(
        u_shape,
        k_shape,
        out_shape,
        mode,
        dtype,
        k_dtype,
        pregate_dtype,
        postgate_dtype,
        device,
        None if freq_mask is None else tuple(bool(v) for v in freq_mask),
    )
    if spec.freq_mask is not None:
        from .freqmask import fft_size

        fft_size(L, Lk, mode)  # raises for a circular L that is not a multiple of 16
    return spec


def check_same_place(u: Operand, other: Operand) -> None:
    if (u.device is None) != (other.device is None):
        raise TypeError(
            f"{other.name}: is a {other.kind} array on {other.where} but u is a {u.kind} array on "
            f"{u.where}; pass all arrays on the same device"
        )
    if u.device != other.device:
        raise ValueError(
            f"{other.name}: is on {other.where} but u is on {u.where}; "
            "all arrays must be on the same GPU"
        )


def spec_from_operands(
    u: Operand,
    k: Operand,
    pregate: Operand | None,
    postgate: Operand | None,
    out: Operand | None,
    mode: str,
    freq_mask: tuple[bool, ...] | None = None,
) -> ConvSpec:
    """Validate user operands (shapes, dtypes, devices, gates, out) and return the spec;
    ``freq_mask`` is a resolved frequency mask (:func:`cufftconv.freqmask.resolve`) or None."""
    for op in (k, pregate, postgate, out):
        if op is not None:
            check_same_place(u, op)
    spec = build_spec(
        u.shape,
        k.shape,
        mode=mode,
        dtype=u.dtype,
        k_dtype=k.dtype,
        pregate_dtype=None if pregate is None else pregate.dtype,
        postgate_dtype=None if postgate is None else postgate.dtype,
        device=u.device,
        freq_mask=freq_mask,
    )
    check_gates(spec, pregate, postgate)
    if out is not None:
        check_out(spec, u, out)
    return spec


def check_gates(spec: ConvSpec, pregate: Operand | None, postgate: Operand | None) -> None:
    if pregate is not None and pregate.shape != spec.u_shape:
        raise ValueError(
            f"pregate: got shape {pregate.shape}; it must have u's shape {spec.u_shape}"
        )
    if postgate is not None and postgate.shape != spec.out_shape:
        raise ValueError(
            f"postgate: got shape {postgate.shape}; it must have the output's shape "
            f"{spec.out_shape} (mode={spec.mode!r})"
        )


def check_out(spec: ConvSpec, u: Operand, out: Operand) -> None:
    if out.kind != u.kind:
        raise TypeError(f"out: is a {out.kind} array but u is a {u.kind} array; they must match")
    if out.kind == "jax":
        raise TypeError("out: JAX arrays are immutable; omit out= and use the returned array")
    if out.shape != spec.out_shape:
        raise ValueError(
            f"out: got shape {out.shape}; it must have the output's shape {spec.out_shape} "
            f"(mode={spec.mode!r})"
        )
    if out.dtype != spec.dtype:
        raise TypeError(f"out: got dtype {out.dtype}; it must have u's dtype {spec.dtype}")
