"""The benchmark scripts still run against today's code (their figures are not checked:
timings belong to the scripts, on an idle machine, not to tests)."""

from __future__ import annotations

import os
import subprocess
import sys

from support import ROOT


def bench(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_bench_orchestration_runs_every_loop_and_prints_its_verdicts() -> None:
    result = bench(
        "bench_orchestration.py", "--frames", "4", "--repeat", "1", "--gpu-ms", "5",
        "--idle-wait", "0",
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr  # 1: a target missed at toy size
    for line in ("overlapped + page", "overlapped, no page", "serial (before)",
                 "serial, today's PNG"):  # fmt: skip
        assert line in result.stdout
    assert "efficiency at T=5 ms, steady state:" in result.stdout
    assert "one build of the finished run's page (4 frames)" in result.stdout
    assert "overlapped / serial before:" in result.stdout


def test_bench_3d_runs_and_prints_its_ratios(tiny_models) -> None:
    result = bench(
        "bench_3d.py", "--sizes", "64", "--repeat", "1", "--no-midas", "--idle-wait", "0",
        "--models", str(tiny_models.sd15.parent),
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr  # 1: a target missed at toy size
    for line in ("img2img, 1 step (baseline)", "3D warp", "depth map read from the cache",
                 "depth: tiny Depth Anything", "64x64: warp"):  # fmt: skip
        assert line in result.stdout
