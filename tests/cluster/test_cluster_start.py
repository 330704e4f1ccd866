"""Starting masters on one store: migrations once when they start together, and one cluster per store."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg

from sloth_core.storage.postgres import MIGRATIONS
from tests.cluster.conftest import Cluster
from tests.fleet import Fleet


def test_two_masters_starting_at_once_on_an_empty_database_migrate_it_once(cluster: Cluster) -> None:
    cluster.join_b()
    a, b = cluster.a, cluster.b
    for fleet in (a, b):
        fleet.procs[0].stop()
    with psycopg.connect(cluster.url, autocommit=True) as conn:  # empty again: no tables, no versions
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda fleet: fleet.start_master("--store", cluster.url), (a, b)))

    with psycopg.connect(cluster.url) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM sloth_schema_version ORDER BY version")]
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    migrated = [line for fleet in (a, b) for line in fleet.procs[-1].text().splitlines() if "schema migrated" in line]
    assert len(migrated) == len(MIGRATIONS), migrated  # each version once, by one master or the other
    for fleet in (a, b):
        listed = fleet.cli("agent", "list")
        assert listed.returncode == 0, listed.stderr.decode()


def test_a_master_with_a_ca_of_its_own_is_refused_by_a_clusters_store(cluster: Cluster, tmp_path: Path) -> None:
    stranger = Fleet(home=tmp_path / "stranger")
    stranger.home.mkdir()
    started = stranger.cli("master", "--bind", "127.0.0.1", "-p", "0", "--join-port", "0", "--store", cluster.url,
                           timeout=30)
    assert started.returncode != 0
    said = started.stderr.decode()
    assert "belongs to another cluster" in said and "master join-cluster" in said, said
    assert "Traceback" not in said


def test_the_address_other_masters_reach_is_advertise_else_bind_else_the_route_to_the_store(tmp_path: Path) -> None:
    from sloth_core.master.config import MasterConfig
    from sloth_core.master.server import advertised_address

    def config(**kwargs: str) -> MasterConfig:
        return MasterConfig(data_dir=tmp_path, **kwargs)  # type: ignore[arg-type]

    store = "postgresql://sloth@127.0.0.1/sloth"
    assert advertised_address(config(advertise="m1.example.com"), 7000, store) == "m1.example.com:7000"
    assert advertised_address(config(advertise="[fd00::1]:7100"), 7000, store) == "[fd00::1]:7100"
    assert advertised_address(config(bind="::1"), 7000, store) == "[::1]:7000"
    # Listening everywhere: not 0.0.0.0, but this machine's address towards the store (here loopback).
    assert advertised_address(config(bind="0.0.0.0"), 7000, store) == "127.0.0.1:7000"
    assert advertised_address(config(bind="0.0.0.0"), 7000, "postgresql:///sloth?host=/run/postgresql") == "127.0.0.1:7000"
