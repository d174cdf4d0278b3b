"""The plan / executor cache: one value per key, LRU eviction, safe under threads."""

import threading

from cufftconv.cache import BuildCache, OnceCache


def test_builds_once_and_evicts_least_recent():
    cache = BuildCache(2)
    builds = []

    def build(v):
        builds.append(v)
        return v

    assert cache.get("a", lambda: build(1)) == 1
    assert cache.get("a", lambda: build(99)) == 1  # cached
    cache.get("b", lambda: build(2))
    cache.get("a", lambda: build(99))  # "a" is now the most recent
    cache.get("c", lambda: build(3))  # evicts "b"
    assert len(cache) == 2
    assert cache.get("b", lambda: build(4)) == 4
    assert builds == [1, 2, 3, 4]
    cache.clear()
    assert len(cache) == 0


def test_threads_share_one_value_per_key():
    cache = BuildCache(8)
    barrier = threading.Barrier(16)
    got = []

    def work():
        barrier.wait()
        got.append(cache.get("k", object))

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 16 and all(g is got[0] for g in got)


def test_once_cache_builds_each_key_once_under_threads():
    cache = OnceCache()
    barrier = threading.Barrier(16)
    builds = []
    lock = threading.Lock()

    def build(key):
        with lock:
            builds.append(key)
        return object()

    got = [None] * 16

    def work(i):
        barrier.wait()
        got[i] = cache.get(i % 2, lambda: build(i % 2))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(builds) == [0, 1]  # exactly one build per key
    assert all(got[i] is got[i % 2] for i in range(16))


def test_once_cache_retries_a_failed_build():
    cache = OnceCache()

    def fail():
        raise RuntimeError("no")

    try:
        cache.get("k", fail)
    except RuntimeError:
        pass
    assert cache.get("k", lambda: 5) == 5
    assert cache.get("k", lambda: 6) == 5
