from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet import Fleet


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
