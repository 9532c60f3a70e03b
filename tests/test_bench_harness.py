"""The benchmark harness still runs end to end (its smallest case; no assertion on speed)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.processes import ROOT

pytestmark = pytest.mark.integration


def test_beat_bench_smallest_case_runs_and_writes_its_tables(tmp_path):
    output = tmp_path / "results.md"
    result = subprocess.run(
        [sys.executable, "bench/beat_bench.py", "--only", "ours", "--samples", "1", "--load", "0",
         "--burst", "20", "--gap", "0", "--output", str(output)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = output.read_text()
    assert "## Machine" in report and "### Burst" in report
    assert "| ours | 20/20 |" in report  # every job of the burst reached the broker
