"""The agent registry: who is out there, where, and whether it is alive.

In memory and authoritative; every change is written through to storage so
a restarted master knows its fleet. Liveness is decided by a sweeper (not a
read-time guess) so that "offline" is an event consoles can see.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import fields

from google.protobuf.message import DecodeError

from sloth_core import errors, facts_view
from sloth_core.master.events import EventBus
from sloth_core.names import close_names, is_glob
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.status_words import agent_word
from sloth_core.storage import AgentRecord, Storage

log = logging.getLogger(__name__)

MISSED_BEATS_OFFLINE = 3
# Idle beats cost the master ~0.3 ms each (grpc aio, measured with
# bench/shapes.py): the idle interval grows with the fleet so that all beats
# together stay near this many a second (1,000 agents: every 33 s; 10,000:
# every 333 s; 30 a second used 25 % less idle CPU than 50 at 1,000 agents). A killed agent is still noticed at once (its session's socket
# closes), a vanished host by the session's keepalive.
BEATS_PER_S = 30.0
# An agent with runs in flight beats faster, as each run's request says: a
# frozen agent's runs are lost within three of those beats (6 s in a small
# fleet). This is judged here, not by grpc's keepalive: under a 10,000-agent
# job grpc fell behind reading its pings' answers and ended 297 healthy
# sessions, while this judgement pauses whenever the master itself stalls.
# Busy beats are paced too, by how many agents are busy.
BUSY_BEAT_S = 2.0
BUSY_BEATS_PER_S = 250.0
# A sweep this much later than planned means the master itself was stalled:
# it saw no beats meanwhile, so silence is not held against agents until
# STALL_GRACE_S after it recovers. Overload slows things down; it never makes
# healthy agents offline.
STALL_S = 1.0
STALL_GRACE_S = 3.0
# What AgentInfo shows of an AgentRecord (not its instance id); plus `running`
# and the facts (kept parsed in the registry, stored serialized).
_INFO_FIELDS = [f.name for f in fields(AgentRecord) if f.name not in ("instance_id", "facts")]


_STATUS_EVENTS = {
    pb.AGENT_ONLINE: pb.AGENT_WENT_ONLINE,
    pb.AGENT_OFFLINE: pb.AGENT_WENT_OFFLINE,
    pb.AGENT_STOPPED: pb.AGENT_WENT_STOPPED,
}


class Registry:
    def __init__(
        self,
        storage: Storage,
        bus: EventBus,
        *,
        heartbeat_interval_s: float,
        clock: Callable[[], float] = time.time,
        on_unresponsive: Callable[[str], None] | None = None,
    ) -> None:
        self._storage = storage
        self._bus = bus
        self._clock = clock
        self.heartbeat_interval_s = heartbeat_interval_s
        self._on_unresponsive = on_unresponsive
        self._agents: dict[str, AgentRecord] = {}
        self._running: dict[str, int] = {}
        self._online: set[str] = set()
        self._paces: dict[str, float] = {}  # the idle interval each agent was given
        # Agents asked to run something: (runs asked, since when, the busy beat interval they were given).
        self._busy: dict[str, tuple[int, float, float]] = {}
        self._quiet_until = 0.0  # no silence counts before this (the master was stalled)
        self._next_silence_scan = 0.0
        # last_seen changes every beat; it is flushed in batches, not per beat.
        self._dirty: set[str] = set()
        # Facts live in memory: agents send them all when they register and
        # every 10 minutes (agent/facts.py FULL_EVERY_S). With several masters
        # they are stored with the agent's row too, so every master shows
        # them (the row is written for the beat that brought them anyway).
        self._facts: dict[str, pb.Facts] = {}
        self._facts_changed: set[str] = set()  # sent to watchers with the next heartbeat batch
        #: With several masters: the agents that registered or beat here. Only
        #: those are this master's to mark offline; the others are mirrored
        #: from the store (:meth:`mirror`), kept alive by their own master.
        self.clustered = False
        self._here: set[str] = set()
        # The names the last read of the store had: only an agent whose row
        # was there and went is gone. One heard of by NOTIFY may not be
        # written yet (every master writes behind), and must not flicker away.
        self._stored: set[str] = set()

    async def load(self) -> None:
        """Recover the registry. Agents are online again when they next beat."""
        now = self._clock()
        for record in await self._storage.load_agents():
            if record.status == pb.AGENT_ONLINE:
                # Give agents a full window to beat before the sweeper decides.
                record.last_seen = max(record.last_seen, now)
            self._agents[record.name] = record
            self._stored.add(record.name)
            self._take_stored_facts(record)
            self._count_online(record)

    # ------------------------------------------------------------ views

    def info(self, name: str) -> pb.AgentInfo:
        rec = self._agents[name]
        shown = {field: getattr(rec, field) for field in _INFO_FIELDS}
        return pb.AgentInfo(**shown, running=self._running.get(name, 0), facts=self._facts.get(name))

    def all_info(self) -> list[pb.AgentInfo]:
        return [self.info(name) for name in sorted(self._agents)]

    def get(self, name: str) -> AgentRecord | None:
        return self._agents.get(name)

    def require(self, name: str) -> AgentRecord:
        rec = self._agents.get(name)
        if rec is None:
            raise errors.AgentNotFoundError(self.unknown_message(name))
        return rec

    def unknown_message(self, name: str) -> str:
        hints = close_names(name, list(self._agents))
        hint = f" (did you mean: {', '.join(hints)}?)" if hints else ""
        return f"unknown agent {name!r}{hint}"

    # ------------------------------------------------------------ agents' calls

    def conflicting(self, req: pb.RegisterRequest) -> AgentRecord | None:
        """The online agent that already holds ``req.name`` from elsewhere, if any.

        Same address means the old process is gone (ports are not shared); a
        different one may be a second agent claiming the name.
        """
        existing = self._agents.get(req.name)
        if (
            existing is not None
            and existing.status == pb.AGENT_ONLINE
            and existing.instance_id != req.instance_id
            and existing.address != req.address
        ):
            return existing
        return None

    async def admit(self, req: pb.RegisterRequest, answers: Callable[[AgentRecord], Awaitable[bool]]) -> None:
        """Register ``req``; a holder of its name elsewhere keeps it only while ``answers(holder)``.

        The holder may be a process that just stopped (restarted on another
        port): only a holder that still answers keeps the name.
        """
        holder = self.conflicting(req)
        take_over = holder is not None and not await answers(holder)
        self.register(req, take_over=take_over)

    def register(self, req: pb.RegisterRequest, *, take_over: bool = False) -> None:
        now = self._clock()
        existing = self._agents.get(req.name)
        holder = None if take_over else self.conflicting(req)
        if holder is not None:
            raise errors.NameTakenError(
                f"agent name {req.name!r} is held by an online agent at {holder.address}"
            )
        event = pb.AGENT_REGISTERED if existing is None else pb.AGENT_WENT_ONLINE
        record = AgentRecord(
            name=req.name,
            address=req.address,
            version=req.version,
            hostname=req.hostname,
            os=req.os,
            labels=dict(req.labels),
            status=pb.AGENT_ONLINE,
            registered_at=existing.registered_at if existing else now,
            last_seen=now,
            instance_id=req.instance_id,
        )
        self._agents[req.name] = record
        self._here.add(req.name)
        self._count_online(record)
        self._facts[req.name] = pb.Facts()
        facts_view.merge(self._facts[req.name], req.facts)
        self._store_facts(record)
        self._facts_changed.discard(req.name)  # the registration event carries them
        self._dirty.discard(req.name)
        self._storage.save_agent(record)
        log.info("agent %s registered from %s", req.name, req.address)
        self._bus.agent(event, self.info(req.name))

    def heartbeat(self, req: pb.HeartbeatRequest) -> None:
        rec = self._agents.get(req.name)
        if rec is None or rec.instance_id != req.instance_id:
            raise errors.AgentNotFoundError(f"agent {req.name!r} is not registered")
        if rec.status == pb.AGENT_STOPPED:
            return  # a beat that crossed our shutdown request: stopped is final for this instance
        rec.last_seen = self._clock()
        if req.HasField("facts") and facts_view.merge(self._facts.setdefault(req.name, pb.Facts()), req.facts):
            self._facts_changed.add(req.name)
            self._store_facts(rec)  # written with the beat's row (at most every 15 s: the agent's pace)
        self._here.add(rec.name)
        if rec.status != pb.AGENT_ONLINE:
            rec.status = pb.AGENT_ONLINE
            self._count_online(rec)
            self._storage.save_agent(rec)
            log.info("agent %s is online again", rec.name)
            self._bus.agent(pb.AGENT_WENT_ONLINE, self.info(rec.name))
        else:
            self._dirty.add(rec.name)

    def touch(self, name: str) -> None:
        """Word from ``name`` other than a beat (a run's events): it is alive."""
        rec = self._agents.get(name)
        if rec is not None and rec.status == pb.AGENT_ONLINE:
            rec.last_seen = self._clock()
            self._dirty.add(name)

    def disconnected(self, name: str, instance_id: str) -> None:
        """``name``'s session ended: offline now (stopped if it said goodbye first)."""
        rec = self._agents.get(name)
        self._paces.pop(name, None)
        if rec is None or rec.instance_id != instance_id or rec.status != pb.AGENT_ONLINE:
            return
        self._go_offline(rec, "its session ended")

    def pace_for(self, name: str) -> float:
        """The idle beat interval for ``name`` now (it grows with the fleet)."""
        pace = max(self.heartbeat_interval_s, len(self._online) / BEATS_PER_S)
        self._paces[name] = pace
        return pace

    def _count_online(self, rec: AgentRecord) -> None:
        """Keep the set of online agents (its size sets the pace) in step with ``rec``."""
        if rec.status == pb.AGENT_ONLINE and self._agents.get(rec.name) is rec:
            self._online.add(rec.name)
            # Its silence deadline may come before the next planned scan.
            self._next_silence_scan = min(
                self._next_silence_scan, rec.last_seen + MISSED_BEATS_OFFLINE * self.heartbeat_interval_s
            )
        else:
            self._online.discard(rec.name)

    # ------------------------------------------------------------ operators' calls

    def leave(self, req: pb.LeaveRequest) -> None:
        rec = self._agents.get(req.name)
        if rec is None or rec.instance_id != req.instance_id or rec.status != pb.AGENT_ONLINE:
            return  # a stale goodbye (another instance holds the name now)
        log.info("agent %s stopped", req.name)
        self.mark_stopped(req.name)

    def mark_stopped(self, name: str) -> None:
        rec = self.require(name)
        rec.status = pb.AGENT_STOPPED
        self._count_online(rec)
        self._storage.save_agent(rec)
        self._bus.agent(pb.AGENT_WENT_STOPPED, self.info(name))

    def delete(self, name: str) -> None:
        info = self.info(self.require(name).name)
        del self._agents[name]
        self._facts.pop(name, None)
        self._facts_changed.discard(name)
        self._here.discard(name)
        self._online.discard(name)
        self._paces.pop(name, None)
        self._running.pop(name, None)
        self._busy.pop(name, None)
        self._dirty.discard(name)
        self._storage.delete_agent(name)
        self._bus.agent(pb.AGENT_DELETED, info)

    def run_started(self, name: str) -> None:
        """One more run in flight on ``name`` (shown as ``running``)."""
        self._count_runs(name, +1)

    def run_finished(self, name: str) -> None:
        self._count_runs(name, -1)

    def asked(self, name: str) -> float:
        """A run is being asked of ``name``; the interval it must beat at until it answers for all its runs."""
        count, since, pace = self._busy.get(name, (0, 0.0, 0.0))
        now = self._clock()
        if not count:
            # Paced by every agent with runs in flight or about to be asked
            # (a job counts all its runs at once): paced by those asked so far,
            # the first agents of a 10,000-agent job got 2 s while the job
            # buried their processes, and 318 healthy ones were judged frozen.
            busy = max(len(self._busy) + 1, len(self._running))
            pace = max(min(self.heartbeat_interval_s, BUSY_BEAT_S), busy / BUSY_BEATS_PER_S)
            since = now  # its silence counts from here: it may not have beaten for a long idle interval
        self._busy[name] = (count + 1, since, pace)
        self._next_silence_scan = min(self._next_silence_scan, max(since, self._last_seen(name)) + self._busy_limit(pace))
        return pace

    def answered(self, name: str) -> None:
        """A run asked of ``name`` ended (whatever its outcome)."""
        count, since, pace = self._busy.get(name, (1, 0.0, 0.0))
        if count > 1:
            self._busy[name] = (count - 1, since, pace)
        else:
            self._busy.pop(name, None)

    def _last_seen(self, name: str) -> float:
        rec = self._agents.get(name)
        return rec.last_seen if rec is not None else 0.0

    @staticmethod
    def _busy_limit(pace: float) -> float:
        return MISSED_BEATS_OFFLINE * pace

    def _count_runs(self, name: str, delta: int) -> None:
        # No event: watchers count runs in flight from the run events
        # themselves; an agent event per run would double the feed.
        count = self._running.get(name, 0) + delta
        if count > 0:
            self._running[name] = count
        else:
            self._running.pop(name, None)  # also when the agent was deleted mid-run

    def resolve(
        self, names: Iterable[str], labels: Mapping[str, str], all_agents: bool
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """Targets → (agent names to run on, [(name, reason)] rejected)."""
        chosen: list[str] = []
        rejected: list[tuple[str, str]] = []
        seen: set[str] = set()

        def take(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            rec = self._agents.get(name)
            if rec is None:
                rejected.append((name, self.unknown_message(name)))
            elif rec.status != pb.AGENT_ONLINE:
                rejected.append((name, f"agent {name!r} is {agent_word(rec.status)}"))
            else:
                chosen.append(name)

        pool = sorted(self._agents)
        if labels:
            pool = [n for n in pool if all(self._agents[n].labels.get(k) == v for k, v in labels.items())]
        explicit = [n for n in names if n]
        if all_agents or (labels and not explicit):
            for name in pool:
                take(name)
        for pattern in explicit:
            if is_glob(pattern):
                for name in fnmatch.filter(pool, pattern):
                    take(name)
            elif labels and pattern in self._agents and pattern not in pool:
                if pattern in seen:
                    continue
                seen.add(pattern)
                wanted = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
                rejected.append((pattern, f"agent {pattern!r} does not have the labels {wanted}"))
            else:
                take(pattern)
        return chosen, rejected

    # ------------------------------------------------------------ liveness

    def sweep(self) -> None:
        now = self._clock()
        # Silence is judged only when some deadline may have passed: a scan
        # of 10,000 agents twice a second was a third of an idle master's CPU.
        if now >= self._quiet_until and now >= self._next_silence_scan:
            # Silent agents: after MISSED_BEATS_OFFLINE of their own interval.
            base = MISSED_BEATS_OFFLINE * self.heartbeat_interval_s
            soonest = now + base
            for rec in self._agents.values():
                if rec.status != pb.AGENT_ONLINE:
                    continue
                if self.clustered and rec.name not in self._here:
                    continue  # another master's agent: that master (or the sweeper lock's holder) decides
                busy = self._busy.get(rec.name)
                if busy is not None:
                    heard = max(rec.last_seen, busy[1])
                    allowed = self._busy_limit(busy[2])
                else:
                    heard = rec.last_seen
                    allowed = max(base, MISSED_BEATS_OFFLINE * self._paces.get(rec.name, 0.0))
                if now - heard > allowed:
                    what = "with runs in flight" if busy is not None else ""
                    self._go_offline(rec, f"no heartbeat for {now - heard:.0f} s {what}".rstrip())
                else:
                    soonest = min(soonest, heard + allowed)
            self._next_silence_scan = soonest
        if self._dirty or self._facts_changed:
            beaten = sorted(n for n in self._dirty if n in self._agents)
            self._storage.save_agents([self._agents[n] for n in beaten])
            facts = [pb.AgentFacts(name=n, facts=self._facts[n]) for n in sorted(self._facts_changed) if n in self._facts]
            self._bus.heartbeats(beaten, now, facts)
            self._dirty.clear()
            self._facts_changed.clear()

    def silence_limit(self, online: int) -> float:
        """How long an online agent of a cluster of ``online`` may be silent in the store before it is offline."""
        return MISSED_BEATS_OFFLINE * max(self.heartbeat_interval_s, online / BEATS_PER_S)

    def connected_here(self) -> int:
        """Online agents that registered or beat on this master."""
        return sum(1 for n in self._here if (rec := self._agents.get(n)) is not None and rec.status == pb.AGENT_ONLINE)

    def mirror(self, records: list[AgentRecord]) -> None:
        """Take the store's view of the agents other masters hold (several masters).

        Agents of this master keep their in-memory record; the others follow
        the store, and a change of status is an event here too, so every
        console sees the whole cluster's agents. Changed facts go to watchers
        with the next batch of beats, as those of agents connected here do.
        """
        seen: set[str] = set()
        for record in records:
            seen.add(record.name)
            if record.name in self._here:
                continue
            old = self._agents.get(record.name)
            self._agents[record.name] = record
            facts_changed = (old.facts if old is not None else b"") != record.facts
            if facts_changed:
                self._take_stored_facts(record)
            if old is None:
                self._bus.agent(pb.AGENT_REGISTERED, self.info(record.name), remote=True)
            elif old.status != record.status:
                kind = _STATUS_EVENTS.get(record.status, pb.AGENT_WENT_ONLINE)
                self._bus.agent(kind, self.info(record.name), remote=True)
            elif facts_changed:
                self._facts_changed.add(record.name)
        gone = [n for n in self._agents if n not in seen and n not in self._here and n in self._stored]
        self._stored = seen
        for name in gone:
            info = self.info(name)
            del self._agents[name]
            self._facts.pop(name, None)
            self._facts_changed.discard(name)
            self._bus.agent(pb.AGENT_DELETED, info, remote=True)

    def _store_facts(self, rec: AgentRecord) -> None:
        """Several masters: the facts go with the agent's row, for the others to show."""
        if self.clustered:
            rec.facts = self._facts[rec.name].SerializeToString()

    def _take_stored_facts(self, rec: AgentRecord) -> None:
        if not rec.facts:
            self._facts.pop(rec.name, None)
            return
        try:
            self._facts[rec.name] = pb.Facts.FromString(rec.facts)
        except DecodeError:
            log.warning("agent %s: its stored facts are unreadable; showing none", rec.name)
            self._facts.pop(rec.name, None)

    def apply_remote(self, event: pb.AgentEvent) -> None:
        """An agent change another master announced (several masters)."""
        name = event.agent.name
        if event.type == pb.AGENT_DELETED:
            # Deleted (and revoked) cluster-wide: even an agent connected here is no longer one of ours.
            if self._agents.pop(name, None) is not None:
                self._here.discard(name)
                self._facts.pop(name, None)
                self._facts_changed.discard(name)
                self._online.discard(name)
                self._dirty.discard(name)
                self._running.pop(name, None)
                self._bus.agent(pb.AGENT_DELETED, event.agent, remote=True)
            return
        if event.type in (pb.AGENT_REGISTERED, pb.AGENT_WENT_ONLINE):
            self._here.discard(name)  # it registered with another master: that one holds it now
        elif name in self._here:
            return
        old = self._agents.get(name)
        fields_shown = {f: getattr(event.agent, f) for f in _INFO_FIELDS}
        fields_shown["labels"] = dict(event.agent.labels)
        facts = old.facts if old is not None else b""
        if event.agent.HasField("facts"):  # its master's view of them, newer than the store's
            self._facts[name] = pb.Facts()
            self._facts[name].CopyFrom(event.agent.facts)
            facts = event.agent.facts.SerializeToString()
        self._agents[name] = AgentRecord(**fields_shown, instance_id=old.instance_id if old else "", facts=facts)
        self._bus.agent(event.type, self.info(name), remote=True)

    def _go_offline(self, rec: AgentRecord, why: str) -> None:
        self._here.discard(rec.name)
        rec.status = pb.AGENT_OFFLINE
        self._count_online(rec)
        self._dirty.discard(rec.name)
        self._storage.save_agent(rec)
        log.warning("agent %s is offline (%s)", rec.name, why)
        self._bus.agent(pb.AGENT_WENT_OFFLINE, self.info(rec.name))
        if self._on_unresponsive is not None:
            self._on_unresponsive(rec.name)

    def stalled(self, late_s: float) -> None:
        """The master could not look at its agents for ``late_s`` seconds."""
        self._quiet_until = max(self._quiet_until, self._clock() + STALL_GRACE_S + late_s)
        log.warning("the master was stalled for %.1f s; liveness judged again in %.0f s", late_s, STALL_GRACE_S)

    async def run_sweeper(self) -> None:
        period = max(0.05, min(0.5, self.heartbeat_interval_s / 2))
        loop = asyncio.get_running_loop()
        planned = loop.time() + period
        while True:
            await asyncio.sleep(max(0.0, planned - loop.time()))
            late = loop.time() - planned
            if late > STALL_S:
                self.stalled(late)
            self.sweep()
            planned = loop.time() + period
