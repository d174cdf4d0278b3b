"""Execution paths. Each module holds one path; :mod:`cufftconv.dispatch` picks between them.

An executor is built for one :class:`~cufftconv.validation.ConvSpec` and offers
``spectrum(k) -> kspec`` and ``run(u, kspec, pregate, postgate, out=None) -> y`` (written into ``out`` when given) on arrays of its
array module ``xp`` (bfloat16 as uint16 bits).
"""

from __future__ import annotations

from typing import Any, Protocol


class Executor(Protocol):
    xp: Any

    def spectrum(self, k: Any) -> Any: ...

    def run(
        self, u: Any, kspec: Any, pregate: Any | None, postgate: Any | None, out: Any = None
    ) -> Any: ...
