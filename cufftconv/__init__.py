"""cufftconv: long FFT convolutions on NVIDIA GPUs with the FlashFFTConv method.

``fftconv(u, k, mode=...)`` for single calls, ``FFTConv`` plans for repeated ones. Works on
NumPy, CuPy, PyTorch and JAX arrays and returns the caller's kind of array.
"""

from . import dispatch, freqmask, reference
from .api import clear_plan_cache, fftconv
from .device import gpu_available
from .errors import KernelLaunchError
from .grad import fftconv_bwd
from .plan import FFTConv
from .validation import MODES

__version__ = "0.1.0"

__all__ = [
    "MODES",
    "FFTConv",
    "KernelLaunchError",
    "clear_plan_cache",
    "dispatch",
    "fftconv",
    "fftconv_bwd",
    "freqmask",
    "gpu_available",
    "reference",
]
