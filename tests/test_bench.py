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

import pytest

from cufftconv import bench
from cufftconv.bench import (
    PEAK_BYTES_PER_POINT,
    Workload,
    bytes_moved,
    efficiency,
    finish_row,
    fit_memory,
    hbm_floor_ms,
    plan_workloads,
    scaled_batch,
    seq_len,
    speedup,
)

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
        (1, 768, 32768, (1, 192)),  # B cannot shrink: H does
    ],
)
def test_scaled_batch(batch: int, heads: int, fft_size: int, expected: tuple[int, int]) -> None:
    assert scaled_batch(batch, heads, fft_size) == expected


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


def test_cpu_run_renders_markdown(cpu_run: tuple[int, str, Path, Path]) -> None:
    _, _, out, md = cpu_run
    text = md.read_text()
    assert text.startswith("# Benchmark results")
    assert "| N | variant | dtype | route | ms cufftconv | ms numpy |" in text
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
    table = bench.format_table(result)
    assert "cupy failed: RuntimeError: boom" in table
    assert len({len(line) for line in table.splitlines()[:3]}) == 1  # fixed-width columns


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
