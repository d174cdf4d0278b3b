"""CUDA C++ sources of cufftconv, shipped as package data (``cufftconv.kernels``)."""
