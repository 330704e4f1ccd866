"""The benchmarks still run: `python -m bench --quick --smallest` produces every figure.

Benchmarks never run inside the test suite for their numbers; this only keeps
the scripts from rotting. It asserts that figures were produced, not targets.
It takes about a minute, so it runs only with ``pytest --bench`` (CI passes it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pgtest import require_postgres

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.bench, pytest.mark.timeout(120)]


def test_quick_bench_produces_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLOTH_RUNNER_")}
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--smallest", "--json", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=110, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads(out.read_text())
    figures = {f["key"]: f for f in document["figures"]}
    expected = [
        "cli_run", "dispatch", "agent_idle_rss", "master_idle_rss", "cli_run_insecure", "dispatch_insecure",
        "run_all_processes", "big_output_raw", "big_output_normal", "stream_throughput", "stdin_cli", "stdin_throughput",
        "shell_echo", "shell_first_byte",
        "join", "register_10", "idle_cpu_10", "idle_rss_10", "list_10", "run_all_10", "watch_lag_10",
    ]
    for key in expected:
        assert key in figures, f"{key} missing; stderr: {result.stderr[-2000:]}"
        assert figures[key]["median"] is not None, figures[key]
        assert not figures[key]["error"], figures[key]
    assert [g["agents"] for g in document["growth"]] == [10]
    require_postgres()  # the several-masters figures and the stores' comparison need it (CI has it)
    for key in ["cluster_registered", "cluster_run_all", "cluster_watch_lag", "cluster_failover",
                *(f"store_{figure}_{store}" for figure in ("register", "list", "run_all", "cli_run", "dispatch")
                  for store in ("sqlite", "postgresql"))]:
        assert key in figures and figures[key]["median"] is not None and not figures[key]["error"], figures.get(key)
    assert document["machine"]["cores"] and document["versions"]["grpcio"]
    assert "figure" in result.stdout and "median" in result.stdout
