"""Facts about the agent's machine, read from ``/proc`` and ``os`` (no dependency).

Agents report the slow facts (kernel, OS, architecture, CPU count, addresses)
once at registration and the fast-moving ones (load, memory, disk, uptime)
only when they changed, at most every :data:`FAST_INTERVAL_S`: at 1,000
agents a fact that changes every beat would cost the master a write per beat.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

FAST_INTERVAL_S = 15.0
# Every so often a beat carries every fact again: a master restarted from disk
# holds none until then (the agent does not register again), and nothing drifts.
FULL_EVERY_S = 600.0

# A change smaller than this is noise, not news: load is rounded to 2
# decimals, memory and disk to whole per-mille of their total.
_LOAD_DIGITS = 2


@dataclass(frozen=True)
class Facts:
    cpus: int = 0
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    mem_total: int = 0
    mem_available: int = 0
    disk_total: int = 0
    disk_used: int = 0
    uptime_s: int = 0
    kernel: str = ""
    os: str = ""
    arch: str = ""
    addresses: tuple[str, ...] = field(default_factory=tuple)

    @property
    def mem_percent(self) -> float:
        return 100.0 * (1 - self.mem_available / self.mem_total) if self.mem_total else 0.0

    @property
    def disk_percent(self) -> float:
        return 100.0 * self.disk_used / self.disk_total if self.disk_total else 0.0

    @property
    def load_per_cpu(self) -> float:
        return self.load[0] / self.cpus if self.cpus else 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _meminfo(proc: Path) -> tuple[int, int]:
    values: dict[str, int] = {}
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return 0, 0
    return values.get("MemTotal", 0), values.get("MemAvailable", 0)


def _uptime(proc: Path) -> int:
    try:
        return int(float((proc / "uptime").read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return 0


def _os_name(etc: Path) -> str:
    try:
        for line in (etc / "os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.partition("=")[2].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def _addresses() -> tuple[str, ...]:
    # getaddrinfo on our own hostname needs no new dependency and no root;
    # loopback is left out because it tells an operator nothing.
    found: set[str] = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            address = str(info[4][0])
            if not address.startswith(("127.", "::1")):
                found.add(address)
    except OSError:
        pass
    return tuple(sorted(found))


def read_facts(*, proc: Path = Path("/proc"), etc: Path = Path("/etc"), root: str = "/") -> Facts:
    """Everything at once (registration); cheap enough to call every 15 s."""
    mem_total, mem_available = _meminfo(proc)
    try:
        st = os.statvfs(root)
        disk_total = st.f_blocks * st.f_frsize
        disk_used = (st.f_blocks - st.f_bfree) * st.f_frsize
    except OSError:
        disk_total = disk_used = 0
    try:
        load = tuple(round(x, _LOAD_DIGITS) for x in os.getloadavg())
    except OSError:
        load = (0.0, 0.0, 0.0)
    return Facts(
        cpus=os.cpu_count() or 0,
        load=load,  # type: ignore[arg-type]
        mem_total=mem_total,
        mem_available=mem_available,
        disk_total=disk_total,
        disk_used=disk_used,
        uptime_s=_uptime(proc),
        kernel=platform.release(),
        os=_os_name(etc),
        arch=platform.machine(),
        addresses=_addresses(),
    )


def changed(old: Facts | None, new: Facts) -> Mapping[str, object]:
    """The facts that differ in a way worth sending (everything when ``old`` is None).

    Uptime always moves, so it only travels along with another change.
    """
    if old is None:
        return new.as_dict()
    diff: dict[str, object] = {}
    for name, value in new.as_dict().items():
        if name == "uptime_s":
            continue
        if name in ("mem_available", "disk_used"):
            total = new.mem_total if name == "mem_available" else new.disk_total
            if total and abs(int(value) - int(getattr(old, name))) * 1000 < total:  # type: ignore[call-overload]
                continue
        if value != getattr(old, name):
            diff[name] = value
    if diff:
        diff["uptime_s"] = new.uptime_s
    return diff


def as_proto(changes: Mapping[str, object]) -> Any:
    """``changes`` (from :func:`changed`) as a ``Facts`` message: only those fields present."""
    from sloth_core.proto import sloth_pb2 as pb

    message = pb.Facts()
    for name, value in changes.items():
        if name == "load":
            message.load1, message.load5, message.load15 = value  # type: ignore[misc]
        elif name == "addresses":
            message.addresses.extend(value)  # type: ignore[arg-type]
        else:
            setattr(message, name, value)
    return message


class FactsReporter:
    """What this agent tells the master about its machine, and when.

    :meth:`hello` gives every fact (registration); :meth:`for_beat` gives only
    what changed since the master last heard, reading the machine at most
    every :data:`FAST_INTERVAL_S`, or ``None`` when there is nothing to say.
    A beat that fails leaves its changes unsent: the next read offers them again.
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        interval_s: float = FAST_INTERVAL_S,
        read: Callable[[], Facts] = read_facts,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self.interval_s = interval_s
        self._read = read
        self._clock = clock
        self._told: Facts | None = None  # what the master holds
        self._read_at = float("-inf")
        self._full_at = float("-inf")
        self._offered: Facts | None = None

    async def hello(self) -> Any:
        if not self.enabled:
            return None
        facts = await asyncio.to_thread(self._read)  # getaddrinfo may wait on a resolver
        self._read_at = self._full_at = self._clock()
        self._told = self._offered = facts
        return as_proto(changed(None, facts))

    async def for_beat(self) -> Any:
        if not self.enabled or self._told is None or self._clock() - self._read_at < self.interval_s:
            return None
        facts = await asyncio.to_thread(self._read)
        self._read_at = now = self._clock()
        if now - self._full_at >= FULL_EVERY_S:
            self._full_at = now
            diff = changed(None, facts)
        else:
            diff = changed(self._told, facts)
        if not diff:
            return None
        self._offered = replace(self._told, **diff)  # type: ignore[arg-type]
        return as_proto(diff)

    def delivered(self) -> None:
        """The last beat's facts reached the master."""
        self._told = self._offered
