"""Kernel launches with pre-packed arguments, for the per-call fast paths.

CuPy's ``RawKernel.__call__`` converts every argument on every call (about 10 us for the
backward kernel's 31 arguments). :class:`PackedLaunch` fixes the argument types once, as a
``struct`` format in the C layout the kernel's parameter list has, packs each call's values
into a per-thread buffer and hands it to ``cuLaunchKernel`` whole
(``CU_LAUNCH_PARAM_BUFFER_POINTER``). The driver copies the buffer during the call, so the
buffer is free again when the call returns. Buffers are per thread id (a threading.local
would be emptied for every backward call that PyTorch's autograd threads make).
"""

from __future__ import annotations

import ctypes
import struct
import threading
from typing import Any

# cuLaunchKernel's `extra` markers (cuda.h)
_PARAM_END, _PARAM_BUFFER_POINTER, _PARAM_BUFFER_SIZE = 0, 1, 2


class PackedLaunch:
    """``launch(stream_ptr, *args)``: one kernel (a CuPy ``RawKernel`` or its ``Function``),
    grid, block and shared memory, with
    arguments of the types in ``fmt`` (``struct`` codes in native alignment: ``Q`` a pointer
    as an int, ``q`` long long, ``i`` int, ``f`` float), in the kernel's parameter order.

    Errors come from the driver as CuPy's ``CUDADriverError``.
    """

    __slots__ = ("_launch", "_tls", "block", "fmt", "fptr", "grid", "size", "smem")

    def __init__(self, kern: Any, grid: tuple[int, ...], block: tuple[int, ...], smem: int,
                 fmt: str) -> None:
        from cupy_backends.cuda.api import driver

        self.fptr = int(getattr(kern, "kernel", kern).ptr)  # a RawKernel or its Function
        self.grid = tuple(grid) + (1,) * (3 - len(grid))
        self.block = tuple(block) + (1,) * (3 - len(block))
        self.smem = int(smem)
        self.fmt = struct.Struct("@" + fmt)
        self.size = self.fmt.size
        self._tls: dict[int, tuple] = {}  # thread id -> (buffer, extra address, ...)
        self._launch = driver.launchKernel

    def _buffers(self) -> tuple[Any, int]:
        """This thread's argument buffer and the address of its `extra` array."""
        buf = ctypes.create_string_buffer(max(self.size, 8))
        size = ctypes.c_size_t(self.size)
        extra = (ctypes.c_void_p * 5)(
            _PARAM_BUFFER_POINTER, ctypes.addressof(buf), _PARAM_BUFFER_SIZE,
            ctypes.addressof(size), _PARAM_END,
        )
        state = (buf, ctypes.addressof(extra), size, extra)  # keep all of them alive
        self._tls[threading.get_ident()] = state
        return buf, state[1]

    def _pack(self, args: tuple) -> int:
        """``args`` packed into this thread's buffer; the address of its `extra` array."""
        state = self._tls.get(threading.get_ident())
        buf, extra = (state[0], state[1]) if state is not None else self._buffers()
        self.fmt.pack_into(buf, 0, *args)
        return extra

    def __call__(self, stream_ptr: int, *args: Any) -> None:
        extra = self._pack(args)
        g, b = self.grid, self.block
        self._launch(self.fptr, g[0], g[1], g[2], b[0], b[1], b[2], self.smem, stream_ptr, 0,
                     extra)

    def at(self, grid: tuple[int, ...], block: tuple[int, ...], smem: int, stream_ptr: int,
           *args: Any) -> None:
        """The launch with this call's geometry (1-D grid and block) instead of the stored one."""
        extra = self._pack(args)
        self._launch(self.fptr, grid[0], 1, 1, block[0], 1, 1, smem, stream_ptr, 0, extra)


__all__ = ["PackedLaunch"]
