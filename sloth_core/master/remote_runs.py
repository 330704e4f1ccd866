"""Runs the other masters drive, for the snapshot of a console watching this one (several masters).

A run lives on the master that drives it, yet a console connecting to any
master must find it in flight. The store knows every unfinished run and its
driver, but each master writes behind (:mod:`sloth_core.storage.queued`): a
run that started or ended a moment ago may not be there yet, while its event
already crossed by NOTIFY (:mod:`.cluster_feed`). So the snapshot's runs of
the others are the store's, corrected by the events of the last
:data:`RECENT_S` seconds. A run whose master died is ended by the lease
sweeper (:mod:`.lease`), which announces it finished (lost) like any other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sloth_core.errors import StorageError
from sloth_core.master.history import run_info
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.storage import Storage

log = logging.getLogger(__name__)

#: Far longer than a store write takes: past it, the store is the truth.
RECENT_S = 10.0


class RemoteRuns:
    """The other masters' runs in flight: the store's, overlaid with what the feed said lately."""

    def __init__(self, storage: Storage, master_id: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._storage = storage
        self._master_id = master_id
        self._clock = clock
        # run id -> (when heard, the run if it started, None if it finished); oldest first.
        self._recent: dict[str, tuple[float, pb.RunInfo | None]] = {}

    def heard(self, event: pb.RunEvent) -> None:
        """A run event another master published."""
        if event.HasField("started"):
            info: pb.RunInfo | None = pb.RunInfo()
            info.CopyFrom(event.started)
            info.agent = info.agent or event.agent
        elif event.HasField("finished"):
            info = None
        else:
            return
        now = self._clock()
        self._recent.pop(event.run_id, None)  # to the end: the dict stays in time order
        self._recent[event.run_id] = (now, info)
        self._forget_before(now - RECENT_S)

    async def active(self) -> list[pb.RunInfo]:
        """Every run another master drives that is pending or running now."""
        try:
            records = await self._storage.runs_in_flight(other_than=self._master_id)
        except StorageError as exc:
            log.warning("runs of the other masters: %s; showing only those heard of lately", exc)
            records = []
        runs = {r.run_id: run_info(r) for r in records}
        self._forget_before(self._clock() - RECENT_S)
        for run_id, (_, info) in self._recent.items():
            if info is None:
                runs.pop(run_id, None)
            elif run_id not in runs:
                runs[run_id] = shown = pb.RunInfo()
                shown.CopyFrom(info)  # the caller shortens what it shows in place
        return list(runs.values())

    def _forget_before(self, cutoff: float) -> None:
        while self._recent:
            run_id, (when, _) = next(iter(self._recent.items()))
            if when >= cutoff:
                return
            del self._recent[run_id]
