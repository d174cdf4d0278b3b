"""One test per class of bad input: each raises a clear error before any device work."""

import numpy as np
import pytest

import cufftconv
from cufftconv.interop import Operand
from cufftconv.validation import spec_from_operands


def arr(*shape, dtype=np.float32):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def test_bad_mode():
    with pytest.raises(ValueError, match=r"mode: got 'fulll'.*allowed"):
        cufftconv.fftconv(arr(2, 8), arr(8), mode="fulll")


@pytest.mark.parametrize("mode", [None, 3, "Causal"])
def test_bad_mode_types(mode):
    with pytest.raises(ValueError, match="mode"):
        cufftconv.fftconv(arr(2, 8), arr(8), mode=mode)


def test_zero_dim_u():
    with pytest.raises(ValueError, match=r"u: got a 0-d array"):
        cufftconv.fftconv(np.float32(1.0) * np.ones((), np.float32), arr(4))


def test_zero_dim_k():
    with pytest.raises(ValueError, match=r"k: got a 0-d array"):
        cufftconv.fftconv(arr(4), np.ones((), np.float32))


def test_k_more_dims_than_u():
    with pytest.raises(ValueError, match=r"k: got 3 dimensions .*u has 2"):
        cufftconv.fftconv(arr(3, 16), arr(2, 3, 16))


@pytest.mark.parametrize(
    "u_shape,k_shape", [((2, 4, 16), (3, 16)), ((2, 4, 16), (2, 5, 16)), ((4, 16), (3, 16))]
)
def test_shapes_do_not_broadcast(u_shape, k_shape):
    with pytest.raises(ValueError, match=r"k: leading axes .* do not broadcast"):
        cufftconv.fftconv(arr(*u_shape), arr(*k_shape))


def test_circular_filter_too_long():
    with pytest.raises(ValueError, match=r"k: length Lk=20 .*L=16.*circular"):
        cufftconv.fftconv(arr(2, 16), arr(20), mode="circular")


@pytest.mark.parametrize("mode", ["causal", "full", "same", "valid"])
def test_long_filter_allowed_for_linear_modes(mode):
    y = cufftconv.fftconv(arr(2, 16), arr(20), mode=mode)
    assert y.shape[-1] == {"causal": 16, "full": 35, "same": 16, "valid": 5}[mode]


def test_pregate_wrong_shape():
    with pytest.raises(ValueError, match=r"pregate: got shape \(2, 15\).*\(2, 16\)"):
        cufftconv.fftconv(arr(2, 16), arr(16), pregate=arr(2, 15))


def test_postgate_wrong_shape_full_mode():
    # The postgate multiplies the output, which is longer than u in full mode.
    with pytest.raises(ValueError, match=r"postgate: got shape \(2, 16\).*\(2, 31\)"):
        cufftconv.fftconv(arr(2, 16), arr(16), mode="full", postgate=arr(2, 16))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_, np.complex64,
                                   np.complex128])
@pytest.mark.parametrize("which", ["u", "k", "pregate", "postgate"])
def test_bad_dtypes(dtype, which):
    ops = {"u": arr(2, 16), "k": arr(16), "pregate": None, "postgate": None}
    ops[which] = np.ones((2, 16) if which != "k" else (16,), dtype=dtype)
    with pytest.raises(TypeError, match=rf"{which}: dtype .* not supported; allowed: float16"):
        cufftconv.fftconv(ops["u"], ops["k"], pregate=ops["pregate"], postgate=ops["postgate"])


@pytest.mark.parametrize("which,shape", [("u", (2, 0)), ("u", (0, 16)), ("k", (0,)),
                                         ("k", (0, 16))])
def test_empty_arrays(which, shape):
    u, k = arr(2, 16), arr(16)
    if which == "u":
        u = np.ones(shape, np.float32)
    else:
        k = np.ones(shape, np.float32)
    with pytest.raises(ValueError, match=rf"{which}: got an empty array"):
        cufftconv.fftconv(u, k)


@pytest.mark.parametrize("bad", [[1.0, 2.0], 3.0, "abc", object()])
def test_not_an_array(bad):
    with pytest.raises(TypeError, match="u: got"):
        cufftconv.fftconv(bad, arr(4))


def _op(name, shape, device, kind="cupy", dtype="float16"):
    return Operand(name, None, kind if device is not None else "numpy", shape, dtype, device)


def test_arrays_on_different_gpus():
    u = _op("u", (2, 4, 64), 0)
    k = _op("k", (4, 64), 1, dtype="float32")
    with pytest.raises(ValueError, match=r"k: is on cuda:1 but u is on cuda:0"):
        spec_from_operands(u, k, None, None, None, "causal")


def test_gate_on_other_gpu():
    u = _op("u", (2, 4, 64), 1)
    k = _op("k", (4, 64), 1)
    g = _op("pregate", (2, 4, 64), 0)
    with pytest.raises(ValueError, match=r"pregate: is on cuda:0 but u is on cuda:1"):
        spec_from_operands(u, k, g, None, None, "causal")


def test_gpu_and_numpy_mixed():
    u = _op("u", (2, 4, 64), 0)
    k = _op("k", (4, 64), None)
    with pytest.raises(TypeError, match=r"k: is a numpy array on host but u is a cupy array"):
        spec_from_operands(u, k, None, None, None, "causal")


def test_numpy_u_with_gpu_out():
    u = _op("u", (2, 64), None)
    k = _op("k", (64,), None)
    out = _op("out", (2, 64), 0)
    with pytest.raises(TypeError, match=r"out: is a cupy array on cuda:0"):
        spec_from_operands(u, k, None, None, out, "causal")


def test_out_wrong_shape():
    with pytest.raises(ValueError, match=r"out: got shape \(2, 16\).*\(2, 31\)"):
        cufftconv.fftconv(arr(2, 16), arr(16), mode="full", out=arr(2, 16))


def test_out_wrong_dtype():
    with pytest.raises(TypeError, match=r"out: got dtype float64; it must have u's dtype float32"):
        cufftconv.fftconv(arr(2, 16), arr(16), out=arr(2, 16, dtype=np.float64))


def test_out_read_only():
    out = arr(2, 16)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out: the array is read-only"):
        cufftconv.fftconv(arr(2, 16), arr(16), out=out)


def test_errors_leave_out_untouched():
    out = np.full((2, 16), np.nan, np.float32)
    with pytest.raises(ValueError):
        cufftconv.fftconv(arr(2, 16), arr(16), pregate=arr(2, 3), out=out)
    assert np.isnan(out).all()


class TestPlanValidation:
    def test_needs_k_or_shape(self):
        with pytest.raises(ValueError, match="k_shape: give the filter k"):
            cufftconv.FFTConv((2, 16), dtype="float32")

    def test_bad_device(self):
        with pytest.raises((TypeError, ValueError), match="device"):
            cufftconv.FFTConv((2, 16), k_shape=(16,), dtype="float32", device="gpu7")

    def test_bad_gate_flag(self):
        with pytest.raises(TypeError, match="pregate: got 'yes'"):
            cufftconv.FFTConv((2, 16), k_shape=(16,), dtype="float32", device="cpu",
                              pregate="yes")

    def test_bad_plan_dtype(self):
        with pytest.raises(TypeError, match="u: dtype int8"):
            cufftconv.FFTConv((2, 16), k_shape=(16,), dtype="int8", device="cpu")

    def test_call_shape_mismatch(self):
        plan = cufftconv.FFTConv((2, 16), k=arr(16), dtype="float32")
        with pytest.raises(ValueError, match=r"u: got shape \(2, 17\).*plan is for shape \(2, 16\)"):
            plan(arr(2, 17))

    def test_call_dtype_mismatch(self):
        plan = cufftconv.FFTConv((2, 16), k=arr(16), dtype="float32")
        with pytest.raises(ValueError, match=r"u: got shape \(2, 16\), dtype float64"):
            plan(arr(2, 16, dtype=np.float64))

    def test_call_k_twice(self):
        plan = cufftconv.FFTConv((2, 16), k=arr(16), dtype="float32")
        with pytest.raises(ValueError, match="k: this plan already holds a filter"):
            plan(arr(2, 16), arr(16))

    def test_call_missing_k(self):
        plan = cufftconv.FFTConv((2, 16), k_shape=(16,), dtype="float32", device="cpu")
        with pytest.raises(ValueError, match="k: this plan holds no filter"):
            plan(arr(2, 16))

    def test_call_missing_gate(self):
        plan = cufftconv.FFTConv((2, 16), k=arr(16), dtype="float32", postgate=True)
        with pytest.raises(ValueError, match="postgate: this plan was made with postgate=True"):
            plan(arr(2, 16))

    def test_call_unplanned_gate(self):
        plan = cufftconv.FFTConv((2, 16), k=arr(16), dtype="float32")
        with pytest.raises(ValueError, match="pregate: this plan was made without pregate"):
            plan(arr(2, 16), pregate=arr(2, 16))
