"""Operators fail over: several master addresses, tried in order, and the one in use is named."""

from __future__ import annotations

import json

import pytest

from sloth_core.errors import UsageError
from sloth_core.names import master_addresses
from tests.cluster.conftest import Cluster


def test_master_addresses_are_a_list_normalised_in_order() -> None:
    assert master_addresses("a:1, b ,a:1,[::1]:7") == ["a:1", "b:50053", "[::1]:7"]
    with pytest.raises(UsageError):
        master_addresses(" , ")


def test_the_cli_uses_the_next_master_when_the_first_is_dead_and_says_which(cluster: Cluster) -> None:
    cluster.join_b()
    a, b = cluster.a, cluster.b
    b.start_agent("w1")
    both = f"{a.master_address},{b.master_address}"
    first = b.cli("agent", "list", "--json", "--master", both)
    assert first.returncode == 0, first.stderr.decode()
    assert first.stderr == b"", "the first master answers: nothing to say"

    a.procs[0].kill()
    listed = b.cli("agent", "list", "--json", "--master", both)
    assert listed.returncode == 0, listed.stderr.decode()
    assert f"using the master at {b.master_address}" in listed.stderr.decode()
    assert "w1" in {agent["name"] for agent in json.loads(listed.stdout)}

    env = {**b.env, "SLOTH_RUNNER_MASTER": both}
    ran = b.cli("agent", "run", "w1", "echo still here", env=env)
    assert ran.returncode == 0, ran.stderr.decode()
    assert ran.stdout == b"still here\n"
