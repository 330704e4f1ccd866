"""``master.json``: what a running master tells local clients about itself.

The master writes it into its data dir once it listens and removes it on a
clean stop; the CLI, the console and the demo read it to find the local
master (address, join port, whether it runs ``--insecure``).
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
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def remove_endpoint(data_dir: Path) -> None:
    (data_dir / ENDPOINT_FILE).unlink(missing_ok=True)
