"""The master's settings and their defaults: the one home for both.

Imports nothing heavy, so the CLI's parser can show these defaults in
``--help`` without loading grpc.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sloth_core.bounds import DEFAULT_MAX_COMMAND_BYTES
from sloth_core.master.admission import DEFAULT_MAX_CALLS
from sloth_core.master.watch_budget import DEFAULT_WATCH_BUDGET_BYTES
from sloth_core.names import DEFAULT_MASTER_PORT
from sloth_core.storage.pending import DEFAULT_QUEUE_LIMIT

DEFAULT_BIND = "0.0.0.0"
DEFAULT_HEARTBEAT_S = 5.0
DEFAULT_RUNS_PER_AGENT = 1000
DEFAULT_OUTPUT_CAP = 1024 * 1024  # bytes kept per stream of one run


@dataclass
class MasterConfig:
    data_dir: Path
    bind: str = DEFAULT_BIND
    advertise: str = ""  # several masters: HOST[:PORT] where the others reach this one; "" works it out
    port: int = DEFAULT_MASTER_PORT
    join_port: int | None = None  # default: port + 1 (ephemeral when port is 0)
    insecure: bool = False
    heartbeat_interval_s: float = DEFAULT_HEARTBEAT_S
    output_cap: int = DEFAULT_OUTPUT_CAP
    runs_per_agent: int = DEFAULT_RUNS_PER_AGENT
    log_file: str = ""  # recorded in master.json for `master status`; empty: stderr
    store: str = ""  # --store URL; empty: SQLite in data_dir
    history_queue: int = DEFAULT_QUEUE_LIMIT  # records kept for retry while the store fails
    max_command_bytes: int = DEFAULT_MAX_COMMAND_BYTES  # longest command accepted (UTF-8 bytes)
    watch_budget_bytes: int = DEFAULT_WATCH_BUDGET_BYTES  # output held for all Watch subscribers
    max_calls: int = DEFAULT_MAX_CALLS  # operator calls in flight before "master busy"
