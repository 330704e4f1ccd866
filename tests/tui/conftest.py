"""Fixtures for the console's tests: a stand-in master and a console on it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from tests.tui.standin_master import StandinServer


@pytest.fixture
def standin() -> Iterator[StandinServer]:
    """A stand-in master (fixed fleet, scripted output) on a free loopback port."""
    server = StandinServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC while the test runs (timestamps on screen are local)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
