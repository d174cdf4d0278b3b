"""A small thread-safe LRU cache for objects that are expensive to build (plans, executors)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class BuildCache(Generic[V]):
    """``get(key, build)`` returns the cached value or builds it, keeping ``maxsize`` entries.

    Building happens outside the lock (it may compile kernels); if two threads build the same
    key at once, the first one stored wins and both get it.
    """

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], V]) -> V:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        value = build()
        with self._lock:
            value = self._items.setdefault(key, value)
            self._items.move_to_end(key)
            while len(self._items) > self._maxsize:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class OnceCache(Generic[V]):
    """``get(key, build)`` builds each key exactly once, even when threads ask for it at the same
    time, and keeps it for good (compiled kernels, per-device tables).

    One lock per key: other keys build in parallel. A build that raises leaves the key unbuilt,
    so a later call tries again.
    """

    def __init__(self) -> None:
        self._slots: dict[Hashable, list] = {}  # key -> [lock, built?, value]
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], V]) -> V:
        with self._lock:
            slot = self._slots.setdefault(key, [threading.Lock(), False, None])
        if not slot[1]:
            with slot[0]:
                if not slot[1]:
                    slot[2] = build()
                    slot[1] = True
        return slot[2]
