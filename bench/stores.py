"""One master, SQLite then PostgreSQL: what the server store costs (issue 13).

    python -m bench --only stores

The same measurements twice, each on a fresh master with N simulated agents
(1,000 in the full run, 100 with ``--quick``; :mod:`bench.fleet_sim`): first
with the embedded SQLite store, then with ``--store postgresql://…`` on a
database of its own (created on $SLOTH_TEST_PG, 127.0.0.1:5432 by default,
and dropped at the end). A master on PostgreSQL is a cluster of one: it also
keeps its lease, sweeps and listens for the others' events. Each figure's
PostgreSQL row follows its SQLite row in the table, with the same target:

- N agents registered and online (fleet start until a Watch has seen all online);
- CLI `agent list` (whole process);
- CLI `agent run --all 'true'` (whole process, after one discarded first job);
- CLI `agent run a1 'echo hi'` (whole process) on a real agent process among them;
- in-process dispatch of `echo hi` on a1 over a warm channel (as the latency benchmark, beside N agents).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench._infra import Cluster, Figure, Results, cli_argv, command_line, progress
from bench.fleet_sim import SimFleet, agent_name

# Targets of the single-master figures (issues 12 and 1) where they apply.
TARGETS_AT_FLEET = {"register": 10.0, "list": 300.0, "run_all": 1500.0}
TARGETS = {"cli_run": 150.0, "dispatch": 5.0}
FLEET = 1000
REAL = "a1"  # a real `agent start` process beside the simulated fleet
STORES = ("SQLite", "PostgreSQL")


def _measure(profile: Any, kind: str, n: int, url: str) -> dict[str, tuple[list[float], str]]:
    """{figure: (samples, failure)} for one master on one store."""
    from bench.latency import dispatch_times
    from bench.scale import _list_times, _run_all, _wait_online

    out: dict[str, tuple[list[float], str]] = {}
    with Cluster(f"store-{kind.lower()}", keep=profile.keep) as cluster:
        cluster.start_master(*(["--store", url] if url else []))
        fleet = SimFleet(cluster, n, profile.agents_per_process)
        progress(f"stores ({kind}): {n} simulated agents join")
        fleet.join()
        try:
            progress(f"stores ({kind}): {n} agents register")
            started = time.perf_counter()
            fleet.start()
            names = {agent_name(i) for i in range(n)}
            out["register"] = ([asyncio.run(_wait_online(cluster, names, started, max(60.0, n * 0.1)))], "")
            fleet.wait_started(timeout=300)

            progress(f"stores ({kind}): `agent list`, `agent run --all true`, `agent run {REAL} 'echo hi'`")
            out["list"] = (_list_times(cluster, n, profile.scale_runs), "")
            _run_all(cluster, n)  # the first job after start is the scale benchmark's own figure
            jobs = [_run_all(cluster, n) for _ in range(profile.scale_runs)]
            failed = [why for _, why in jobs if why]
            out["run_all"] = ([ms for ms, _ in jobs], f"{len(failed)} of {len(jobs)} jobs incomplete: {failed[0]}" if failed else "")
            cluster.start_agents([REAL])  # after the jobs on --all: those count N agents
            echo: list[float] = []
            cluster.cli("agent", "run", REAL, "echo hi")  # warm-up, as the latency benchmark does
            for _ in range(profile.cli_runs):
                result = cluster.cli("agent", "run", REAL, "echo hi")
                if result.returncode != 0 or result.stdout != b"hi\n":
                    raise RuntimeError(f"`agent run` failed ({result.returncode}): {result.stderr[-300:]!r}")
                echo.append(result.elapsed_s * 1000)
            out["cli_run"] = (echo, "")
            samples = asyncio.run(dispatch_times(cluster.address, cluster.admin_tls(), REAL, profile.inproc_runs))
            out["dispatch"] = (samples, "")
        finally:
            fleet.stop()
    return out


def run(profile: Any, results: Results) -> None:
    from bench.cluster import _database, postgres_missing

    n = profile.store_agents
    if not n:
        progress("stores: left out of this profile (python -m bench --only stores runs it)")
        return
    at = f"{n:,} agents"
    titles = {
        "register": (f"{at} registered and online", "s", "python -m bench.fleet_sim x N, until Watch shows all online"),
        "list": (f"CLI `agent list`, {at}", "ms", command_line([*cli_argv(), "agent", "list"])),
        "run_all": (f"CLI `agent run --all 'true'`, {at}", "ms", command_line([*cli_argv(), "agent", "run", "--all", "true"])),
        "cli_run": (f"CLI `agent run {REAL} 'echo hi'`, beside {at}", "ms",
                    command_line([*cli_argv(), "agent", "run", REAL, "echo hi"]) + " (a real agent process)"),
        "dispatch": (f"in-process dispatch, warm channel, beside {at}", "ms",
                     f"MasterClient.run(names=['{REAL}'], command='echo hi') to the end of its stream"),
    }
    measured: dict[str, dict[str, tuple[list[float], str]]] = {}
    errors: dict[str, str] = {}
    progress(f"stores: one master with {n} agents on SQLite, then on PostgreSQL")
    for kind in STORES:
        drop = None
        try:
            url = ""
            if kind == "PostgreSQL":
                missing = postgres_missing()
                if missing:
                    errors[kind] = missing
                    continue
                url, drop = _database()
            measured[kind] = _measure(profile, kind, n, url)
        except (RuntimeError, TimeoutError, OSError) as exc:
            errors[kind] = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            if drop is not None:
                drop()
    for key, (title, unit, how) in titles.items():
        target = TARGETS.get(key, TARGETS_AT_FLEET.get(key) if n == FLEET else None)
        note = "" if key in TARGETS or n == FLEET else f"targets apply at {FLEET:,} agents"
        for kind in STORES:  # each PostgreSQL row right under its SQLite row
            figure_key, figure_title = f"store_{key}_{kind.lower()}", f"one master on {kind}: {title}"
            if kind not in measured:
                results.missing(figure_key, figure_title, unit, errors.get(kind, "not measured"), target)
                continue
            samples, failure = measured[kind][key]
            results.add(Figure(figure_key, figure_title, unit, samples, target, command=how, note=note, failure=failure))
