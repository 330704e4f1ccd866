"""Reading an agent's ``Facts`` message: the figures operators see, one home for the CLI and the console.

A fact the agent never reported is ``None`` here (an agent started with
``--no-facts``, or one older than facts), shown as ``-``, never as 0 %.
"""

from __future__ import annotations

from typing import Any

#: Like k9s: green up to WARN_PERCENT, yellow above it, red above HIGH_PERCENT.
WARN_PERCENT = 70.0
HIGH_PERCENT = 90.0

_SCALARS = (
    "cpus", "load1", "load5", "load15", "mem_total", "mem_available",
    "disk_total", "disk_used", "uptime_s", "kernel", "os", "arch",
)


def merge(into: Any, changes: Any) -> bool:
    """Apply the fields present in ``changes`` (a beat's diff) to ``into``; True if any."""
    if changes is None:
        return False
    present = changes.ListFields()
    for descriptor, value in present:
        if descriptor.name == "addresses":
            del into.addresses[:]
            into.addresses.extend(value)
        else:
            setattr(into, descriptor.name, value)
    return bool(present)


def _has(facts: Any, name: str) -> bool:
    return facts is not None and facts.HasField(name)


def load_per_cpu(facts: Any) -> float | None:
    """The 1-minute load divided by the CPU count (1.0: every CPU busy)."""
    if not (_has(facts, "load1") and _has(facts, "cpus")) or not facts.cpus:
        return None
    return float(facts.load1) / facts.cpus


def mem_percent(facts: Any) -> float | None:
    if not (_has(facts, "mem_total") and _has(facts, "mem_available")) or not facts.mem_total:
        return None
    return 100.0 * (1 - facts.mem_available / facts.mem_total)


def disk_percent(facts: Any) -> float | None:
    if not (_has(facts, "disk_total") and _has(facts, "disk_used")) or not facts.disk_total:
        return None
    return 100.0 * facts.disk_used / facts.disk_total


def grade(percent: float | None) -> str:
    """``ok``, ``warn`` (above 70 %), ``high`` (above 90 %), or ``""`` when unknown."""
    if percent is None:
        return ""
    if percent > HIGH_PERCENT:
        return "high"
    if percent > WARN_PERCENT:
        return "warn"
    return "ok"


def percent_text(percent: float | None) -> str:
    return "-" if percent is None else f"{percent:.0f}%"


def load_text(facts: Any) -> str:
    """``0.42`` (1-minute load), or ``-``."""
    return f"{facts.load1:.2f}" if _has(facts, "load1") else "-"


def size_text(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def uptime_text(seconds: int) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m"


def as_dict(facts: Any) -> dict[str, Any]:
    """The facts for ``--json``: reported ones only, plus the derived percentages."""
    out: dict[str, Any] = {name: getattr(facts, name) for name in _SCALARS if _has(facts, name)}
    if facts is not None and facts.addresses:
        out["addresses"] = list(facts.addresses)
    for name, value in (("load_per_cpu", load_per_cpu(facts)), ("mem_percent", mem_percent(facts)),
                        ("disk_percent", disk_percent(facts))):
        if value is not None:
            out[name] = round(value, 2 if name == "load_per_cpu" else 1)
    return out


def detail_rows(facts: Any) -> list[tuple[str, str]]:
    """(label, text) for every reported fact, in reading order; texts are not escaped."""
    rows: list[tuple[str, str]] = []
    if _has(facts, "cpus"):
        rows.append(("CPUs", str(facts.cpus)))
    if _has(facts, "load1"):
        per = load_per_cpu(facts)
        per_text = f" ({per:.2f} per CPU)" if per is not None else ""
        rows.append(("Load", f"{facts.load1:.2f} {facts.load5:.2f} {facts.load15:.2f}{per_text}"))
    if _has(facts, "mem_total"):
        used = facts.mem_total - facts.mem_available
        rows.append(("Memory", f"{size_text(used)} used of {size_text(facts.mem_total)} ({percent_text(mem_percent(facts))})"))
    if _has(facts, "disk_total"):
        rows.append(("Disk /", f"{size_text(facts.disk_used)} used of {size_text(facts.disk_total)} ({percent_text(disk_percent(facts))})"))
    if _has(facts, "uptime_s"):
        rows.append(("Uptime", uptime_text(facts.uptime_s)))
    for label, name in (("Kernel", "kernel"), ("OS name", "os"), ("Arch", "arch")):
        if _has(facts, name):
            rows.append((label, getattr(facts, name)))
    if facts is not None and facts.addresses:
        rows.append(("Addresses", ", ".join(facts.addresses)))
    return rows
