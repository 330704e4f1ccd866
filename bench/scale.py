"""Scale: a real master with a simulated fleet of 10, 100, 1,000 and 10,000 agents.

The agents come from :mod:`bench.fleet_sim` (real agent servers, many per
process). Once, before any size, the largest fleet joins the master (one CSR
and one certificate per agent); that is timed on its own. Then, for each
size, a master starts on the same CA with an empty registry and the fleet
is started:

- register + online: from spawning the host processes until a ``Watch``
  subscriber has seen every agent online;
- idle master: CPU (per heartbeat interval, % of one core) and RSS with every
  agent heartbeating (5 s interval);
- `sloth-runner agent list` as a whole CLI process;
- `sloth-runner agent run --all 'true'` as a whole CLI process, every run
  accounted for (the summary must read "N succeeded, 0 failed, 0 rejected"):
  the first run after start on its own, then warm runs;
- at every size, overload may slow things down but never make a healthy
  agent offline: the master's log must not mark any simulated agent offline;
- at the largest size, ``Watch`` subscribers (20 in the full run) attached
  while a job runs on every agent: each must receive every event, and the
  figure is each subscriber's worst lag behind the time the event describes;
  and one real agent process among them is killed (SIGKILL): the time until
  a ``Watch`` subscriber sees it offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections import Counter
from typing import Any

from bench._infra import (
    Cluster,
    Figure,
    Results,
    bench_module,
    cli_argv,
    command_line,
    cpu_meter,
    progress,
    rss_mb,
    spawn,
    stop_many,
)
from bench.fleet_sim import PREFIX, SimFleet

FLEET = 1000
BIG_FLEET = 10_000
WATCHERS_PER_PROCESS = 5
SETTLE_S = 2.0
# Targets by fleet size (issue 12); sizes without a row have none.
TARGETS: dict[str, dict[int, float]] = {
    "register_s": {1000: 10.0, BIG_FLEET: 60.0},
    "idle_cpu_pct": {1000: 3.0, BIG_FLEET: 20.0},
    "idle_rss_mb": {1000: 150.0, BIG_FLEET: 600.0},
    "rss_after_mb": {1000: 150.0, BIG_FLEET: 600.0},
    "list_ms": {1000: 300.0, BIG_FLEET: 1000.0},
    "run_all_ms": {1000: 1500.0, BIG_FLEET: 15_000.0},
    "watch_lag_ms": {1000: 1000.0, BIG_FLEET: 2000.0},
    "killed_offline_s": {1000: 20.0, BIG_FLEET: 20.0},
}


def _target(figure: str, n: int) -> float | None:
    return TARGETS[figure].get(n)


def _size_note(n: int) -> str:
    return "" if n in (FLEET, BIG_FLEET) else f"targets apply at {FLEET:,} and {BIG_FLEET:,} agents"


async def _wait_online(cluster: Cluster, names: set[str], started: float, timeout: float) -> float:
    """Seconds from ``started`` until a Watch subscriber has seen every name online."""
    from sloth_core.client import MasterClient
    from sloth_core.proto import sloth_pb2 as pb

    online: set[str] = set()
    async with MasterClient(cluster.address, cluster.admin_tls()) as client:
        stream = client.watch(include_output=False)

        async def scan() -> float:
            async for event in stream:
                if event.HasField("snapshot"):
                    online.update(a.name for a in event.snapshot.agents if a.status == pb.AGENT_ONLINE)
                elif event.HasField("agent"):
                    info = event.agent.agent
                    if info.status == pb.AGENT_ONLINE:
                        online.add(info.name)
                    else:
                        online.discard(info.name)
                if names <= online:
                    return time.perf_counter() - started
            raise RuntimeError("the watch stream ended")

        try:
            return await asyncio.wait_for(scan(), timeout)
        except TimeoutError:
            raise TimeoutError(f"only {len(names & online)} of {len(names)} agents online after {timeout:.0f} s") from None


def _reset_registry(cluster: Cluster) -> None:
    """A fresh registry and history on the same CA (the joined certificates stay valid)."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            (cluster.master_dir / f"master.db{suffix}").unlink()


def _idle(cluster: Cluster, window_s: float, hosts: list[subprocess.Popen[bytes]]) -> tuple[list[float], list[float], float]:
    """(CPU % of one core per slice, RSS samples in MB, simulator CPU % over the window)."""
    assert cluster.master is not None
    pid = cluster.master.pid
    time.sleep(SETTLE_S)
    slice_s = 5.0 if window_s >= 10 else 1.0
    cpu: list[float] = []
    rss: list[float] = []
    sim_before = sum(_cpu(h.pid) for h in hosts)
    deadline = time.perf_counter() + window_s
    while time.perf_counter() < deadline - slice_s / 2:
        with cpu_meter(pid) as used:
            begun = time.perf_counter()
            time.sleep(slice_s)
            cpu.append(100 * used() / (time.perf_counter() - begun))
        rss.append(rss_mb(pid))
    sim_pct = 100 * (sum(_cpu(h.pid) for h in hosts) - sim_before) / max(window_s, 1e-9)
    return cpu, rss, sim_pct


def _cpu(pid: int) -> float:
    from bench._infra import cpu_seconds

    try:
        return cpu_seconds(pid)
    except OSError:
        return 0.0


def _list_times(cluster: Cluster, n: int, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        result = cluster.cli("agent", "list")
        rows = [ln for ln in result.stdout.decode(errors="replace").splitlines() if ln.startswith("sim-")]
        if result.returncode != 0 or len(rows) != n:
            raise RuntimeError(f"`agent list` failed ({result.returncode}): {len(rows)} rows; {result.stderr[-300:]!r}")
        times.append(result.elapsed_s * 1000)
    return times


def _run_all(cluster: Cluster, n: int) -> tuple[float, str]:
    """(ms, "" or what went wrong): every run must be accounted for as succeeded."""
    result = cluster.cli("agent", "run", "--all", "true", timeout=300)
    summary = f"{n} succeeded, 0 failed, 0 rejected".encode()
    # The summary and the reasons of runs that could not run are on stderr, as ssh keeps stdout for data.
    if result.returncode == 0 and summary in result.stderr:
        return result.elapsed_s * 1000, ""
    tail = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
    reason = f"exit {result.returncode}: {tail[0]}"
    lost = [ln for ln in result.stderr.decode(errors="replace").splitlines() if " lost " in f" {ln} " or "| error:" in ln]
    if lost:
        reason += f" (e.g. {lost[0].split(None, 4)[-1][:160]})"
    progress(f"`agent run --all true` on {n}: {reason}")
    return result.elapsed_s * 1000, reason


def run(profile: Any, results: Results) -> None:
    sizes = sorted(profile.sizes)
    largest = sizes[-1]
    with Cluster("scale", keep=profile.keep) as cluster:
        cluster.start_master()
        progress(f"scale: {largest} simulated agents join (CSR + certificate each)")
        joiner = SimFleet(cluster, largest, profile.agents_per_process)
        join_s = joiner.join()
        results.add(Figure(
            "join", f"join {largest:,} agents (token + CSR + certificate each)", "s", [join_s],
            command=f"python -m bench.fleet_sim --join-only ... ({joiner.processes} processes)",
            note=f"{largest / join_s:.0f} joins/s; once per bench run, not part of register+online",
        ))
        cluster.stop_master()
        for n in sizes:
            _one_size(cluster, profile, results, n, watch=(n == largest))


def _offline_marks(cluster: Cluster, offset: int) -> list[str]:
    """Lines where the master marked a simulated agent offline since ``offset`` of its log."""
    text = cluster.log("master").read_bytes()[offset:].decode(errors="replace")
    return [ln for ln in text.splitlines() if " is offline (" in ln and f" {PREFIX}-" in ln]


async def _killed_offline(cluster: Cluster, name: str) -> float:
    """SIGKILL real agent ``name``; seconds until a Watch subscriber sees it offline."""
    from sloth_core.client import MasterClient
    from sloth_core.proto import sloth_pb2 as pb

    proc = cluster.agents[name]
    async with MasterClient(cluster.address, cluster.admin_tls()) as client:
        stream = client.watch(include_output=False)
        await anext(stream)  # the snapshot: subscribed
        killed = time.perf_counter()
        proc.kill()

        async def offline() -> float:
            async for event in stream:
                if event.HasField("agent") and event.agent.agent.name == name and event.agent.agent.status != pb.AGENT_ONLINE:
                    return time.perf_counter() - killed
            raise RuntimeError("the watch stream ended")

        return await asyncio.wait_for(offline(), 120)


def _killed_agent(cluster: Cluster, results: Results, n: int) -> None:
    name = "victim"
    progress(f"scale {n}: a real agent among {n:,} is killed (SIGKILL)")
    cluster.start_agents([name])
    try:
        seconds = asyncio.run(_killed_offline(cluster, name))
    except (RuntimeError, TimeoutError) as exc:
        results.missing(f"killed_offline_{n}", f"an agent killed among {n:,}: shown offline", "s", str(exc),
                        _target("killed_offline_s", n))
        return
    results.add(Figure(
        f"killed_offline_{n}", f"an agent killed among {n:,}: shown offline", "s", [seconds],
        _target("killed_offline_s", n),
        command="sloth-runner agent start --name victim ...; kill -9; until Watch shows it offline",
        note="its session's socket closes with it: no missed beats to wait for",
    ))


def _one_size(cluster: Cluster, profile: Any, results: Results, n: int, *, watch: bool) -> None:
    _reset_registry(cluster)
    log_offset = cluster.log("master").stat().st_size if cluster.log("master").exists() else 0
    cluster.start_master()
    fleet = SimFleet(cluster, n, profile.agents_per_process)
    names = {f"sim-{i:04d}" for i in range(n)}
    row: dict[str, Any] = {"agents": n}
    try:
        progress(f"scale {n}: starting {n} simulated agents in {fleet.processes} process(es)")
        started = time.perf_counter()
        fleet.start()
        register_s = asyncio.run(_wait_online(cluster, names, started, timeout=max(60.0, n * 0.1)))
        fleet.wait_started(timeout=300)
        row["register_s"] = register_s
        results.add(Figure(
            f"register_{n}", f"{n:,} agents registered and online after start", "s", [register_s],
            _target("register_s", n),
            command=f"python -m bench.fleet_sim x {fleet.processes} process(es), until Watch shows all online",
            note=_size_note(n),
        ))

        progress(f"scale {n}: idle master for {profile.idle_window_s:.0f} s")
        cpu, rss, sim_pct = _idle(cluster, profile.idle_window_s, fleet.hosts)
        row["master_idle_cpu_pct"] = sum(cpu) / len(cpu)
        row["master_rss_mb"] = max(rss)
        results.add(Figure(
            f"idle_cpu_{n}", f"idle master CPU, {n:,} agents heartbeating", "%", cpu, _target("idle_cpu_pct", n),
            command="/proc/PID/stat utime+stime of the master per slice, heartbeat 5 s",
            note=f"% of one core; mean {row['master_idle_cpu_pct']:.1f} %; simulator processes used {sim_pct:.0f} %"
            + (f"; {_size_note(n)}" if _size_note(n) else ""),
        ))
        results.add(Figure(
            f"idle_rss_{n}", f"idle master RSS, {n:,} agents", "MB", rss, _target("idle_rss_mb", n),
            command="/proc/PID/statm of the master", note=_size_note(n),
        ))

        progress(f"scale {n}: {profile.scale_runs} x `agent list`")
        times = _list_times(cluster, n, profile.scale_runs)
        row["list_ms"] = sorted(times)[len(times) // 2]
        results.add(Figure(
            f"list_{n}", f"CLI `agent list`, {n:,} agents", "ms", times, _target("list_ms", n),
            command=command_line([*cli_argv(), "agent", "list"]), note=_size_note(n),
        ))

        progress(f"scale {n}: `agent run --all true` (first, then {profile.scale_runs} warm)")
        first, first_failure = _run_all(cluster, n)
        results.add(Figure(
            f"run_all_first_{n}", f"CLI `agent run --all 'true'`, {n:,} agents, first after start", "ms",
            [first], _target("run_all_ms", n), command=command_line([*cli_argv(), "agent", "run", "--all", "true"]),
            note="the first job after start (agents' sessions are already open)", failure=first_failure,
        ))
        # Each 10,000-agent job takes ~10 s of both cores: fewer of them.
        warm_runs = profile.scale_runs if n < BIG_FLEET else min(profile.scale_runs, 3)
        runs = [_run_all(cluster, n) for _ in range(warm_runs)]
        times = [ms for ms, _ in runs]
        failures = [why for _, why in runs if why]
        row["run_all_ms"] = sorted(times)[len(times) // 2]
        results.add(Figure(
            f"run_all_{n}", f"CLI `agent run --all 'true'`, {n:,} agents", "ms", times,
            _target("run_all_ms", n), command=command_line([*cli_argv(), "agent", "run", "--all", "true"]),
            note="every run accounted for: 'N succeeded, 0 failed, 0 rejected'" + (f"; {_size_note(n)}" if _size_note(n) else ""),
            failure=f"{len(failures)} of {len(runs)} jobs incomplete: {failures[0]}" if failures else "",
        ))
        assert cluster.master is not None
        time.sleep(SETTLE_S)
        after = [rss_mb(cluster.master.pid)]
        for _ in range(4):
            time.sleep(0.5)
            after.append(rss_mb(cluster.master.pid))
        row["master_rss_after_runs_mb"] = max(after)
        results.add(Figure(
            f"idle_rss_after_runs_{n}", f"idle master RSS, {n:,} agents, after jobs on all of them", "MB", after,
            _target("rss_after_mb", n), command="/proc/PID/statm of the master, 2 s after the last `run --all`",
            note="agents dial out: the master holds no channel of its own to any agent" + (f"; {_size_note(n)}" if _size_note(n) else ""),
        ))

        if watch:
            try:
                _watchers(cluster, profile, results, n, fleet.hosts)
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
                results.missing(f"watch_lag_{n}", f"{profile.watchers} Watch subscribers during a {n:,}-agent job",
                                "ms", str(exc), _target("watch_lag_ms", n))
            _killed_agent(cluster, results, n)
        marks = _offline_marks(cluster, log_offset)
        results.add(Figure(
            f"healthy_online_{n}", f"healthy agents never marked offline, {n:,} agents", "agents", [float(len(marks))],
            0.0, command="the master's log during this size: no 'agent sim-… is offline' line",
            note="overload may slow things down, never make a healthy agent offline",
            failure=f"{len(marks)} healthy agent(s) marked offline, e.g. {marks[0][-160:]}" if marks else "",
        ))
    finally:
        results.growth.append(row)
        fleet.stop()
        cluster.stop_master()


def _report(proc: subprocess.Popen[bytes], log: Any, timeout: float = 120.0) -> dict[str, Any]:
    """A watcher process's final JSON report; a RuntimeError naming its log if it gave none.

    (At 3,000 agents a watcher died without a report, and reading its empty
    output as a report crashed the whole benchmark with an IndexError.)
    """
    assert proc.stdout is not None
    out = proc.stdout.read()  # until the watcher exits
    proc.wait(timeout=timeout)
    lines = out.decode(errors="replace").strip().splitlines()
    if not lines:
        raise RuntimeError(f"a watcher process exited {proc.returncode} without a report (see {log})")
    return dict(json.loads(lines[-1]))


def _watchers(cluster: Cluster, profile: Any, results: Results, n: int, hosts: list[subprocess.Popen[bytes]]) -> None:
    count = profile.watchers
    progress(f"scale {n}: {count} Watch subscribers while `run --all` runs")
    per = min(WATCHERS_PER_PROCESS, count)
    procs = []
    remaining = count
    exe, env = bench_module("watchers", cluster.env)
    while remaining > 0:
        k = min(per, remaining)
        procs.append(spawn(
            [*exe, "--master", cluster.address, "--count", str(k), "--data-dir", str(cluster.master_dir),
             "--expect-finished", str(n), *cluster.flags],
            env=env, log=cluster.log(f"watchers-{len(procs)}"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        ))
        remaining -= k
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if json.loads(line or b"{}").get("event") != "ready":
                raise RuntimeError("a watcher process did not get its snapshot")
        assert cluster.master is not None
        parties = {"master": [cluster.master.pid], "simulator": [h.pid for h in hosts]}
        cpu_before = {k: sum(_cpu(pid) for pid in pids) for k, pids in parties.items()}
        begun = time.perf_counter()
        job_ms, job_failure = _run_all(cluster, n)
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()  # they stop once no more events arrive
        reports = [_report(proc, cluster.log(f"watchers-{i}")) for i, proc in enumerate(procs)]
        spent = time.perf_counter() - begun
        cpu = {k: sum(_cpu(pid) for pid in pids) - cpu_before[k] for k, pids in parties.items()}
        cpu["watchers"] = sum(r["cpu_s"] for r in reports)
        subscribers: list[list[list[Any]]] = [s for r in reports for s in r["subscribers"]]
    finally:
        stop_many(procs)

    # Periodic events (heartbeat batches) depend on when each subscriber started
    # and stopped listening: only those published during the job must match.
    everything: Counter[str] = Counter(key for s in subscribers for key, _, _ in s)
    jobs = Counter(key.split(":")[2] for key in everything if key.startswith("run:finished:"))
    job_id, _ = jobs.most_common(1)[0] if jobs else ("", 0)
    times = [when for s in subscribers for key, _, when in s if key.startswith("run:") and f":{job_id}:" in key]
    begin, end = (min(times), max(times)) if times else (0.0, 0.0)

    def during_job(key: str, when: float) -> bool:
        return not key.startswith("heartbeats:") or begin <= when <= end

    kept = [[(k, r, w) for k, r, w in s if during_job(k, w)] for s in subscribers]
    counts = [Counter(key for key, _, _ in s) for s in kept]
    union: Counter[str] = Counter()
    for c in counts:
        union |= c
    complete = all(c == union for c in counts)
    identical_order = complete and all([k for k, _, _ in s] == [k for k, _, _ in kept[0]] for s in kept)
    finished = sum(1 for key in union if key.startswith(f"run:finished:{job_id}:"))
    started = sum(1 for key in union if key.startswith(f"run:started:{job_id}:"))
    batches = sum(1 for key in union if key.startswith("heartbeats:"))
    lags = [max((recv - when for _, recv, when in s if when), default=0.0) * 1000 for s in subscribers]
    failure = ""
    if job_failure:
        failure = f"the job itself was incomplete: {job_failure}"
    elif not complete:
        short = [(i, sum((union - c).values())) for i, c in enumerate(counts) if c != union]
        example = next(iter(union - counts[short[0][0]]))
        failure = f"{len(short)} subscriber(s) missed events (e.g. #{short[0][0]}: {short[0][1]} missing, such as {example})"
    elif finished != n or started != n:
        failure = f"the job's events were incomplete: {started} started, {finished} finished of {n}"
    received = f"each got all {sum(union.values())} events" if complete else f"{sum(union.values())} distinct events in all"
    results.add(Figure(
        f"watch_lag_{n}", f"{count} Watch subscribers during a {n:,}-agent job: worst lag each", "ms", lags,
        _target("watch_lag_ms", n) if count >= 20 else None,
        command=f"python -m bench.watchers x {len(procs)} process(es) + `agent run --all true`",
        note=(
            f"{received} ({started} started, {finished} finished, {batches} heartbeat batches, agent updates)"
            f"{', in the same order' if identical_order else ''}; lag = arrival - the run's start/finish time; "
            f"the job took {job_ms:.0f} ms; CPU s over the {spent:.1f} s until the last event: "
            + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
        ),
        failure=failure,
    ))
