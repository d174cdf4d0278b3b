"""GPU: examples/ddp_train.py trains with DDP over NCCL on 2 GPUs (subprocess, time-limited)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "ddp_train.py"
STEPS = 60
# NVLink SHARP / multicast off: mandatory on the GPU hosts (the example sets them too).
NCCL_ENV = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}


def test_ddp_example_two_gpus():
    torch = pytest.importorskip("torch")
    gpus = torch.cuda.device_count()
    if gpus < 2:
        pytest.skip(f"needs 2 CUDA GPUs; torch sees {gpus}")
    if not torch.distributed.is_nccl_available():
        pytest.skip("this PyTorch has no NCCL")
    env = dict(os.environ, **NCCL_ENV)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--world-size", "2", "--steps", str(STEPS)],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=200,
    )
    log = f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"
    assert proc.returncode == 0, log
    losses = [float(v) for _, v in re.findall(r"^step +(\d+) loss ([0-9.eE+-]+)$",
                                              proc.stdout, re.MULTILINE)]
    assert len(losses) == STEPS, log
    assert sum(losses[-10:]) < 0.6 * sum(losses[:10]), log
    assert "identical across 2 ranks" in proc.stdout and "ddp_train: OK" in proc.stdout, log
