"""The benchmark harness without a GPU: arithmetic, arguments, and the NumPy path end to end."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cufftconv import bench
from cufftconv.bench import (
    LONG_SIZES,
    MB,
    PEAK_BYTES_PER_POINT,
    PeakCounter,
    Workload,
    bytes_moved,
    efficiency,
    fft_reference,
    finish_row,
    fit_memory,
    hbm_floor_ms,
    long_batch,
    plan_workloads,
    scaled_batch,
    select_sizes,
    seq_len,
    speedup,
)
from cufftconv.sources import source_digest

REPO = Path(__file__).resolve().parents[1]
ANCHOR_BANDWIDTH = 4.248e12  # bytes/s, shared/anchors/h200-2026-11-21.json


# ---------------------------------------------------------------------------------------------
# Arithmetic


@pytest.mark.parametrize(
    ("fft_size", "variant", "floor_ms"),
    [  # hbm_floor_ms of the H200 anchors, all at B=64, H=768
        (256, "conv", 0.0118),
        (256, "gated", 0.0237),
        (256, "causal", 0.0059),
        (4096, "conv", 0.1896),
        (8192, "gated", 0.7583),
        (32768, "conv", 1.5167),
        (32768, "causal", 0.7583),
    ],
)
def test_floor_matches_the_anchors(fft_size: int, variant: str, floor_ms: float) -> None:
    nbytes = bytes_moved(64, 768, seq_len(fft_size, variant), variant, itemsize=2)
    assert hbm_floor_ms(nbytes, ANCHOR_BANDWIDTH) == pytest.approx(floor_ms, rel=1e-3, abs=5e-5)


def test_bytes_moved_counts_arrays_and_itemsize() -> None:
    assert bytes_moved(1, 1, 10, "conv") == 2 * 10 * 2  # read u, write y
    assert bytes_moved(1, 1, 10, "causal") == 2 * 10 * 2
    assert bytes_moved(1, 1, 10, "gated") == 4 * 10 * 2  # plus both gates
    assert bytes_moved(2, 3, 10, "conv", itemsize=4) == 2 * 2 * 3 * 10 * 4
    assert hbm_floor_ms(3_000_000, 1e12) == pytest.approx(0.003)


def test_efficiency_and_speedup() -> None:
    assert efficiency(0.5, 2.0) == 0.25
    assert efficiency(None, 2.0) is None
    assert efficiency(0.5, None) is None
    assert efficiency(0.5, 0.0) is None
    assert speedup(3.0, 1.5) == 2.0
    assert speedup(None, 1.5) is None
    assert speedup(3.0, None) is None


def test_seq_len_and_workload() -> None:
    assert seq_len(4096, "conv") == seq_len(4096, "gated") == 4096
    assert seq_len(4096, "causal") == 2048
    w = Workload(16384, "causal", "float16", 32, 768, 64, 768)
    assert (w.L, w.mode, w.gated, w.scale) == (8192, "causal", False, 2.0)
    assert Workload(256, "gated", "bfloat16", 64, 768, 64, 768).mode == "circular"


@pytest.mark.parametrize(
    ("batch", "heads", "fft_size", "expected"),
    [  # the anchors' B, H from 16384 on
        (64, 768, 8192, (64, 768)),
        (64, 768, 16384, (32, 768)),
        (64, 768, 32768, (16, 768)),
        (64, 768, 65536, (8, 768)),
        (64, 768, 262144, (8, 192)),  # long rows: B = 8, H cut as N grows
        (64, 768, 1048576, (8, 48)),
        (64, 768, 4194304, (8, 12)),
        (1, 768, 32768, (1, 192)),  # B cannot shrink: H does
    ],
)
def test_scaled_batch(batch: int, heads: int, fft_size: int, expected: tuple[int, int]) -> None:
    assert scaled_batch(batch, heads, fft_size) == expected


@pytest.mark.parametrize(
    ("batch", "heads", "fft_size", "expected"),
    [
        (64, 768, 65536, (8, 768)),
        (64, 768, 4194304, (8, 12)),
        (64, 768, 2**24, (8, 3)),
        (64, 768, 2**26, (8, 1)),  # H never below 1
        (2, 8, 65536, (2, 1)),  # B below 8 stays; H keeps B*H*N at B*H*8192
        (64, 16, 65536, (8, 16)),  # H never above the one asked for
    ],
)
def test_long_batch(batch: int, heads: int, fft_size: int, expected: tuple[int, int]) -> None:
    assert long_batch(batch, heads, fft_size) == expected
    assert bench.is_long(fft_size)


def test_long_rows_scale_to_the_report_size() -> None:
    rows = plan_workloads(LONG_SIZES, ("causal",), ("bfloat16",), 64, 768)
    assert [(w.B, w.H, w.scale) for w in rows] == [
        (8, 768, 8.0),
        (8, 192, 32.0),
        (8, 48, 128.0),
        (8, 12, 512.0),
    ]
    assert rows[-1].notes == ("run at B=8, H=12; times scaled x512 to B=64, H=768",)
    assert rows[-1].L == 2097152
    assert not any(bench.is_long(n) for n in bench.DEFAULT_SIZES)


@pytest.mark.parametrize("free_gb", [141, 80])  # H200, H100
def test_fit_memory_keeps_long_rows_at_b8(free_gb: int) -> None:
    for n in LONG_SIZES:
        b, h = long_batch(64, 768, n)
        assert fit_memory(b, h, n, free_gb * 10**9) == (b, h)


def test_select_sizes() -> None:
    default = bench.DEFAULT_SIZES
    assert select_sizes(None, False, default) == default
    assert select_sizes(None, True, default) == LONG_SIZES
    assert select_sizes([65536, 256], False, default) == (256, 65536)
    assert select_sizes([256, 65536], True, default) == (256, *LONG_SIZES)


def test_long_option_and_long_sizes_parse() -> None:
    args = bench._parse(["--long", "--arrays", "cupy", "--dtypes", "float16"])
    cfg = bench.resolve_config(args, True, [])
    assert cfg.sizes == LONG_SIZES and cfg.dtypes == ("float16",)
    assert (cfg.B, cfg.H) == (64, 768)
    args = bench._parse(["--arrays", "cupy", "--sizes", "1024", str(2**24)])
    assert bench.resolve_config(args, True, []).sizes == (1024, 2**24)
    assert bench.resolve_config(bench._parse(["--arrays", "cupy"]), True, []).sizes == (
        bench.DEFAULT_SIZES
    )


@pytest.mark.parametrize("mode", ["circular", "causal"])
@pytest.mark.parametrize("gated", [False, True])
def test_fft_reference_matches_fftconv_direct(mode: str, gated: bool) -> None:
    from cufftconv import reference

    rng = np.random.default_rng(3)
    n = 256
    length = n // 2 if mode == "causal" else n
    u, k = rng.standard_normal((2, 3, length)), rng.standard_normal((3, length))
    gates = {}
    if gated:
        gates = {g: rng.standard_normal((2, 3, length)) for g in ("pregate", "postgate")}
    want = reference.fftconv_direct(u, k, mode=mode, **gates)
    got = fft_reference(u, k, n, mode, gates.get("pregate"), gates.get("postgate"))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_fit_memory() -> None:
    assert fit_memory(64, 768, 8192, 10**12) == (64, 768)
    free = 4 * 2**30
    b, h = fit_memory(64, 768, 8192, free)
    assert b * h * 8192 * PEAK_BYTES_PER_POINT <= bench.MEMORY_FRACTION * free
    assert (b, h) != (64, 768) and h == 768  # B goes first
    assert fit_memory(4, 4, 2**24, 1) == (1, 1)  # never below one sequence


def test_plan_workloads_order_and_notes() -> None:
    rows = plan_workloads((256, 16384), ("conv", "causal"), ("float16",), 64, 768)
    assert [(w.fft_size, w.variant) for w in rows] == [
        (256, "conv"),
        (256, "causal"),
        (16384, "conv"),
        (16384, "causal"),
    ]
    assert rows[0].notes == ()
    assert (rows[2].B, rows[2].H, rows[2].scale) == (32, 768, 2.0)
    assert "scaled x2" in rows[2].notes[0]


def _row(w: Workload, cufftconv_ms: float, torch_ms: float | None) -> dict:
    row = bench._new_row(w)
    row["ms"].update(cufftconv=cufftconv_ms, torch=torch_ms)
    row["relerr"]["cufftconv"] = 2.1e-4
    row["route"], row["nan_free"] = "cufft", True
    return row


def test_finish_row_scales_and_derives() -> None:
    w = Workload(16384, "conv", "float16", 32, 768, 64, 768)
    row = finish_row(_row(w, 4.0, 6.0), w, ANCHOR_BANDWIDTH)
    assert row["ms"]["cufftconv"] == 8.0  # measured at half the batch
    assert row["ms"]["torch"] == 12.0
    assert row["ms"]["cupy"] is None
    assert row["hbm_floor_ms"] == pytest.approx(0.7583, rel=1e-3)  # the anchors' floor
    assert row["efficiency"] == pytest.approx(0.7583 / 8.0, rel=1e-3)
    assert row["speedup"]["torch"] == pytest.approx(1.5)
    assert row["speedup"]["cupy"] is None
    host = finish_row(_row(w, 4.0, None), w, None)
    assert host["hbm_floor_ms"] is None and host["efficiency"] is None


# ---------------------------------------------------------------------------------------------
# Peak memory


def test_peak_counter() -> None:
    c = PeakCounter()
    c.malloc(0x10, 100)
    c.malloc(0x20, 50)
    c.free(0x10, 100)
    c.malloc(0x30, 30)
    assert (c.current, c.peak) == (80, 150)
    c.malloc(0, 10**9)  # failed allocation: ignored
    c.free(0x99, 500)  # a block from before counting started
    assert (c.current, c.peak) == (-420, 150)


def _fake_gpu(torch_extra: int) -> bench._Gpu:
    """A _Gpu whose CuPy has only MemoryHook and a no-op sync, and a fake torch allocator."""
    from types import SimpleNamespace

    cupy = pytest.importorskip("cupy")
    stats = {"alloc": 1000, "max": 1000}

    def reset() -> None:
        stats["max"] = stats["alloc"]

    gpu = bench._Gpu.__new__(bench._Gpu)
    runtime = SimpleNamespace(deviceSynchronize=lambda: None)
    gpu.cp = SimpleNamespace(cuda=SimpleNamespace(MemoryHook=cupy.cuda.MemoryHook, runtime=runtime))
    gpu.torch = SimpleNamespace(
        cuda=SimpleNamespace(
            reset_peak_memory_stats=reset,
            memory_allocated=lambda: stats["alloc"],
            max_memory_allocated=lambda: stats["max"] + torch_extra,
        )
    )
    return gpu


def test_gpu_peak_sums_cupy_pool_and_torch() -> None:
    gpu = _fake_gpu(torch_extra=2 * MB)
    from cupy.cuda import memory_hook

    def fn() -> str:
        hook = memory_hook.get_memory_hooks()["cufftconv_bench_peak"]
        hook.malloc_postprocess(device_id=0, size=1, mem_size=3 * MB, mem_ptr=0xA, pmem_id=1)
        hook.malloc_postprocess(device_id=0, size=1, mem_size=1 * MB, mem_ptr=0xB, pmem_id=2)
        hook.free_postprocess(device_id=0, mem_size=3 * MB, mem_ptr=0xA, pmem_id=1)
        return "y"

    assert gpu.peak_extra_mb(fn) == pytest.approx(4 + 2)
    assert "cufftconv_bench_peak" not in memory_hook.get_memory_hooks()  # unregistered


def test_host_peak_extra_mb() -> None:
    mb = bench.host_peak_extra_mb(lambda: np.ones(2**20))  # 8 MB
    assert 7.9 < mb < 9
    assert bench.host_peak_extra_mb(lambda: None) < 0.1


# ---------------------------------------------------------------------------------------------
# Timing helpers (a fake event clock stands in for CUDA events)


class _FakeEvent:
    def record(self) -> None:
        self.t = time.perf_counter()


def test_time_gpu_takes_the_median_and_flushes() -> None:
    clock = bench._Clock(_FakeEvent, lambda a, b: (b.t - a.t) * 1e3, lambda: None)
    calls = {"fn": 0, "flush": 0}

    def fn() -> None:
        calls["fn"] += 1
        time.sleep(0.002)

    def flush() -> None:
        calls["flush"] += 1

    ms, wall = bench.time_gpu(fn, clock, reps=6, warmup=2, flush=flush)
    assert 2.0 <= ms < 50 and 2.0 <= wall < 50
    assert calls["flush"] == 6
    assert calls["fn"] == 2 + 6 + 3  # warm-up, timed runs, wall-clock runs


def test_time_cpu() -> None:
    ms, wall = bench.time_cpu(lambda: time.sleep(0.001), reps=3, warmup=1)
    assert ms >= 1.0 and wall is None


# ---------------------------------------------------------------------------------------------
# Command line


@pytest.mark.parametrize(
    "argv",
    [
        ["--sizes", "100"],
        ["--sizes", "4"],
        ["--sizes", str(2**25)],
        ["--sizes", "abc"],
        ["--variants", "bogus"],
        ["--dtypes", "float64"],
        ["--reps", "0"],
        ["--warmup", "-1"],
        ["--B", "-2"],
        ["--max-seconds", "0"],
        ["--from-json", "x.json"],  # needs --results-md
        ["--cpu", "--arrays", "torch"],
        ["--no-such-option"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--help"]) == 0
    assert "--results-md" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# End to end on the NumPy path


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path, Path]:
    out = tmp_path_factory.mktemp("bench")
    md = out / "RESULTS.md"
    argv = ["--cpu", "--quick", "--out", str(out), "--results-md", str(md), "--seed", "7"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = bench.main(argv)
    return rc, buf.getvalue(), out, md


def test_cpu_run_writes_json_rows(cpu_run: tuple[int, str, Path, Path]) -> None:
    rc, stdout, out, _ = cpu_run
    assert rc == 0
    assert bench.CPU_FORCED_MESSAGE in stdout
    assert "ms cufftconv" in stdout and "ms numpy" in stdout
    result = json.loads((out / bench.JSON_NAME).read_text())
    assert result["mode"] == "cpu" and result["baselines"] == ["numpy", "scipy"]
    assert result["seed"] == 7 and result["versions"]["numpy"]
    assert result["versions"]["source"] == source_digest()  # the tree that ran, without git too
    rows = result["rows"]
    assert [(r["fft_size"], r["variant"], r["dtype"]) for r in rows] == [
        (n, v, "float16") for n in bench.CPU_QUICK_SIZES for v in bench.VARIANTS
    ]
    for r in rows:
        assert not r["errors"], r["errors"]
        assert r["route"] and r["nan_free"] is True
        for impl in ("cufftconv", "numpy", "scipy"):
            assert r["ms"][impl] > 0
            assert 0 < r["relerr"][impl] < 1e-3  # fp16 output rounding, about 2e-4
        assert r["ms"]["torch"] is None and r["ms"]["cupy"] is None
        assert r["hbm_floor_ms"] is None and r["efficiency"] is None
        assert r["speedup"]["numpy"] > 0
        peak = r["peak_extra_MB_unscaled"]
        assert peak["cufftconv"] > 0 and peak["numpy"] > 0 and peak["torch"] is None


def test_cpu_run_renders_markdown(cpu_run: tuple[int, str, Path, Path]) -> None:
    _, _, out, md = cpu_run
    text = md.read_text()
    assert text.startswith("# Benchmark results")
    assert "| N | variant | dtype | route | ms cufftconv | ms numpy |" in text
    assert "| relerr | peak MB (ours / numpy) | mem x numpy |" in text
    assert bench.PEAK_NOTE in text
    rows = json.loads((out / bench.JSON_NAME).read_text())["rows"]
    assert sum(line.startswith(("| 256 ", "| 1024 ")) for line in text.splitlines()) == len(rows)
    # Rendering the same run again replaces its section rather than adding one.
    section = bench.write_results_md(out / bench.JSON_NAME, md)
    assert md.read_text().count(section.splitlines()[0]) == 1
    assert bench.main(["--from-json", str(out / bench.JSON_NAME), "--results-md", str(md)]) == 0
    assert md.read_text().count(section.splitlines()[0]) == 1


def test_cpu_run_plot(cpu_run: tuple[int, str, Path, Path]) -> None:
    pytest.importorskip("matplotlib")
    _, _, out, _ = cpu_run
    assert (out / bench.PNG_NAME).stat().st_size > 0


def test_merge_section_keeps_other_sections() -> None:
    text = "# Benchmark results\n\n## A, 2026-01-01\n\nold a\n\n## B, 2026-01-02\n\nb\n"
    merged = bench._merge_section(text, "## A, 2026-01-01\n\nnew a\n")
    assert "new a" in merged and "old a" not in merged and "## B, 2026-01-02\n\nb" in merged
    appended = bench._merge_section(merged, "## C, 2026-01-03\n\nc\n")
    assert appended.endswith("## C, 2026-01-03\n\nc\n") and "new a" in appended


def test_gpu_table_formatting() -> None:
    result = {"baselines": ["torch", "cupy"], "rows": [], "skipped": []}
    w = Workload(256, "gated", "float16", 64, 768, 64, 768)
    row = _row(w, 0.5, 1.0)
    row["ms"]["cupy"] = 2.0
    row["nan_free"] = False
    row["errors"]["cupy"] = "RuntimeError: boom"
    result["rows"].append(finish_row(row, w, ANCHOR_BANDWIDTH))
    headers, cells = bench.table_cells(result)
    assert headers[5:7] == ["ms torch", "ms cupy"]
    assert cells[0][:5] == ["256", "gated", "float16", "cufft NaN!", "0.5"]
    assert cells[0][8:] == ["4.7%", "2.00x", "4.00x", "2.1e-04"]
    assert len(headers) == 12  # no peak memory measured: no peak columns
    table = bench.format_table(result)
    assert "cupy failed: RuntimeError: boom" in table
    assert len({len(line) for line in table.splitlines()[:3]}) == 1  # fixed-width columns


def test_peak_columns_for_long_rows() -> None:
    result = {"baselines": ["torch", "cupy"], "rows": [], "skipped": []}
    w = plan_workloads((65536,), ("conv",), ("float16",), 64, 768)[0]
    row = _row(w, 5.0, 62.6)
    row["peak_extra_MB_unscaled"].update(cufftconv=832.0, torch=4864.0, cupy=7000.5)
    result["rows"].append(finish_row(row, w, ANCHOR_BANDWIDTH))
    w4 = plan_workloads((4194304,), ("causal",), ("float16",), 64, 768)[0]
    row4 = _row(w4, 10.0, 5933.0)
    row4["peak_extra_MB_unscaled"].update(cufftconv=0.5)  # torch failed: n/a
    result["rows"].append(finish_row(row4, w4, ANCHOR_BANDWIDTH))
    headers, cells = bench.table_cells(result)
    assert headers[-2:] == ["peak MB (ours / torch)", "mem x torch"]
    assert cells[0][-2:] == ["832 / 4864", "5.85x"]
    assert cells[1][-2:] == ["0.5 / n/a", "n/a"]
    assert cells[0][4] == "40"  # 5 ms at B=8, H=768 scaled x8 to B=64, H=768
    assert row["peak_extra_MB_unscaled"]["cufftconv"] == 832.0  # not scaled
    md = bench.render_markdown(
        {**result, "device": "GPU", "date": "2026-11-21", "mode": "gpu", "arrays": "torch"}
        | {"report_B": 64, "report_H": 768, "reps": 30, "copy_bandwidth_TBps": 4.2}
        | {"versions": {}, "compute_capability": "9.0"}
    )
    assert "| peak MB (ours / torch) | mem x torch |" in md
    assert "| 832 / 4864 | 5.85x |" in md
    assert "run at B=8, H=12; times scaled x512 to B=64, H=768" in md


def test_cpu_skips_long_rows_quickly(tmp_path: Path) -> None:
    """Above 65536 the NumPy path skips the row with a note instead of grinding for minutes."""
    argv = ["--cpu", "--variants", "conv", "--reps", "1", "--out", str(tmp_path)]
    buf = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(buf):
        rc = bench.main([*argv, "--sizes", "256", "262144", "4194304"])
    assert rc == 0 and time.perf_counter() - t0 < 30
    result = json.loads((tmp_path / bench.JSON_NAME).read_text())
    assert [r["fft_size"] for r in result["rows"]] == [256]
    skipped = result["skipped"]
    assert [s["fft_size"] for s in skipped] == [262144, 4194304]
    assert all("long rows need a GPU" in s["reason"] for s in skipped)
    assert "skipped: N > 65536 is too slow on the NumPy path" in buf.getvalue()


def test_no_gpu_stack_at_all(tmp_path: Path) -> None:
    """The host path works where cupy, torch and jax cannot be imported."""
    code = (
        "import sys\n"
        "for name in ('cupy', 'torch', 'jax', 'matplotlib', 'tqdm'):\n"
        "    sys.modules[name] = None  # makes `import name` raise ImportError\n"
        "from cufftconv.bench import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = ["--quick", "--sizes", "256", "--dtypes", "float16", "float32", "--out", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert bench.NO_GPU_MESSAGE in done.stdout
    assert "matplotlib not importable" in done.stdout
    rows = json.loads((tmp_path / bench.JSON_NAME).read_text())["rows"]
    assert {(r["dtype"], r["variant"]) for r in rows} == {
        (d, v) for d in ("float16", "float32") for v in bench.VARIANTS
    }
    fp32 = [r for r in rows if r["dtype"] == "float32"]
    assert all(r["relerr"]["cufftconv"] < 1e-5 for r in fp32)
