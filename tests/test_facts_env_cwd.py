"""Operator depth: facts about every agent, and runs with --env and --cwd, across real processes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.fleet import Fleet
from tests.test_watch import admin_client, next_matching

pytestmark = pytest.mark.timeout(90)

GiB = 1024**3


def fake_proc(directory: Path, *, total: int, available: int) -> Path:
    """A /proc of our own: the agent reads memory from it (load and disk stay real)."""
    directory.mkdir(exist_ok=True)
    (directory / "meminfo").write_text(
        f"MemTotal:       {total // 1024} kB\nMemFree:        1 kB\nMemAvailable:   {available // 1024} kB\n"
    )
    (directory / "uptime").write_text("12345.67 100.00\n")
    return directory


def test_agent_get_and_list_wide_show_facts(fleet: Fleet, tmp_path: Path) -> None:
    proc = fake_proc(tmp_path / "proc", total=8 * GiB, available=2 * GiB)  # 75 % used
    fleet.start_master()
    fleet.start_agent("web-1", "--facts-proc", str(proc))
    fleet.start_agent("quiet-1", "--no-facts")

    detail = fleet.cli("agent", "get", "web-1", *fleet.client_flags()).stdout.decode()
    assert "Memory:" in detail and "6.0 GiB used of 8.0 GiB (75%)" in detail
    assert "Uptime:" in detail and "3h 25m" in detail
    for label in ("CPUs:", "Load:", "Disk /:", "Kernel:", "Arch:"):
        assert label in detail

    table = fleet.cli("agent", "list", "-o", "wide", *fleet.client_flags()).stdout.decode()
    header, *rows = table.splitlines()
    assert header.split()[-3:] == ["LOAD", "MEM%", "DISK%"]
    web = next(r for r in rows if r.startswith("web-1"))
    quiet = next(r for r in rows if r.startswith("quiet-1"))
    assert web.split()[-2] == "75%" and web.split()[-1].endswith("%")
    assert quiet.split()[-3:] == ["-", "-", "-"]  # no facts: not 0 %
    assert "LOAD" not in fleet.cli("agent", "list", *fleet.client_flags()).stdout.decode()

    listed = {a["name"]: a for a in json.loads(fleet.cli("agent", "list", "--json", *fleet.client_flags()).stdout)}
    facts = listed["web-1"]["facts"]
    assert facts["mem_total"] == 8 * GiB and facts["mem_percent"] == 75.0
    assert facts["cpus"] >= 1 and "load1" in facts and facts["disk_percent"] > 0
    assert listed["quiet-1"]["facts"] == {}


async def test_a_changed_fact_reaches_a_watch(fleet: Fleet, tmp_path: Path) -> None:
    proc = fake_proc(tmp_path / "proc", total=8 * GiB, available=6 * GiB)  # 25 %
    fleet.start_master()
    fleet.start_agent("web-1", "--facts-proc", str(proc), "--facts-interval", "0.5")
    async with admin_client(fleet) as client:
        stream = client.watch(include_output=False)
        snapshot = (await asyncio.wait_for(anext(stream), 10)).snapshot
        assert snapshot.agents[0].facts.mem_available == 6 * GiB

        fake_proc(proc, total=8 * GiB, available=GiB // 2)  # now 94 % used
        beat = await next_matching(
            stream,
            lambda e: e.HasField("heartbeats") and any(f.name == "web-1" for f in e.heartbeats.facts),
        )
        facts = next(f.facts for f in beat.heartbeats.facts if f.name == "web-1")
        assert facts.mem_available == GiB // 2
        assert facts.mem_total == 8 * GiB and facts.cpus >= 1  # all of them, not only the change
    detail = fleet.cli("agent", "get", "web-1", *fleet.client_flags()).stdout.decode()
    assert "(94%)" in detail


def test_env_and_cwd_reach_the_command(fleet: Fleet, tmp_path: Path) -> None:
    fleet.start_master()
    fleet.start_agent("web-1")
    app = tmp_path / "srv app"
    app.mkdir()
    result = fleet.cli(
        "agent", "run", "web-1", "--env", "RELEASE=42", "--env", "GREETING=hello world=yes",
        "--cwd", str(app), *fleet.client_flags(), "--", 'echo "$RELEASE|$GREETING|$PWD|$SLOTH_AGENT"',
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == f"42|hello world=yes|{app}|web-1\n"
    # Without them, the command starts where it always did, with no such variables.
    plain = fleet.cli("agent", "run", "web-1", *fleet.client_flags(), "--", 'echo "[$RELEASE]"; pwd')
    assert plain.stdout.decode().splitlines()[0] == "[]"
    assert plain.stdout.decode().splitlines()[1] != str(app)


def test_a_missing_cwd_fails_the_run_with_a_clear_reason(fleet: Fleet) -> None:
    fleet.start_master()
    fleet.start_agent("web-1")
    result = fleet.cli("agent", "run", "web-1", "--cwd", "/srv/no-such-dir", *fleet.client_flags(), "--", "echo ran")
    assert result.returncode != 0
    assert result.stdout == b""  # nothing ran
    err = result.stderr.decode()
    assert "no such directory on web-1: /srv/no-such-dir" in err
    assert "cd:" not in err and "bash" not in err


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--env", "SLOTH_RUNNER_TOKEN=x"], "--env cannot set SLOTH_RUNNER_TOKEN"),
        (["--env", "1BAD=x"], "is not a variable name"),
        (["--env", "NOEQUALS"], "expected KEY=VALUE"),
        (["--cwd", "relative/dir"], "--cwd must be an absolute directory"),
    ],
)
def test_bad_env_and_cwd_are_refused_before_anything_runs(fleet: Fleet, flags: list[str], said: str) -> None:
    if not fleet.procs:
        fleet.start_master()
        fleet.start_agent("web-1")
    result = fleet.cli("agent", "run", "web-1", *flags, *fleet.client_flags(), "--", "echo ran")
    assert result.returncode in (2, 255)
    assert result.stdout == b""
    err = result.stderr.decode().strip()
    assert said in err.splitlines()[-1] and "Traceback" not in err  # usage errors print the usage first
