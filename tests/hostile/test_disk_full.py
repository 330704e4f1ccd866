"""A master whose data dir fills up loses no run it acknowledged (issue 10, item 1).

A small tmpfs is mounted as the master's data dir (root only: CI runs as
root), filled with a file while runs go on, then freed: every run must be in
`runs list` afterwards, even after a restart, and operators were told.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet import Fleet, wait_for

pytestmark = pytest.mark.timeout(120)

DISK_SIZE = "6m"
WARNING = "warning: history is not being saved: "


class DiskFleet(Fleet):
    """A fleet whose master keeps its data dir on the small disk."""

    def admin(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return self.cli(*args, "--data-dir", str(self.data_dir), timeout=timeout)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs the suite as root)")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0700", "tmpfs", str(mount_point)],
        capture_output=True, text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def disk_fleet(tmp_path: Path, small_disk: Path) -> Iterator[DiskFleet]:
    fleet = DiskFleet(home=tmp_path / "home", data_dir=small_disk / "master")
    fleet.home.mkdir()
    try:
        yield fleet
    finally:
        fleet.close()


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; returns it (delete it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1024 * 1024, 4096, 1):  # then what is left, in smaller pieces
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


def status_text(fleet: DiskFleet) -> str:
    result = fleet.admin("master", "status")
    return result.stdout.decode() + result.stderr.decode()


def run_ids(fleet: DiskFleet) -> dict[str, str]:
    import json

    result = fleet.admin("runs", "list", "--limit", "500", "--json")
    assert result.returncode == 0, result.stderr.decode()
    return {r["run_id"]: r["status"] for r in json.loads(result.stdout)}


def agent_run(fleet: DiskFleet, command: str) -> subprocess.CompletedProcess[bytes]:
    return fleet.admin("agent", "run", "a1", command, "--json")


def test_a_full_disk_loses_no_run_and_says_so(disk_fleet: DiskFleet, small_disk: Path) -> None:
    fleet = disk_fleet
    master = fleet.start_master()
    token = fleet.admin("master", "token").stdout.decode().strip()
    fleet.start_agent("a1", "--token", token)

    started: list[str] = []

    def run_ok(n: int) -> subprocess.CompletedProcess[bytes]:
        import json

        result = agent_run(fleet, f"echo run {n}")
        assert result.returncode == 0, result.stderr.decode()
        started.append(json.loads(result.stdout)["run_id"])
        return result

    for n in range(3):
        run_ok(n)
    filler = fill(small_disk)

    # The agents' heartbeats alone make the master write, and fail, soon.
    wait_for(lambda: "history is not being saved" in status_text(fleet), timeout=20,
             what="master status to say that history is not being saved")
    status = status_text(fleet)
    assert "database or disk is full" in status, status

    for n in range(3, 23):
        result = run_ok(n)  # runs keep working...
        warnings = [ln for ln in result.stderr.decode().splitlines() if ln.strip()]
        # ...and each says, in one line on stderr, that history is not being saved.
        assert len(warnings) == 1 and warnings[0].startswith(WARNING), warnings
        assert "database or disk is full" in warnings[0]
    # While the disk is full, `runs list` still shows every run (from the queue).
    assert set(started) <= set(run_ids(fleet))

    filler.unlink()
    wait_for(lambda: "history is being saved to" in status_text(fleet), timeout=20,
             what="master status to say that history is being saved again")
    result = run_ok(23)
    assert result.stderr.decode().strip() == ""

    # Stored, not just queued: a restarted master has all 24 runs.
    master.stop()
    text = master.text()
    assert text.count("history is not being saved") == 1, "one log line per episode, not one per record"
    assert "history is being saved again" in text
    assert "Traceback" not in text
    fleet.start_master()
    listed = run_ids(fleet)
    assert set(started) <= set(listed)
    assert all(listed[r] == "succeeded" for r in started), listed


def test_a_master_starting_on_a_full_disk_exits_with_one_clear_line(tmp_path: Path, small_disk: Path) -> None:
    fill(small_disk)
    fleet = Fleet(home=tmp_path / "home")
    fleet.home.mkdir()
    result = fleet.cli("master", "--bind", "127.0.0.1", "-p", "0", "--join-port", "0",
                       "--data-dir", str(small_disk / "master"), timeout=30)
    lines = [ln for ln in result.stderr.decode().splitlines() if ln.strip()]
    assert result.returncode == 1, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: cannot open the history store: ")
    assert "database or disk is full" in lines[0] or "No space left" in lines[0]


def test_new_runs_are_refused_when_only_run_records_fill_the_queue(disk_fleet: DiskFleet, small_disk: Path) -> None:
    fleet = disk_fleet
    fleet.start_master("--history-queue", "3")
    token = fleet.admin("master", "token").stdout.decode().strip()
    fleet.start_agent("a1", "--token", token)
    filler = fill(small_disk)
    wait_for(lambda: "history is not being saved" in status_text(fleet), timeout=20,
             what="master status to say that history is not being saved")

    accepted = [agent_run(fleet, f"echo {n}") for n in range(3)]
    assert [r.returncode for r in accepted] == [0, 0, 0]
    refused = agent_run(fleet, "echo one too many")
    lines = [ln for ln in refused.stderr.decode().splitlines() if ln.strip()]
    assert refused.returncode == 255, lines
    assert len(lines) == 1 and lines[0].startswith("error: history is not being saved: "), lines
    assert "database or disk is full" in lines[0] and "new runs are refused" in lines[0]
    assert "new runs are refused" in status_text(fleet)

    filler.unlink()
    wait_for(lambda: "history is being saved to" in status_text(fleet), timeout=20,
             what="the store to recover")
    assert agent_run(fleet, "echo back").returncode == 0
    assert len(run_ids(fleet)) == 4


async def test_a_certificate_authority_made_on_a_full_disk_is_one_clear_error(small_disk: Path) -> None:
    from sloth_core.errors import StorageError
    from sloth_core.security.signer import Signer

    fill(small_disk)
    signer = Signer()
    try:
        with pytest.raises(StorageError, match=r"cannot write the master's certificate authority in .*No space left on device"):
            await signer.create_pki(small_disk / "master")
    finally:
        await signer.close()
