"""Operators fail over: several master addresses (a list, or a DNS name), tried in order, and the one in use is named."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from sloth_core.client import MasterClient
from sloth_core.errors import UsageError
from sloth_core.harness import wait_for
from sloth_core.names import master_addresses
from sloth_tui.app import create_app
from tests.cluster.conftest import Cluster
from tests.tui.support import screen_text
from tests.tui.support import wait_for as console_wait


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


# A resolver of the test's own in every process it starts: /etc/hosts stays untouched, and the
# name resolves only where this file is on PYTHONPATH, so the test cannot pass by accident.
FAKE_DNS = '''
import socket

_real = socket.getaddrinfo


def _getaddrinfo(host, port, *args, **kwargs):
    if host == {name!r}:
        return [entry for ip in {ips!r} for entry in _real(ip, port, *args, **kwargs)]
    return _real(host, port, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo
'''
CLUSTER_NAME = "masters.sloth.test"


def _second_loopback() -> str:
    """Another address of this machine: IPv6 loopback where there is one (containers may lack it)."""
    import socket

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return "::1"
    except OSError:
        return "127.0.0.2"


def _with_dns(env: dict[str, str], where: Path, ips: list[str]) -> dict[str, str]:
    where.mkdir(exist_ok=True)
    (where / "sitecustomize.py").write_text(FAKE_DNS.format(name=CLUSTER_NAME, ips=ips))
    path = env.get("PYTHONPATH", "")
    return {**env, "PYTHONPATH": f"{where}{os.pathsep}{path}" if path else str(where)}


def test_a_dns_name_resolving_to_both_masters_fails_over_for_the_agent_and_the_cli(
    cluster: Cluster, tmp_path: Path,
) -> None:
    a, b = cluster.a, cluster.b
    port = a.master_port
    other = _second_loopback()
    cluster.join_b(bind=other, port=port)  # the same port on another address: one name, two masters
    env = _with_dns(a.env, tmp_path / "dns", ["127.0.0.1", other])
    name = f"{CLUSTER_NAME}:{port}"
    agent = a.start_agent("w1", "--master", name, env=env)
    assert f"registered with the master at {a.master_address} ({name})".encode() in agent.log.read_bytes()

    first = a.cli("agent", "list", "--json", "--master", name, env=env)
    assert first.returncode == 0, first.stderr.decode()
    assert first.stderr == b"", "the first address answers: nothing to say"

    a.procs[0].kill()  # SIGKILL the master behind the name's first address
    wait_for(lambda: f"registered with the master at {b.master_address} ({name})".encode() in agent.log.read_bytes(),
             12, "the agent to fail over to the name's other address")
    listed = a.cli("agent", "list", "--json", "--master", name, env=env)
    assert listed.returncode == 0, listed.stderr.decode()
    assert f"the master at {a.master_address} ({name}) does not answer; using the master at {b.master_address} ({name})" \
        in listed.stderr.decode()
    assert {agent["name"] for agent in json.loads(listed.stdout)} == {"w1"}

    ran = a.cli("agent", "run", "w1", "echo via the name", env={**env, "SLOTH_RUNNER_MASTER": name})
    assert ran.returncode == 0, ran.stderr.decode()
    assert ran.stdout == b"via the name\n"
    assert f"using the master at {b.master_address}".encode() in ran.stderr


async def test_the_console_names_the_master_it_uses_and_moves_to_the_other_when_it_dies(cluster: Cluster) -> None:
    await asyncio.to_thread(cluster.join_b)
    a, b = cluster.a, cluster.b
    both = f"{a.master_address},{b.master_address}"
    app = create_app(lambda: MasterClient.connect(both, master_data_dir=a.master_dir),
                     reconnect_delays=(0.2, 0.5, 1.0), target=both)
    async with app.run_test(size=(150, 40)) as pilot:
        await console_wait(pilot, lambda: app.connection.state == "connected", 15)
        assert app.connection.target == a.master_address
        a.procs[0].kill()
        await console_wait(pilot, lambda: app.connection.state == "connected" and app.connection.target == b.master_address, 20)
        await console_wait(pilot, lambda: b.master_address in screen_text(app) and a.master_address not in screen_text(app), 5)
