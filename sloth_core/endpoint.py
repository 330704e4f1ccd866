"""``master.json``: what a running master tells local clients about itself.

The master writes it into its data dir once it listens and removes it on a
clean stop; the CLI, the console and the demo read it to find the local
master (address, join port, whether it runs ``--insecure``, since when, and
where it logs). Client commands and ``agent start`` use the recorded address
when neither ``--master`` nor ``$SLOTH_RUNNER_MASTER`` is given.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

ENDPOINT_FILE = "master.json"


@dataclass(frozen=True)
class MasterEndpoint:
    pid: int
    address: str
    port: int
    join_port: int | None
    insecure: bool
    version: str
    started_at: float = 0.0  # unix time the master began to listen
    log_file: str = ""  # its log file; empty when it logs to a terminal


def write_endpoint(data_dir: Path, endpoint: MasterEndpoint) -> None:
    """Replace the file atomically, readable by its owner only."""
    path = data_dir / ENDPOINT_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(endpoint), f)
    tmp.replace(path)


def read_endpoint(data_dir: Path) -> MasterEndpoint | None:
    """The local master's endpoint, or None when there is none (or it is unreadable)."""
    try:
        raw = json.loads((data_dir / ENDPOINT_FILE).read_text())
        return MasterEndpoint(
            pid=int(raw["pid"]),
            address=str(raw["address"]),
            port=int(raw["port"]),
            join_port=int(raw["join_port"]) if raw.get("join_port") else None,
            insecure=bool(raw.get("insecure")),
            version=str(raw.get("version", "")),
            started_at=float(raw.get("started_at") or 0.0),
            log_file=str(raw.get("log_file") or ""),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def live_endpoint(data_dir: Path) -> MasterEndpoint | None:
    """The endpoint of the master that uses ``data_dir``, if that process still runs.

    A master killed without a clean stop leaves its file behind; its pid
    then names no process (or, after a reboot, someone else's: only a
    sloth-runner process counts).
    """
    endpoint = read_endpoint(data_dir)
    if endpoint is None or not _is_running_master(endpoint.pid):
        return None
    return endpoint


def local_master_address(data_dir: Path) -> str | None:
    """The address the local master with ``data_dir`` recorded, if it runs."""
    endpoint = live_endpoint(data_dir)
    return endpoint.address if endpoint is not None else None


def _is_running_master(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: not the master we recorded
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no /proc to ask: trust the file
    return b"sloth_core" in cmdline or b"sloth-runner" in cmdline


def remove_endpoint(data_dir: Path) -> None:
    (data_dir / ENDPOINT_FILE).unlink(missing_ok=True)
