from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sloth_core.agent import processes
from tests.fleet import Fleet


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench", action="store_true", default=False,
        help="also run the benchmark smoke test (`python -m bench --quick --smallest`, about a minute)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bench: runs the benchmarks; only with --bench")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--bench"):
        return
    skip = pytest.mark.skip(reason="the benchmark smoke test runs only with --bench")
    for item in items:
        if "bench" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """A temp home where tests start real masters and agents (secure by default)."""
    f = Fleet(home=tmp_path / "home")
    f.home.mkdir()
    try:
        yield f
    finally:
        f.close()


@pytest.fixture
def insecure_fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(home=tmp_path / "home", insecure=True)
    f.home.mkdir()
    try:
        yield f
    finally:
        f.close()


@pytest.fixture
async def helper() -> AsyncIterator[processes.ProcessHelper]:
    """The agent's process helper, in this process (for tests that run commands without an agent)."""
    started = await processes.start_shared(None)
    try:
        yield started
    finally:
        await processes.close_shared()
