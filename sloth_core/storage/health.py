"""Is history being saved? The store's health as operators see it.

``master status``, the ``Watch`` feed (the console's status bar) and ``agent
run`` (one warning line) all show the same :meth:`StoreHealth.warning`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sloth_core.proto import sloth_pb2 as pb


@dataclass(frozen=True)
class StoreHealth:
    store: str  # where history goes, without secrets ("sqlite /x/master.db")
    failing: bool = False  # writes fail and are being retried
    cause: str = ""  # why, while failing
    queued: int = 0  # records waiting to be written
    dropped: int = 0  # output records dropped since the master started
    refusing_runs: bool = False  # the queue is full of records that may not be dropped

    def warning(self) -> str:
        """One line for operators while history is not being saved; empty otherwise."""
        if not self.failing:
            return ""
        text = f"history is not being saved: {self.cause} ({self.queued} records queued"
        if self.dropped:
            text += f", {self.dropped} output records dropped"
        text += ")"
        if self.refusing_runs:
            text += "; new runs are refused until the store recovers"
        return text

    def to_proto(self) -> pb.StoreHealth:
        from sloth_core.proto import sloth_pb2 as pb

        return pb.StoreHealth(
            store=self.store,
            failing=self.failing,
            cause=self.cause,
            queued=self.queued,
            dropped=self.dropped,
            refusing_runs=self.refusing_runs,
            warning=self.warning(),
        )
