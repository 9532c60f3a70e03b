"""The admin load benchmark still runs end to end (its smallest case; no assertion on speed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.processes import ROOT

pytestmark = pytest.mark.integration

KINDS = ("jobs page", "search (HTMX)", "pause/resume (HTMX)")


def test_admin_bench_smallest_case_runs_both_modes_without_errors(tmp_path):
    output = tmp_path / "admin.md"
    result = subprocess.run(
        [sys.executable, "bench/admin_bench.py", "--sizes", "200", "--modes", "embedded,celery",
         "--duration", "0.5", "--concurrency", "2", "--output", str(output)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = output.read_text()
    assert "### Admin under load" in report
    rows = {}
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 10 and cells[1] == "200":
            rows[(cells[0], cells[2])] = cells
    for mode in ("embedded", "celery"):
        for kind in KINDS:
            row = rows.get((mode, kind))
            assert row is not None, f"no row for {mode} / {kind}:\n{report}"
            assert row[6] == "0", f"errors in {mode} / {kind}: {row}"  # errors column
            assert int(row[7].replace(",", "")) > 0  # requests column
    assert "| celery | 200 | search matches | 11 |" in report  # the search found its jobs

    # Nothing is left running: every gunicorn and redis-server it started is gone.
    pids = [int(p) for p in re.findall(r"(?:gunicorn|redis-server) pid (\d+)", result.stdout)]
    assert len(pids) == 3  # redis-server, and one gunicorn per mode
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
