"""Run history: one place to look a run up, whether it is live or stored.

A run in flight is known to the dispatcher (its record changes as it runs);
a finished one only to storage. :class:`RunHistory` merges the two so that
``ListRuns``, ``GetRun`` and ``CancelRun`` never disagree about a run.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Protocol

from sloth_core import errors
from sloth_core.master.id_prefix import resolve_id
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.storage import RunRecord, Storage

DEFAULT_RUNS_LIMIT = 50
MAX_RUNS_LIMIT = 10_000


# RunInfo is RunRecord on the wire, field for field (but the driving master's
# lease id, which only masters use).
_RUN_FIELDS = [f.name for f in fields(RunRecord) if f.name != "driver"]


def run_info(rec: RunRecord) -> pb.RunInfo:
    """A run as the wire shows it."""
    return pb.RunInfo(**{name: getattr(rec, name) for name in _RUN_FIELDS})


class LiveRuns(Protocol):
    """The runs in flight (the dispatcher)."""

    def live_records(self) -> list[RunRecord]: ...
    def cancel(self, run_or_job_id: str) -> list[str]: ...


class RunHistory:
    """Looks runs up live first, then in storage."""

    def __init__(self, live: LiveRuns, storage: Storage) -> None:
        self._live = live
        self._storage = storage
        #: Several masters: the others, for runs they drive (a :class:`~.peers.Peers`).
        self.peers: Any = None
        #: Several masters: the runs in flight on the others (a :class:`~.remote_runs.RemoteRuns`).
        self.elsewhere: Any = None

    async def active_elsewhere(self) -> list[pb.RunInfo]:
        """Runs other masters of the cluster drive now (none with one master)."""
        return await self.elsewhere.active() if self.elsewhere is not None else []

    async def list_runs(
        self, *, agent: str = "", status: int = 0, job_id: str = "", limit: int = 0
    ) -> list[RunRecord]:
        """Stored runs, newest first, each replaced by its live record while it runs."""
        limit = min(limit or DEFAULT_RUNS_LIMIT, MAX_RUNS_LIMIT)
        if job_id:
            job_id = (await resolve_id(self._storage, job_id, ("job",)))[1]
        records = await self._storage.list_runs(agent=agent, status=status, job_id=job_id, limit=limit)
        live = {r.run_id: r for r in self._live.live_records()}
        return [live.get(r.run_id, r) for r in records]

    async def resolve_run_id(self, typed: str) -> str:
        """The full id of the one run ``typed`` names: an id or a unique prefix, ``r-`` optional."""
        return (await resolve_id(self._storage, typed))[1]

    async def get_run(self, run_id: str) -> RunRecord:
        run_id = await self.resolve_run_id(run_id)
        for live in self._live.live_records():
            if live.run_id == run_id:
                return live
        stored = await self._storage.get_run(run_id)
        if stored is None:
            raise errors.RunNotFoundError(f"no run with id {run_id!r}")
        return stored

    async def follow_elsewhere(self, run_id: str) -> Any:
        """The live stream of a run another master drives (relayed), else None: it is ours or over."""
        if self.peers is None or any(live.run_id == run_id for live in self._live.live_records()):
            return None
        stored = await self._storage.get_run(run_id)
        return await self.peers.follow(stored) if stored is not None else None

    async def cancel(self, run_or_job_id: str) -> list[str]:
        """Cancel a live run or every live run of a job; the ids cancelled.

        An id that names only finished runs cancels nothing; one that names
        nothing at all is an error. Ids may be unique prefixes (``r-``/``j-`` optional).
        """
        if not run_or_job_id:
            raise errors.UsageError("give a run id or a job id to cancel")
        kind, full_id = await resolve_id(self._storage, run_or_job_id, ("run", "job"))
        cancelled = self._live.cancel(full_id)
        if not cancelled and self.peers is not None:
            # Driven by another master of the cluster: it holds the agent's call.
            cancelled = await self.peers.cancel(kind, full_id)
        return cancelled
