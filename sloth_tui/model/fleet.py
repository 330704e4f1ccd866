"""The agent fleet as the console sees it: agents, marks, filter and sort."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from sloth_core import facts_view
from sloth_core.escape import shown
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.status_words import agent_word
from sloth_tui.model.connection import CONNECTING, DISCONNECTED, Connection

# Sorting by status puts the agents that need attention next to each other.
_STATUS_ORDER = {"online": 0, "offline": 1, "stopped": 2, "unknown": 3}


@dataclass
class Agent:
    """One agent, as last reported by the master."""

    name: str
    address: str = ""
    version: str = ""
    hostname: str = ""
    os: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    status: str = "unknown"
    registered_at: float = 0.0
    last_seen: float = 0.0
    # Facts (None: not reported). cpu is the 1-minute load per CPU, as a percentage.
    load: float | None = None
    cpu: float | None = None
    mem: float | None = None
    disk: float | None = None
    details: tuple[tuple[str, str], ...] = ()
    """Every reported fact as (label, escaped text), for the details screen."""

    @classmethod
    def from_pb(cls, info: pb.AgentInfo) -> Agent:
        return cls(**_facts_fields(info.facts), **dict(  # type: ignore[arg-type]
            name=info.name,
            # What an agent reports is shown escaped, never obeyed by the terminal.
            address=shown(info.address),
            version=shown(info.version),
            hostname=shown(info.hostname),
            os=shown(info.os),
            labels={shown(k): shown(v) for k, v in info.labels.items()},
            status=agent_word(info.status),
            registered_at=info.registered_at,
            last_seen=info.last_seen,
        ))

    def with_facts(self, facts: pb.Facts) -> Agent:
        return replace(self, **_facts_fields(facts))  # type: ignore[arg-type]

    @property
    def labels_text(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))


def _facts_fields(facts: pb.Facts) -> dict[str, object]:
    per_cpu = facts_view.load_per_cpu(facts)
    return {
        "load": float(facts.load1) if facts.HasField("load1") else None,
        "cpu": None if per_cpu is None else 100.0 * per_cpu,
        "mem": facts_view.mem_percent(facts),
        "disk": facts_view.disk_percent(facts),
        "details": tuple((label, shown(text)) for label, text in facts_view.detail_rows(facts)),
    }


# ------------------------------------------------------------------ filter

#: ``load>2``, ``mem>=80``, ``disk<10``, ``cpu>70``: a fact against a number.
_COMPARISON = re.compile(r"^(load|cpu|mem|disk)(>=|<=|>|<|=)(\d+(?:\.\d+)?)%?$", re.IGNORECASE)
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le, "=": operator.eq,
}


@dataclass(frozen=True)
class Comparison:
    """One ``fact OP number`` term; an agent that did not report the fact never matches."""

    fact: str
    op: str
    value: float

    def matches(self, agent: Agent) -> bool:
        actual = getattr(agent, self.fact)
        return actual is not None and _OPERATORS[self.op](actual, self.value)


@dataclass(frozen=True)
class Filter:
    """A parsed filter: every term must match.

    ``status:offline`` matches the status by prefix, ``label:role=web`` a
    label exactly (``label:role`` any value), ``load>2`` (1-minute load),
    ``cpu>70`` (load per CPU, %), ``mem>80`` and ``disk>90`` (% used)
    compare a fact (also ``<``, ``>=``, ``<=``, ``=``), anything else is a
    substring of the name, address, hostname, version or labels
    (case-insensitive).
    """

    text: str = ""
    statuses: tuple[str, ...] = ()
    labels: tuple[tuple[str, str | None], ...] = ()
    words: tuple[str, ...] = ()
    comparisons: tuple[Comparison, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Filter:
        statuses: list[str] = []
        labels: list[tuple[str, str | None]] = []
        words: list[str] = []
        comparisons: list[Comparison] = []
        for term in text.split():
            key, sep, value = term.partition(":")
            compared = _COMPARISON.match(term)
            if compared:
                fact, op, number = compared.groups()
                comparisons.append(Comparison(fact.lower(), op, float(number)))
            elif sep and key.lower() == "status" and value:
                statuses.append(value.lower())
            elif sep and key.lower() in ("label", "l") and value:
                name, eq, wanted = value.partition("=")
                labels.append((name, wanted if eq else None))
            else:
                words.append(term.lower())
        return cls(text.strip(), tuple(statuses), tuple(labels), tuple(words), tuple(comparisons))

    def __bool__(self) -> bool:
        return bool(self.statuses or self.labels or self.words or self.comparisons)

    def matches(self, agent: Agent) -> bool:
        if any(not agent.status.startswith(s) for s in self.statuses):
            return False
        if not all(c.matches(agent) for c in self.comparisons):
            return False
        for name, wanted in self.labels:
            if name not in agent.labels:
                return False
            if wanted is not None and agent.labels[name] != wanted:
                return False
        if self.words:
            haystack = " ".join(
                (agent.name, agent.address, agent.hostname, agent.version, agent.labels_text)
            ).lower()
            return all(word in haystack for word in self.words)
        return True


# ------------------------------------------------------------------ sort

SORT_COLUMNS = ("name", "status", "address", "version", "last_seen", "running", "cpu", "mem", "disk")


def _sort_key(column: str, running: Callable[[str], int]) -> Callable[[Agent], Any]:
    if column == "status":
        return lambda a: (_STATUS_ORDER.get(a.status, 9), a.name)
    if column == "address":
        return lambda a: (a.address, a.name)
    if column == "version":
        return lambda a: (a.version, a.name)
    if column == "last_seen":
        # Most recently seen first.
        return lambda a: (-a.last_seen, a.name)
    if column == "running":
        return lambda a: (-running(a.name), a.name)
    if column in ("cpu", "mem", "disk"):
        # The busiest first, as k9s sorts; agents without the fact last.
        return lambda a: (getattr(a, column) is None, -(getattr(a, column) or 0.0), a.name)
    return lambda a: a.name


@dataclass
class FleetChanges:
    """What one batch of events changed, so the table can update just that."""

    updated: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.updated or self.removed)

    def merge(self, other: FleetChanges) -> None:
        self.updated |= other.updated
        self.removed |= other.removed


class FleetModel:
    """Agents by name, plus what the operator did to the view of them."""

    def __init__(self) -> None:
        self.agents: dict[str, Agent] = {}
        self.marks: set[str] = set()
        self.filter = Filter()
        self.sort_column = "name"
        self.sort_reverse = False
        # Runs in flight, tracked from the Watch feed (snapshot, started, finished).
        self.active_runs: dict[str, pb.RunInfo] = {}
        self._running: dict[str, int] = {}

    # -------------------------------------------------------------- feed

    def replace_all(self, agents: Iterable[Agent]) -> FleetChanges:
        """Apply a snapshot: what is not in it is gone."""
        fresh = {a.name: a for a in agents}
        changes = FleetChanges(removed=set(self.agents) - set(fresh))
        for name in changes.removed:
            self._forget(name)
        for agent in fresh.values():
            changes.merge(self.upsert(agent))
        return changes

    def upsert(self, agent: Agent) -> FleetChanges:
        old = self.agents.get(agent.name)
        self.agents[agent.name] = agent
        if old == agent:
            return FleetChanges()
        return FleetChanges(updated={agent.name})

    def heartbeats(self, names: Iterable[str], at: float, facts: Iterable[pb.AgentFacts] = ()) -> FleetChanges:
        """Agents the master heard from at ``at``: their "last seen" moves on, their facts too."""
        changed = set()
        for item in facts:
            agent = self.agents.get(item.name)
            if agent is not None:
                fresh = agent.with_facts(item.facts)
                if fresh != agent:
                    self.agents[item.name] = fresh
                    changed.add(item.name)
        for name in names:
            agent = self.agents.get(name)
            if agent is not None and agent.last_seen < at:
                agent.last_seen = at
                changed.add(name)
        return FleetChanges(updated=changed)

    def remove(self, name: str) -> FleetChanges:
        if name not in self.agents:
            return FleetChanges()
        self._forget(name)
        return FleetChanges(removed={name})

    def _forget(self, name: str) -> None:
        self.agents.pop(name, None)
        self.marks.discard(name)

    def set_active_runs(self, runs: Iterable[pb.RunInfo]) -> FleetChanges:
        """Replace the runs in flight with a snapshot's."""
        before = dict(self._running)
        self.active_runs = {run.run_id: run for run in runs}
        self._recount()
        touched = {n for n in set(before) | set(self._running) if before.get(n) != self._running.get(n)}
        return FleetChanges(updated=touched & set(self.agents))

    def run_started(self, run: pb.RunInfo) -> FleetChanges:
        if run.run_id in self.active_runs:
            return FleetChanges()
        self.active_runs[run.run_id] = run
        self._running[run.agent] = self._running.get(run.agent, 0) + 1
        return self._running_changed(run.agent)

    def run_finished(self, run_id: str) -> FleetChanges:
        run = self.active_runs.pop(run_id, None)
        if run is None:
            return FleetChanges()
        agent = run.agent
        self._running[agent] -= 1
        if not self._running[agent]:
            del self._running[agent]
        return self._running_changed(agent)

    def _running_changed(self, agent: str) -> FleetChanges:
        if agent not in self.agents:
            return FleetChanges()
        return FleetChanges(updated={agent})

    def _recount(self) -> None:
        self._running = {}
        for run in self.active_runs.values():
            self._running[run.agent] = self._running.get(run.agent, 0) + 1

    def running(self, name: str) -> int:
        return self._running.get(name, 0)

    def active_run_of(self, name: str) -> pb.RunInfo | None:
        """The most recently started run in flight on agent ``name``."""
        runs = [r for r in self.active_runs.values() if r.agent == name]
        return max(runs, key=lambda r: (r.started_at, r.created_at), default=None)

    # -------------------------------------------------------------- view

    def set_filter(self, text: str) -> None:
        self.filter = Filter.parse(text)

    def sort_by(self, column: str) -> None:
        """Sort by ``column``; asking for the current column again reverses it."""
        if column not in SORT_COLUMNS:
            raise ValueError(f"unknown sort column {column!r}")
        if column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False

    def visible(self) -> list[str]:
        """Names of the agents that pass the filter, in display order."""
        agents: Iterable[Agent] = self.agents.values()
        if self.filter:
            agents = [a for a in agents if self.filter.matches(a)]
        key = _sort_key(self.sort_column, self.running)
        return [a.name for a in sorted(agents, key=key, reverse=self.sort_reverse)]

    def ordered(self, names: Iterable[str]) -> list[str]:
        """``names`` in display order (unknown names last, alphabetically)."""
        key = _sort_key(self.sort_column, self.running)
        known = [self.agents[n] for n in names if n in self.agents]
        unknown = sorted(n for n in names if n not in self.agents)
        return [a.name for a in sorted(known, key=key, reverse=self.sort_reverse)] + unknown

    # -------------------------------------------------------------- marks

    def toggle_mark(self, name: str) -> None:
        if name in self.marks:
            self.marks.discard(name)
        elif name in self.agents:
            self.marks.add(name)

    def counts(self) -> dict[str, int]:
        out = {"online": 0, "offline": 0, "stopped": 0, "unknown": 0}
        for agent in self.agents.values():
            out[agent.status] = out.get(agent.status, 0) + 1
        return out


def empty_message(fleet: FleetModel, conn: Connection) -> str:
    """Why the agent table has no row: nothing matches, no link to the master, or no agent yet."""
    if fleet.agents and fleet.filter:
        return f"No agent matches the filter “{fleet.filter.text}”. Esc clears it."
    if fleet.agents:
        return ""
    if conn.state == DISCONNECTED:
        reason = f": {conn.detail}" if conn.detail else ""
        return f"Not connected to {conn.target}{reason}. Retrying; agents appear once connected."
    if conn.state == CONNECTING:
        return f"Connecting to {conn.target}…"
    return "No agents yet. They appear here as they register (sloth-runner agent start --name NAME --master ADDRESS)."
