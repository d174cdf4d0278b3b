"""Smoke tests of the hardening scripts on the CPU (no GPU needed; the GPU runs are
benchmarks/soak.py and benchmarks/sanitize.sh, see RELIABILITY.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _cpu_env() -> dict[str, str]:
    # Hide any GPU so that the NumPy path runs, as on CI.
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO))
    return env


def test_soak_20_calls_on_the_numpy_path(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "soak.py"), "--calls", "20", "--seed", "3",
         "--json", str(out)],
        check=False, capture_output=True, text=True, timeout=120, env=_cpu_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(out.read_text())
    assert res["verdict"] == "PASS" and res["calls"] == 20
    assert res["checks"] >= 1 and res["n_failures"] == 0
    assert res["memory_after_warmup"]["rss"] > 0 and res["calls_per_s"] > 0
    assert proc.stdout.strip().splitlines()[-1].startswith("soak: PASS")


def test_sanitize_summary_tells_our_kernels_apart(tmp_path: Path) -> None:
    """The summary of sanitizer reports: counts, kernel names, ours vs CuPy/cuFFT, verdict."""
    (tmp_path / "runs.tsv").write_text(
        "plain\tall\t0\t5\t90\nmemcheck\tfused\t1\t20\t100\nracecheck\tfused\t0\t30\t160\n"
    )
    (tmp_path / "plain.txt").write_text("driver: PASS (3 passed, 0 failed, 0 skipped, 1 s)\n")
    (tmp_path / "memcheck.txt").write_text(
        "##### group fused (tool memcheck, limit 100 s)\n"
        "========= COMPUTE-SANITIZER\n"
        "========= Invalid __global__ read of size 2 bytes\n"
        "=========     at void monarch_conv_fwd<256, 0, false, false, 3>(const __half *)+0x1c0\n"
        "=========     by thread (3,0,0) in block (0,0,0)\n"
        "========= Uninitialized __global__ memory read of size 4 bytes\n"
        "=========     at regular_fft_factor<64u>(float2 *)+0x970\n"
        "driver: PASS (3 passed, 0 failed, 0 skipped, 1 s)\n"
        "========= ERROR SUMMARY: 2 errors\n"
        "##### exit 1 after 20 s\n"
    )
    (tmp_path / "racecheck.txt").write_text(
        "##### group fused (tool racecheck, limit 160 s)\n"
        "driver: PASS (3 passed, 0 failed, 0 skipped, 1 s)\n"
        "========= RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)\n"
        "========= ERROR SUMMARY: 0 errors\n"
    )
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "sanitize_driver.py"), "--summarize",
         str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=60, env=_cpu_env(),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    text = proc.stdout
    assert "OURS     1 x void monarch_conv_fwd<256, 0, false, false, 3>(const __half *)" in text
    assert "other    1 x regular_fft_factor<64u>(float2 *)" in text
    verdict = text.strip().splitlines()[-1]
    assert verdict.startswith("sanitize: FAIL (memcheck 2, racecheck 0 errors")
    assert "errors in our kernels: memcheck: void monarch_conv_fwd" in verdict
