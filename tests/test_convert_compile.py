"""CI (no GPU): the element-wise conversion functions of the cuFFT path compile through NVRTC.

CuPy's ElementwiseKernel compiles them at first use on a GPU; here every storage/compute pair
the cuFFT path instantiates (bf16 bits, fp32, fp64) is compiled ahead for sm_80 and sm_90.
fp16 uses CuPy's own float16 type and is covered by the GPU tests.
"""

import pytest

from cufftconv.sources import read_source

_WRAPPER = """
template <typename X, typename C, typename O>
__global__ void probe(const X* x, const X* g, C* c, O* o) {
  const int i = threadIdx.x;
  c[i] = cfc_widen<C>(x[i]) * cfc_widen<C>(g[i]);
  o[i] = cfc_narrow<O>(c[i] * cfc_widen<C>(g[i]));
}
"""

_NAMES = [
    f"probe<{x}, {c}, {o}>"
    for x, o in (("unsigned short", "unsigned short"), ("float", "float"), ("double", "double"))
    for c in ("float", "double")
]


@pytest.mark.parametrize("arch", ["compute_80", "compute_90"])
def test_convert_compiles(arch):
    from cupy.cuda import nvrtc  # a missing NVRTC fails the test, it does not skip

    src = read_source("convert.cuh") + _WRAPPER
    prog = nvrtc.createProgram(src, "convert_probe.cu", [], [])
    try:
        for name in _NAMES:
            nvrtc.addNameExpression(prog, name)
        try:
            nvrtc.compileProgram(prog, [f"--gpu-architecture={arch}", "--std=c++17"])
        except Exception as exc:
            raise AssertionError(nvrtc.getProgramLog(prog)) from exc
        assert len(nvrtc.getPTX(prog)) > 0
        for name in _NAMES:
            assert nvrtc.getLoweredName(prog, name)
    finally:
        nvrtc.destroyProgram(prog)
