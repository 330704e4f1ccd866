"""The other masters' runs in flight: the store's, corrected by what the cluster feed said lately."""

from __future__ import annotations

from sloth_core.errors import StorageError
from sloth_core.master.remote_runs import RECENT_S, RemoteRuns
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.storage import RunRecord
from tests.unit.fakes import MemoryStorage


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def stored(run_id: str, driver: str, status: int = pb.RUN_RUNNING) -> RunRecord:
    return RunRecord(run_id, "j-1", "w1", "sleep 9", "admin:ops", status, 1.0, driver=driver)


def started(run_id: str) -> pb.RunEvent:
    return pb.RunEvent(run_id=run_id, agent="w2", started=pb.RunInfo(run_id=run_id, command="true"))


def finished(run_id: str) -> pb.RunEvent:
    return pb.RunEvent(run_id=run_id, agent="w1", finished=pb.RunInfo(run_id=run_id, status=pb.RUN_SUCCEEDED))


async def test_the_store_is_corrected_by_what_was_heard_lately_then_is_the_truth_again() -> None:
    storage, clock = MemoryStorage(), Clock()
    storage.save_runs([stored("r-a", "m-a"), stored("r-mine", "m-b"), stored("r-done", "m-a", pb.RUN_SUCCEEDED),
                       stored("r-ends", "m-a")])
    runs = RemoteRuns(storage, "m-b", clock=clock)
    assert sorted(r.run_id for r in await runs.active()) == ["r-a", "r-ends"], "ours and finished ones are not"

    runs.heard(finished("r-ends"))  # its master said so; its row is not written yet
    runs.heard(started("r-new"))  # started a moment ago; not written yet either
    active = {r.run_id: r for r in await runs.active()}
    assert sorted(active) == ["r-a", "r-new"]
    assert active["r-new"].agent == "w2", "the event's agent fills the run's"

    clock.now += RECENT_S + 1  # long past any write: the store is the truth
    storage.save_run(stored("r-ends", "m-a", pb.RUN_SUCCEEDED))
    assert sorted(r.run_id for r in await runs.active()) == ["r-a"]


async def test_a_store_that_cannot_answer_leaves_what_was_heard_lately() -> None:
    storage = MemoryStorage()

    async def failing(*, other_than: str) -> list[RunRecord]:
        raise StorageError("the store is away")

    storage.runs_in_flight = failing  # type: ignore[method-assign]
    runs = RemoteRuns(storage, "m-b")
    runs.heard(started("r-new"))
    assert [r.run_id for r in await runs.active()] == ["r-new"]
