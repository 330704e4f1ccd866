"""The registry: which agents a target means, who is alive, who may hold a name."""

from __future__ import annotations

import pytest

from sloth_core import errors
from sloth_core.master.events import EventBus
from sloth_core.master.registry import MISSED_BEATS_OFFLINE, Registry
from sloth_core.proto import sloth_pb2 as pb
from tests.unit.conftest import HEARTBEAT_S, register
from tests.unit.fakes import FakeClock, MemoryStorage

pytestmark = pytest.mark.timeout(5)


@pytest.fixture
def fleet(registry: Registry) -> Registry:
    register(registry, "web-1", labels={"role": "web"})
    register(registry, "web-2", labels={"role": "web", "zone": "b"})
    register(registry, "db-1", labels={"role": "db"})
    return registry


# ---------------------------------------------------------------- targets


def test_names_are_taken_in_order_once(fleet: Registry) -> None:
    assert fleet.resolve(["db-1", "web-1", "db-1"], {}, False) == (["db-1", "web-1"], [])


def test_a_glob_matches_by_name(fleet: Registry) -> None:
    assert fleet.resolve(["web-*"], {}, False) == (["web-1", "web-2"], [])


def test_labels_alone_select_every_agent_that_has_them_all(fleet: Registry) -> None:
    assert fleet.resolve([], {"role": "web"}, False) == (["web-1", "web-2"], [])
    assert fleet.resolve([], {"role": "web", "zone": "b"}, False) == (["web-2"], [])


def test_all_is_every_agent(fleet: Registry) -> None:
    assert fleet.resolve([], {}, True) == (["db-1", "web-1", "web-2"], [])


def test_an_unknown_name_is_rejected_with_close_names(fleet: Registry) -> None:
    chosen, rejected = fleet.resolve(["web-3"], {}, False)
    assert chosen == []
    [(name, reason)] = rejected
    assert name == "web-3"
    assert "unknown agent 'web-3'" in reason and "web-1" in reason


def test_a_named_agent_without_the_labels_is_rejected(fleet: Registry) -> None:
    chosen, rejected = fleet.resolve(["db-1", "web-1"], {"role": "web"}, False)
    assert chosen == ["web-1"]
    assert rejected == [("db-1", "agent 'db-1' does not have the labels role=web")]


def test_an_offline_agent_is_rejected_not_run(fleet: Registry, clock: FakeClock) -> None:
    clock.advance(HEARTBEAT_S * MISSED_BEATS_OFFLINE + 1)
    fleet.heartbeat(pb.HeartbeatRequest(name="web-1", instance_id="web-1-1"))
    fleet.sweep()
    assert fleet.resolve(["web-*"], {}, False) == (["web-1"], [("web-2", "agent 'web-2' is offline")])


# ---------------------------------------------------------------- liveness


def test_the_sweeper_marks_silent_agents_offline_and_says_so(
    fleet: Registry, clock: FakeClock, bus: EventBus
) -> None:
    sub = bus.subscribe(include_output=False)
    clock.advance(HEARTBEAT_S * MISSED_BEATS_OFFLINE - 1)
    fleet.sweep()
    assert {a.name: a.status for a in fleet.all_info()}["web-1"] == pb.AGENT_ONLINE
    fleet.heartbeat(pb.HeartbeatRequest(name="db-1", instance_id="db-1-1"))
    clock.advance(2)
    fleet.sweep()
    status = {a.name: a.status for a in fleet.all_info()}
    assert status == {"db-1": pb.AGENT_ONLINE, "web-1": pb.AGENT_OFFLINE, "web-2": pb.AGENT_OFFLINE}
    events = [e for _ in range(sub.queue.qsize()) if (e := sub.queue.get_nowait()) is not None]
    went_offline = [e.agent.agent.name for e in events if e.HasField("agent") and e.agent.type == pb.AGENT_WENT_OFFLINE]
    assert went_offline == ["web-1", "web-2"]
    assert [list(e.heartbeats.names) for e in events if e.HasField("heartbeats")] == [["db-1"]]


def test_a_heartbeat_brings_an_offline_agent_back(fleet: Registry, clock: FakeClock) -> None:
    clock.advance(HEARTBEAT_S * MISSED_BEATS_OFFLINE + 1)
    fleet.sweep()
    fleet.heartbeat(pb.HeartbeatRequest(name="web-1", instance_id="web-1-1"))
    assert fleet.info("web-1").status == pb.AGENT_ONLINE
    assert fleet.info("web-1").last_seen == clock.now


def test_a_beat_that_crosses_a_stop_does_not_bring_the_agent_back(fleet: Registry) -> None:
    fleet.mark_stopped("web-1")  # asked to shut down; a beat was already on its way
    fleet.heartbeat(pb.HeartbeatRequest(name="web-1", instance_id="web-1-1"))
    assert fleet.info("web-1").status == pb.AGENT_STOPPED
    fleet.disconnected("web-1", "web-1-1")  # and its session's end is no news either
    assert fleet.info("web-1").status == pb.AGENT_STOPPED


def test_a_heartbeat_from_an_unknown_instance_asks_it_to_register(fleet: Registry) -> None:
    with pytest.raises(errors.AgentNotFoundError):
        fleet.heartbeat(pb.HeartbeatRequest(name="web-1", instance_id="someone-else"))
    with pytest.raises(errors.AgentNotFoundError):
        fleet.heartbeat(pb.HeartbeatRequest(name="nobody", instance_id="x"))


async def test_a_restarted_master_gives_known_agents_a_full_window(
    fleet: Registry, storage: MemoryStorage, bus: EventBus, clock: FakeClock
) -> None:
    fleet.sweep()  # flush
    clock.advance(3600)
    recovered = Registry(storage, bus, heartbeat_interval_s=HEARTBEAT_S, clock=clock)
    await recovered.load()
    recovered.sweep()
    assert [a.status for a in recovered.all_info()] == [pb.AGENT_ONLINE] * 3


# ---------------------------------------------------------------- conflicts


def test_a_second_agent_may_not_take_an_online_agents_name(fleet: Registry) -> None:
    with pytest.raises(errors.NameTakenError, match="held by an online agent"):
        register(fleet, "web-1", address="127.0.0.1:9999", instance="web-1-2")


def test_a_restart_on_the_same_address_takes_the_name_back(fleet: Registry) -> None:
    address = fleet.info("web-1").address
    register(fleet, "web-1", address=address, instance="web-1-2")
    assert fleet.get("web-1").instance_id == "web-1-2"  # type: ignore[union-attr]


async def test_a_holder_that_no_longer_answers_loses_the_name(fleet: Registry) -> None:
    async def silent(holder: object) -> bool:
        return False

    await fleet.admit(pb.RegisterRequest(name="web-1", address="127.0.0.1:9999", instance_id="web-1-2"), silent)
    assert fleet.info("web-1").address == "127.0.0.1:9999"


async def test_a_holder_that_answers_keeps_the_name(fleet: Registry) -> None:
    async def alive(holder: object) -> bool:
        return True

    with pytest.raises(errors.NameTakenError):
        await fleet.admit(pb.RegisterRequest(name="web-1", address="127.0.0.1:9999", instance_id="web-1-2"), alive)
    assert fleet.get("web-1").instance_id == "web-1-1"  # type: ignore[union-attr]


def test_runs_in_flight_are_counted_per_agent(fleet: Registry) -> None:
    fleet.run_started("web-1")
    fleet.run_started("web-1")
    fleet.run_finished("web-1")
    assert fleet.info("web-1").running == 1
    fleet.run_finished("web-1")
    fleet.run_finished("web-1")  # never negative
    assert fleet.info("web-1").running == 0


async def test_facts_are_kept_merged_and_their_changes_batched_for_watchers(registry: Registry, bus: EventBus) -> None:
    gib = 1024**3
    registry.register(pb.RegisterRequest(name="web-1", address="10.0.0.1:1", instance_id="i", facts=pb.Facts(
        cpus=4, load1=0.5, mem_total=8 * gib, mem_available=4 * gib, kernel="6.8")))
    registry.register(pb.RegisterRequest(name="quiet", address="10.0.0.2:1", instance_id="i"))
    assert registry.info("web-1").facts.kernel == "6.8"
    assert not registry.info("quiet").facts.HasField("cpus")

    sub = bus.subscribe(include_output=False)
    batches = sub.batches()
    registry.heartbeat(pb.HeartbeatRequest(name="web-1", instance_id="i", facts=pb.Facts(load1=3.0)))
    registry.heartbeat(pb.HeartbeatRequest(name="quiet", instance_id="i"))
    registry.sweep()
    (event,) = await anext(batches)
    assert list(event.heartbeats.names) == ["quiet", "web-1"]
    (changed,) = event.heartbeats.facts  # only the agent whose facts changed, with all of them
    assert changed.name == "web-1" and changed.facts.load1 == 3.0 and changed.facts.kernel == "6.8"
    assert registry.info("web-1").facts.load1 == 3.0
    await batches.aclose()


# ---------------------------------------------------------------- several masters


def test_another_masters_agent_heard_of_before_its_row_is_stored_is_not_dropped_by_the_mirror(
    registry: Registry, bus: EventBus,
) -> None:
    from sloth_core.storage import AgentRecord

    registry.clustered = True
    sub = bus.subscribe(include_output=False)
    info = pb.AgentInfo(name="far-1", address="10.0.0.9:1", status=pb.AGENT_ONLINE, facts=pb.Facts(cpus=8))
    registry.apply_remote(pb.AgentEvent(type=pb.AGENT_REGISTERED, agent=info))  # by NOTIFY, before its row
    registry.mirror([])  # the other master writes behind: no row yet
    assert registry.info("far-1").status == pb.AGENT_ONLINE and registry.info("far-1").facts.cpus == 8
    stored = AgentRecord("far-1", "10.0.0.9:1", status=pb.AGENT_ONLINE, facts=pb.Facts(cpus=16).SerializeToString())
    registry.mirror([stored])
    assert registry.info("far-1").facts.cpus == 16, "its facts as stored"
    registry.mirror([])  # its row went away (a deletion we did not hear of): now it goes
    assert registry.get("far-1") is None
    kinds = [e.agent.type for e in _drain(sub) if e.HasField("agent")]
    assert kinds == [pb.AGENT_REGISTERED, pb.AGENT_DELETED]


def _drain(sub) -> list[pb.WatchEvent]:  # type: ignore[no-untyped-def]
    events = []
    while not sub.queue.empty():
        event = sub.queue.get_nowait()
        if event is not None:
            events.append(event)
    return events
