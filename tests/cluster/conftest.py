"""Two masters on one PostgreSQL database, each in a home of its own (real processes)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fleet import Fleet
from tests.pgtest import temp_database


@dataclass
class Cluster:
    url: str
    a: Fleet
    b: Fleet

    def join_b(self, *, bind: str = "127.0.0.1", port: int = 0) -> None:
        """B joins A's cluster with a master token minted on A, then starts (on ``bind``:``port``)."""
        token = self.a.cli("master", "token", "create", "--master")
        assert token.returncode == 0, token.stderr.decode()
        joined = self.b.cli(
            "master", "join-cluster", "--from", self.a.master_address, "--token", token.stdout.decode().strip(),
            "--store", self.url, "--name", "b",
        )
        assert joined.returncode == 0, joined.stderr.decode()
        self.b.start_master("--store", self.url, bind=bind, port=port)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with temp_database() as url:
        fleets = [Fleet(home=tmp_path / name) for name in ("a", "b")]
        for fleet in fleets:
            fleet.home.mkdir()
        try:
            fleets[0].start_master("--store", url)
            yield Cluster(url, *fleets)
        finally:
            for fleet in reversed(fleets):
                fleet.close()
