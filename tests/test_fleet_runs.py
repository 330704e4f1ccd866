"""Runs across the fleet: fan-out, targeting, cancel, timeout, lost agents, history."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.fleet import EXE, Fleet, wait_for

pytestmark = pytest.mark.timeout(120)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def pids_from(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def runs(fleet: Fleet, *args: str) -> list[dict[str, object]]:
    result = fleet.cli("runs", "list", "--json", *args, *fleet.client_flags())
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


@pytest.fixture
def three(fleet: Fleet) -> Fleet:
    fleet.start_master()
    fleet.start_agent("web-1", "--label", "role=web")
    fleet.start_agent("web-2", "--label", "role=web")
    fleet.start_agent("db-1", "--label", "role=db")
    return fleet


def test_fan_out_with_mixed_exit_codes(three: Fleet) -> None:
    command = 'echo "hi from $SLOTH_AGENT"; [ "$SLOTH_AGENT" = db-1 ] && exit 4; exit 0'
    result = three.cli("agent", "run", "web-1,web-2,db-1", command, "--summary", *three.client_flags())
    assert result.returncode == 1
    out, err = result.stdout.decode(), result.stderr.decode()
    assert sorted(out.splitlines()) == sorted(f"{name:<5} | hi from {name}" for name in ("web-1", "web-2", "db-1"))
    # One compact table on stderr, never a box per agent; the count is the last line.
    assert "Command Execution Result" not in err
    table = {line.split()[0]: line.split() for line in err.splitlines() if line.split()[:1] in (["web-1"], ["web-2"], ["db-1"])}
    assert table["db-1"][1:3] == ["failed", "4"] and table["web-1"][1:3] == ["succeeded", "0"]
    assert err.rstrip().splitlines()[-1] == "2 succeeded, 1 failed, 0 rejected"
    assert three.cli("agent", "run", "web-*", command, *three.client_flags()).returncode == 0


def test_lines_of_agents_never_interleave(three: Fleet) -> None:
    command = "for i in $(seq 200); do printf 'part-%s-' $i; printf 'rest-of-line-%s\\n' $i; done"
    result = three.cli("agent", "run", "--all", command, "--json", *three.client_flags())
    assert result.returncode == 0
    rows = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert {r["agent"] for r in rows} == {"web-1", "web-2", "db-1"}
    plain = three.cli("agent", "run", "--all", command, *three.client_flags()).stdout.decode()
    prefixed = [ln for ln in plain.splitlines() if " | " in ln]
    assert len(prefixed) == 600
    for line in prefixed:
        _name, _, text = line.partition(" | ")
        i = text.split("-")[1]
        assert text == f"part-{i}-rest-of-line-{i}", line


def test_glob_and_label_targets_and_rejected_offline(three: Fleet) -> None:
    by_glob = three.cli("agent", "run", "web-*", "echo hi", "--json", *three.client_flags())
    assert {json.loads(x)["agent"] for x in by_glob.stdout.decode().splitlines()} == {"web-1", "web-2"}
    by_label = three.cli("agent", "run", "--label", "role=db", "echo hi", "--json", *three.client_flags())
    assert [json.loads(x)["agent"] for x in by_label.stdout.decode().splitlines()] == ["db-1"]
    db = next(p for p in three.procs if p.name == "agent-db-1")
    db.kill()
    three.wait_status("db-1", "offline")
    result = three.cli("agent", "run", "web-1,db-1,nope", "echo hi", *three.client_flags())
    assert result.returncode == 1
    err = result.stderr.decode()
    assert err.rstrip().splitlines()[-1] == "1 succeeded, 0 failed, 2 rejected"
    assert "agent 'db-1' is offline" in err and "unknown agent 'nope'" in err
    rejected = runs(three, "--status", "rejected")
    assert {r["agent"] for r in rejected} == {"db-1", "nope"}


def _start_long_run(fleet: Fleet, tmp: Path, *extra: str) -> tuple[subprocess.Popen[bytes], list[int]]:
    marker = tmp / "pids"
    command = f"sleep 300 & echo $! >> {marker}; echo $$ >> {marker}; echo started; wait"
    cli = subprocess.Popen(
        [*EXE, "agent", "run", *extra, command, *fleet.client_flags()],
        env=fleet.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    pids = wait_for(lambda: len(pids_from(marker)) >= 2 * max(1, extra.count("--all") * 3) and pids_from(marker),
                    what="the remote command to start")
    return cli, list(pids)  # type: ignore[arg-type]


def test_a_long_commands_output_is_live_while_quick_ones_come_back_whole(three: Fleet) -> None:
    # Quick runs travel whole on the agent's session; a long one must not
    # hold its output back until it ends (it switches to a Report call).
    cli = subprocess.Popen(
        [*EXE, "agent", "run", "web-1", "--no-progress", "echo first; sleep 300", *three.client_flags()],
        env=three.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert cli.stdout is not None
        assert cli.stdout.readline() == b"first\n"  # while the command still runs
        assert cli.poll() is None
        assert [r["status"] for r in runs(three, "--agent", "web-1", "--limit", "1")] == ["running"]
    finally:
        cli.send_signal(signal.SIGINT)
        cli.communicate(timeout=30)
    quick = three.cli("agent", "run", "--all", "echo quick-$SLOTH_AGENT", *three.client_flags())
    assert quick.returncode == 0, quick.stderr.decode()
    lines = sorted(quick.stdout.decode().splitlines())
    assert lines == ["db-1  | quick-db-1", "web-1 | quick-web-1", "web-2 | quick-web-2"], lines


def test_ctrl_c_cancels_the_job_and_kills_remote_process_groups(three: Fleet, tmp_path: Path) -> None:
    cli, pids = _start_long_run(three, tmp_path, "--all")
    cli.send_signal(signal.SIGINT)
    _out, err = cli.communicate(timeout=30)
    assert cli.returncode == 130, err.decode()
    for pid in pids:
        wait_for(lambda pid=pid: gone(pid), what=f"remote pid {pid} to be killed")
    assert {r["status"] for r in runs(three, "--limit", "3")} == {"cancelled"}


def test_runs_cancel_from_another_terminal(three: Fleet, tmp_path: Path) -> None:
    cli, pids = _start_long_run(three, tmp_path, "web-1")
    run = wait_for(lambda: [r for r in runs(three, "--status", "running")], what="a running run")
    job_id = run[0]["job_id"]  # type: ignore[index]
    cancelled = three.cli("runs", "cancel", str(job_id), *three.client_flags())
    assert cancelled.returncode == 0 and b"cancelling 1 run" in cancelled.stdout
    _, err = cli.communicate(timeout=30)
    assert cli.returncode == 130, err.decode()
    assert all(wait_for(lambda pid=pid: gone(pid)) for pid in pids)
    assert runs(three, "--limit", "1")[0]["status"] == "cancelled"


def test_killed_cli_cancels_its_runs(three: Fleet, tmp_path: Path) -> None:
    cli, pids = _start_long_run(three, tmp_path, "db-1")
    cli.kill()
    cli.wait()
    for pid in pids:
        wait_for(lambda pid=pid: gone(pid), what="the orphaned remote command to be killed")
    wait_for(lambda: runs(three, "--limit", "1")[0]["status"] == "cancelled", what="the run to be recorded cancelled")


def test_timeout_kills_and_exits_124(three: Fleet) -> None:
    result = three.cli("agent", "run", "web-1", "echo before; sleep 30", "--timeout", "0.5", *three.client_flags())
    assert result.returncode == 124
    assert result.stdout == b"before\n" and b"timed out" in result.stderr
    assert runs(three, "--limit", "1")[0]["status"] == "timed_out"


def test_agent_killed_mid_run_is_lost(three: Fleet, tmp_path: Path) -> None:
    cli, pids = _start_long_run(three, tmp_path, "web-2")
    agent = next(p for p in three.procs if p.name == "agent-web-2")
    try:
        agent.kill()
        _, err = cli.communicate(timeout=30)
        assert cli.returncode == 255
        assert b"lost contact with agent 'web-2'" in err
        assert runs(three, "--limit", "1")[0]["status"] == "lost"
        # Its process helper outlives it just long enough to kill the run's
        # process groups: nothing a runner started is left unaccounted for.
        for pid in pids:
            wait_for(lambda pid=pid: gone(pid), timeout=5, what="the dead agent's command to be killed")
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def test_master_killed_mid_run_agent_kills_group_and_run_is_lost(three: Fleet, tmp_path: Path) -> None:
    cli, pids = _start_long_run(three, tmp_path, "web-1")
    master = next(p for p in three.procs if p.name == "master")
    master.kill()
    cli.wait(timeout=30)
    for pid in pids:
        wait_for(lambda pid=pid: gone(pid), timeout=20, what="the agent to kill the orphaned group")
    three.start_master(port=three.master_port)
    last = runs(three, "--limit", "1")[0]
    assert last["status"] == "lost" and "master stopped" in str(last["error"])


def test_large_output_streams_intact_with_bounded_memory(three: Fleet) -> None:
    size = 100 * 1024 * 1024
    command = f"head -c {size} /dev/urandom | tee >(sha256sum >&2)"
    cli = subprocess.Popen(
        [*EXE, "agent", "run", "web-1", command, "--raw", *three.client_flags()],
        env=three.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    digest = hashlib.sha256()
    received = 0
    peak: dict[str, int] = {}
    assert cli.stdout is not None
    while chunk := cli.stdout.read(1 << 20):
        digest.update(chunk)
        received += len(chunk)
        for proc in [*three.procs, None]:
            pid = cli.pid if proc is None else proc.pid
            name = "cli" if proc is None else proc.name
            peak[name] = max(peak.get(name, 0), rss_kib(pid))
    err = cli.stderr.read().decode() if cli.stderr else ""
    assert cli.wait() == 0, err
    assert received == size
    assert digest.hexdigest() in err
    for name in ("cli", "master", "agent-web-1"):
        assert peak[name] < 200 * 1024, f"{name} peaked at {peak[name]} KiB"
    info = runs(three, "--limit", "1")[0]
    assert info["stdout_bytes"] == size and info["dropped_bytes"] > 0


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def test_history_show_follow_and_truncation(fleet: Fleet, tmp_path: Path) -> None:
    fleet.start_master("--output-cap", "4096")
    fleet.start_agent("a1")
    done = fleet.cli("agent", "run", "a1", "seq 1 5000; echo oops >&2; exit 7", *fleet.client_flags())
    assert done.returncode == 7
    info = runs(fleet, "--agent", "a1")[0]
    assert info["status"] == "failed" and info["exit_code"] == 7 and info["dropped_bytes"] > 0
    shown = fleet.cli("runs", "show", str(info["run_id"]), *fleet.client_flags())
    text = shown.stdout.decode()
    assert text.startswith("1\n") and text.count("\n1\n") == 0 and "\n5000\n" in text  # head and tail kept
    assert "bytes not kept in history" in shown.stderr.decode() and "output truncated" in shown.stderr.decode()
    assert "oops" in shown.stderr.decode()
    as_json = json.loads(fleet.cli("runs", "show", str(info["run_id"]), "--json", *fleet.client_flags()).stdout)
    assert as_json["truncated"] is True and as_json["stderr"] == "oops\n"

    # --follow attaches to a live run and streams it to its end.
    gate = tmp_path / "gate"
    live = subprocess.Popen(
        [*EXE, "agent", "run", "a1", f"echo first; while [ ! -e {gate} ]; do sleep 0.05; done; echo second",
         *fleet.client_flags()], env=fleet.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    running = wait_for(lambda: runs(fleet, "--status", "running"), what="a running run")
    follower = subprocess.Popen(
        [*EXE, "runs", "show", str(running[0]["run_id"]), "--follow", "--raw", *fleet.client_flags()],  # type: ignore[index]
        env=fleet.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert follower.stdout is not None
    assert follower.stdout.readline() == b"first\n"
    gate.touch()
    rest, _ = follower.communicate(timeout=30)
    assert rest == b"second\n"
    live.communicate(timeout=30)

    # History survives a restart of the master.
    master = next(p for p in fleet.procs if p.name == "master")
    master.stop()
    fleet.start_master("--output-cap", "4096", port=fleet.master_port)
    again = runs(fleet, "--agent", "a1")
    assert {r["run_id"] for r in again} >= {info["run_id"]}
    assert b"oops" in fleet.cli("runs", "show", str(info["run_id"]), *fleet.client_flags()).stderr


def test_parallel_bound_and_history_retention(fleet: Fleet, tmp_path: Path) -> None:
    fleet.start_master("--runs-per-agent", "3")
    fleet.start_agent("a1")
    fleet.start_agent("a2")
    fleet.start_agent("a3")
    # With --parallel 1, no two runs overlap: each appends start/end markers in order.
    log = tmp_path / "order"
    command = f"echo start-$SLOTH_AGENT >> {log}; sleep 0.2; echo end-$SLOTH_AGENT >> {log}"
    result = fleet.cli("agent", "run", "--all", "--parallel", "1", command, *fleet.client_flags())
    assert result.returncode == 0, result.stdout.decode()
    lines = log.read_text().split()
    assert len(lines) == 6
    for i in range(0, 6, 2):
        assert lines[i].startswith("start-") and lines[i + 1] == "end-" + lines[i][6:]
    for _ in range(4):
        assert fleet.cli("agent", "run", "a1", "true", *fleet.client_flags()).returncode == 0
    kept = runs(fleet, "--agent", "a1", "--limit", "100")
    assert len(kept) == 3


def test_a_long_line_without_newline(fleet: Fleet) -> None:
    fleet.start_master()
    fleet.start_agent("a1")
    fleet.start_agent("a2")
    size = 10 * 1000 * 1000
    single = fleet.cli("agent", "run", "a1", f"head -c {size} /dev/zero | tr '\\0' x", "--raw", *fleet.client_flags())
    assert single.returncode == 0 and single.stdout == b"x" * size
    many = fleet.cli("agent", "run", "a1,a2", f"head -c {size} /dev/zero | tr '\\0' y", *fleet.client_flags())
    assert many.returncode == 0
    out = many.stdout.decode()
    for name in ("a1", "a2"):
        pieces = [ln.partition(" | ")[2] for ln in out.splitlines() if ln.startswith(f"{name} | ")]
        assert "".join(pieces) == "y" * size


def test_frozen_agent_mid_run_is_lost_within_10_s(three: Fleet, tmp_path: Path) -> None:
    cli, pids = _start_long_run(three, tmp_path, "web-1")
    agent = next(p for p in three.procs if p.name == "agent-web-1")
    os.kill(agent.pid, signal.SIGSTOP)
    try:
        _, err = cli.communicate(timeout=15)  # keepalive must notice within 10 s
        assert cli.returncode == 255
        assert b"lost contact with agent 'web-1'" in err
    finally:
        os.kill(agent.pid, signal.SIGCONT)
    # Thawed, the agent sees its master hung up and kills the orphaned group.
    for pid in pids:
        wait_for(lambda pid=pid: gone(pid), what="the thawed agent to kill the orphaned group")


def test_retention_never_prunes_a_run_in_flight(fleet: Fleet, tmp_path: Path) -> None:
    fleet.start_master("--runs-per-agent", "2")
    fleet.start_agent("a1")
    cli, _ = _start_long_run(fleet, tmp_path, "a1")
    long_run = wait_for(lambda: runs(fleet, "--status", "running"), what="the long run")[0]  # type: ignore[index]
    for _ in range(3):
        assert fleet.cli("agent", "run", "a1", "true", *fleet.client_flags()).returncode == 0
    assert long_run["run_id"] in {r["run_id"] for r in runs(fleet, "--agent", "a1", "--limit", "10")}
    shown = fleet.cli("runs", "show", str(long_run["run_id"]), *fleet.client_flags())
    assert b"started" in shown.stdout  # its stored output survived the pruning around it
    cli.send_signal(signal.SIGINT)
    cli.communicate(timeout=30)
