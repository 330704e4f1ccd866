"""The unit layer: the master's parts wired together without gRPC, a server or a process."""

from __future__ import annotations

import itertools

import pytest

from sloth_core.master.dispatch import Dispatcher
from sloth_core.master.events import EventBus
from sloth_core.master.history import RunHistory
from sloth_core.master.registry import Registry
from sloth_core.proto import sloth_pb2 as pb
from tests.unit.fakes import FakeAgentLink, FakeClock, MemoryStorage

HEARTBEAT_S = 5.0
_PORTS = itertools.count(20_000)


def register(
    registry: Registry,
    name: str,
    *,
    address: str = "",
    instance: str = "",
    labels: dict[str, str] | None = None,
) -> None:
    registry.register(
        pb.RegisterRequest(
            name=name,
            # A fresh port each (counting the registry's agents made 1,000 registrations quadratic).
            address=address or f"127.0.0.1:{next(_PORTS)}",
            instance_id=instance or f"{name}-1",
            labels=labels or {},
        )
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def registry(storage: MemoryStorage, bus: EventBus, clock: FakeClock) -> Registry:
    return Registry(storage, bus, heartbeat_interval_s=HEARTBEAT_S, clock=clock)


@pytest.fixture
def link() -> FakeAgentLink:
    return FakeAgentLink()


@pytest.fixture
def deleted() -> list[str]:
    return []


@pytest.fixture
def dispatcher(
    registry: Registry, storage: MemoryStorage, bus: EventBus, link: FakeAgentLink, clock: FakeClock, deleted: list[str]
) -> Dispatcher:
    return Dispatcher(
        registry, storage, bus, link,
        output_cap=1024, runs_per_agent=100, on_agent_deleted=deleted.append, clock=clock,
    )


@pytest.fixture
def history(dispatcher: Dispatcher, storage: MemoryStorage) -> RunHistory:
    return RunHistory(dispatcher, storage)
