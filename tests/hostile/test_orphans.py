"""Issue 10 item 11: no orphans, however the agent dies.

A run's processes must not outlive their agent by more than 5 s, SIGKILL
included, even when they ignore SIGTERM; and an agent that starts up kills what
an earlier instance recorded and left behind, never a stranger whose pid
happens to match a record.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.fleet import EXE, Fleet, children, wait_for

pytestmark = pytest.mark.timeout(90)

DEATH_BUDGET_S = 5.0


def gone(pid: int) -> bool:
    """No such process, or a zombie (it runs nothing and holds nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(b")") + 2 :].split()[0] in (b"Z", b"X")


def start_time(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


def helper_of(agent_pid: int) -> int:
    for pid in children(agent_pid):
        if b"spawner.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise AssertionError(f"agent {agent_pid} has no process helper")


def start_agent(fleet: Fleet, data_dir: Path) -> int:
    return fleet.start_agent("a1", "--data-dir", str(data_dir)).pid


def start_run(fleet: Fleet, marker: Path, prefix: str = "") -> tuple[subprocess.Popen[bytes], list[int]]:
    """`sleep 300 & sleep 301; wait` on a1, returning both sleeps' pids."""
    command = (
        f"{prefix}sleep 300 & echo $! >> {marker}; "
        f"(echo $BASHPID >> {marker}; exec sleep 301); wait"
    )
    cli = subprocess.Popen(
        [*EXE, "agent", "run", "a1", command, *fleet.client_flags()],
        env=fleet.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )

    def pids() -> list[int]:
        found = [int(x) for x in marker.read_text().split()] if marker.exists() else []
        return found if len(found) == 2 else []

    found: list[int] = wait_for(pids, what="both sleeps to start")  # type: ignore[assignment]
    # The second pid is written just before its exec: wait until it is `sleep`.
    wait_for(lambda: all(b"sleep" in Path(f"/proc/{p}/cmdline").read_bytes() for p in found), what="exec")
    return cli, found


def assert_gone_within(pids: list[int], since: float, budget: float = DEATH_BUDGET_S) -> None:
    try:
        wait_for(lambda: all(gone(p) for p in pids), max(0.0, since + budget - time.monotonic()), "the pids to go")
    except TimeoutError:
        left = [p for p in pids if not gone(p)]
        raise AssertionError(f"still running {budget:g} s after the agent died: {left}") from None


def kill_leftovers(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("prefix", ["", "trap '' TERM; "], ids=["plain", "ignores-TERM"])
def test_sigkilled_agent_takes_its_commands_with_it(insecure_fleet: Fleet, tmp_path: Path, prefix: str) -> None:
    insecure_fleet.start_master()
    agent_pid = start_agent(insecure_fleet, tmp_path / "agent")
    cli, pids = start_run(insecure_fleet, tmp_path / "pids", prefix)
    try:
        os.kill(agent_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        assert_gone_within(pids, killed_at)
        _, err = cli.communicate(timeout=30)
        assert cli.returncode == 255, err.decode()
        assert b"lost contact with agent 'a1'" in err
    finally:
        kill_leftovers(pids)


def test_restarted_agent_kills_what_an_earlier_instance_left(insecure_fleet: Fleet, tmp_path: Path) -> None:
    insecure_fleet.start_master()
    data_dir = tmp_path / "agent"
    agent_pid = start_agent(insecure_fleet, data_dir)
    helper = helper_of(agent_pid)
    cli, pids = start_run(insecure_fleet, tmp_path / "pids", "trap '' TERM; ")
    try:
        # Both at once, as `kill -9 -- -PGID` or the OOM killer might: nobody is
        # left to clean up, so the commands survive this instance...
        os.kill(helper, signal.SIGKILL)
        os.kill(agent_pid, signal.SIGKILL)
        cli.communicate(timeout=30)
        assert not any(gone(p) for p in pids), "the scenario needs commands that outlived their agent"
        assert list((data_dir / "processes").iterdir()), "the group was not recorded"
        # ...and the next instance kills them before it takes runs.
        restarted = insecure_fleet.start_agent("a1", "--data-dir", str(data_dir))
        assert_gone_within(pids, time.monotonic())
        assert "left behind" in restarted.text()
        wait_for(lambda: not list((data_dir / "processes").iterdir()), what="the record to be dropped")
    finally:
        kill_leftovers(pids)


def test_a_record_never_kills_a_stranger_with_the_same_pid(insecure_fleet: Fleet, tmp_path: Path) -> None:
    insecure_fleet.start_master()
    data_dir = tmp_path / "agent"
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        # A record naming the stranger's pid as a group, as if an earlier agent
        # had started a group with that pid before it was reused.
        records = data_dir / "processes"
        records.mkdir(parents=True)
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        (records / f"{stranger.pid}-{start_time(stranger.pid) - 1}").write_text(boot)
        proc = insecure_fleet.start_agent("a1", "--data-dir", str(data_dir))
        assert stranger.poll() is None, "the agent killed a process it never started"
        assert "left behind" not in proc.text()
        assert not list(records.iterdir()), "a stale record was kept"
    finally:
        stranger.kill()
        stranger.wait()


def test_agent_stopped_normally_leaves_no_background_process(insecure_fleet: Fleet, tmp_path: Path) -> None:
    insecure_fleet.start_master()
    agent = insecure_fleet.start_agent("a1", "--data-dir", str(tmp_path / "agent"))
    marker = tmp_path / "pid"
    # The shell exits at once; its background child keeps running after the run ends.
    result = insecure_fleet.cli(
        "agent", "run", "a1", f"setsid sleep 300 > /dev/null 2>&1 & echo $! > {marker}", *insecure_fleet.client_flags()
    )
    assert result.returncode == 0, result.stderr.decode()
    pid = int(marker.read_text())
    try:
        assert not gone(pid)
        agent.stop()
        assert_gone_within([pid], time.monotonic())
    finally:
        kill_leftovers([pid])
