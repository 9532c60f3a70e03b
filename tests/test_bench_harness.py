"""The benchmark suite still runs end to end: its quick mode at the smallest sizes, every
scheduler it compares (no assertion on speed: figures are for bench/RESULTS.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.processes import ROOT

pytestmark = pytest.mark.integration

SMALLEST = ["--set", "bursts=[20]", "--set", "steady=10", "--set", "cold=20", "--set", "catch_up=4",
            "--set", "samples=1", "--set", "loads=[0]"]


def test_suite_quick_smallest_case_runs_every_scenario_and_system(tmp_path):
    output, results = tmp_path / "results.md", tmp_path / "results"
    result = subprocess.run(
        [sys.executable, "bench/suite.py", "--quick", "--scenarios", "change,burst,steady,cold",
         *SMALLEST, "--results", str(results), "--output", str(output)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = output.read_text()
    assert "## Machine" in report
    for scenario in ("change", "burst", "steady", "cold"):
        assert f"## {scenario}" in report
    burst = json.loads((results / "burst.json").read_text())["tables"][0]
    systems = {row[0].split(" (")[0]: row for row in burst[2]}
    assert set(systems) == {"ours", "redbeat", "sqlalchemy-celery-beat", "celery PersistentScheduler",
                            "embedded"}
    for name, row in systems.items():
        assert row[2] == "20", f"{name} published {row[2]} of the 20 jobs due"
    catch_up = json.loads((results / "cold.json").read_text())["tables"][1][2]
    ours = {row[2]: row[3] for row in catch_up if row[0] == "ours"}
    assert ours == {"misfire policy run_once": "2", "misfire policy skip": "0"}
