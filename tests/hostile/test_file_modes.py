"""History and logs are the owner's alone (issue 10, item 2).

master.db and its -wal/-shm, and the daemons' logs, hold every command and
its output: they are created 0600 and the data dir 0700; a data dir that
others can read is reported when the master starts.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.fleet import Fleet, wait_for


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_history_files_are_private_and_a_shared_data_dir_is_reported(fleet: Fleet, tmp_path: Path) -> None:
    data_dir = tmp_path / "shared-data"
    data_dir.mkdir()
    data_dir.chmod(0o755)
    fleet.data_dir = data_dir
    master = fleet.start_master()
    wait_for(lambda: "open to other users" in master.text(), what="the data dir warning")
    warning = next(ln for ln in master.text().splitlines() if "open to other users" in ln)
    assert str(data_dir) in warning and "0755" in warning and f"chmod 700 {data_dir}" in warning

    token = fleet.cli("master", "token", "--data-dir", str(data_dir)).stdout.decode().strip()
    fleet.start_agent("a1", "--token", token)
    result = fleet.cli("agent", "run", "a1", "echo secret", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr.decode()
    for name in ("master.db", "master.db-wal", "master.db-shm"):
        assert mode(data_dir / name) == 0o600, name


def test_a_new_data_dir_is_0700_and_an_old_wide_database_is_tightened(fleet: Fleet, tmp_path: Path) -> None:
    import sqlite3

    old = tmp_path / "old"
    old.mkdir(mode=0o700)
    sqlite3.connect(old / "master.db").close()
    (old / "master.db").chmod(0o644)  # as versions before this one left it
    fleet.data_dir = old
    fleet.start_master()
    assert mode(old / "master.db") == 0o600

    fresh = tmp_path / "fresh" / "master"
    other = Fleet(home=tmp_path / "home2", data_dir=fresh)
    other.home.mkdir()
    try:
        other.start_master()
        assert mode(fresh) == 0o700
        assert mode(fresh / "master.db") == 0o600
    finally:
        other.close()


def test_daemon_logs_are_created_0600_and_tightened(fleet: Fleet) -> None:
    log_dir = fleet.home / "log"
    log_dir.mkdir(mode=0o700)
    (log_dir / "master.log").write_text("an older master's log\n")
    (log_dir / "master.log").chmod(0o644)
    started = fleet.cli("master", "--daemon", "--bind", "127.0.0.1", "-p", "0", "--join-port", "0")
    assert started.returncode == 0, started.stderr.decode()
    try:
        assert mode(log_dir / "master.log") == 0o600
        assert mode(fleet.home / "master" / "master.db") == 0o600
        endpoint = json.loads((fleet.home / "master" / "master.json").read_text())
        assert endpoint["pid"]
    finally:
        stopped = fleet.cli("master", "stop")
        assert stopped.returncode == 0, stopped.stderr.decode()
