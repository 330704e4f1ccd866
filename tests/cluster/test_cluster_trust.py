"""One cluster, one CA: a second master joins with a token, and tokens and revocations are the cluster's."""

from __future__ import annotations

import json
import re

from cryptography import x509

from sloth_core.harness import wait_for
from sloth_core.security.tokens import JoinToken
from tests.cluster.conftest import Cluster


def _issuer(pem: bytes) -> str:
    return x509.load_pem_x509_certificate(pem).issuer.rfc4514_string()


def test_a_second_master_joins_with_a_token_and_honours_tokens_minted_on_the_first(cluster: Cluster) -> None:
    cluster.join_b()
    a, b = cluster.a, cluster.b
    b_pki = b.master_dir / "pki"
    assert not (b_pki / "ca-key.pem").exists(), "the root's key stays with the first master"
    assert (b_pki / "ca.pem").read_bytes() == (a.master_dir / "pki" / "ca.pem").read_bytes()
    assert "master CA (b)" in _issuer((b_pki / "master.pem").read_bytes())

    # A token minted on A, spent at B's join port: the same token, another master.
    minted = a.cli("master", "token", "create", "--once")
    assert minted.returncode == 0, minted.stderr.decode()
    on_b = JoinToken.parse(minted.stdout.decode())
    b_join_port = json.loads((b.master_dir / "master.json").read_text())["join_port"]
    token_for_b = str(JoinToken(b_join_port, on_b.token_id, on_b.secret, on_b.pin))
    agent_home = b.home / "agent-web1"
    b.start_agent("web1", "--token", token_for_b, "--data-dir", str(agent_home))
    agent_cert = (agent_home / "pki" / "agent.pem").read_bytes()
    assert "master CA (b)" in _issuer(agent_cert), "B signed it with its own intermediate"

    ran = b.cli("agent", "run", "web1", "echo via b", "--json")
    assert ran.returncode == 0, ran.stderr.decode()
    run_id = json.loads(ran.stdout)["run_id"]
    # Any master shows the history: A's admin, A's address, B's run.
    listed = wait_for(
        lambda: (r := a.cli("runs", "list", "--json")).returncode == 0 and run_id in r.stdout.decode() and r,
        15, "the run through B to show on A",
    )
    assert json.loads(listed.stdout)[0]["status"] == "succeeded"

    # A single-use token spent on B is spent on A too.
    again = a.cli("agent", "start", "--name", "web2", "--token", minted.stdout.decode().strip(),
                  "--port", "0", "--bind-address", "127.0.0.1", "--data-dir", str(a.home / "agent-web2"), timeout=30)
    assert again.returncode != 0
    assert "already used" in again.stderr.decode()


def test_a_revocation_on_one_master_is_refused_on_the_other(cluster: Cluster) -> None:
    cluster.join_b()
    a, b = cluster.a, cluster.b
    bundle = a.home / "alice.json"
    made = a.cli("master", "credentials", "--out", str(bundle), "--name", "alice")
    assert made.returncode == 0, made.stderr.decode()
    as_alice = ["--master", b.master_address, "--credentials", str(bundle)]
    listed = a.cli("agent", "list", *as_alice)
    assert listed.returncode == 0, listed.stderr.decode()

    revoked = a.cli("master", "credentials", "revoke", "alice")
    assert revoked.returncode == 0, revoked.stderr.decode()
    refused = wait_for(lambda: (r := a.cli("agent", "list", *as_alice)).returncode != 0 and r, 10,
                       "B to refuse the revoked admin")
    assert "revoked" in refused.stderr.decode()
    assert b"Traceback" not in refused.stderr


def test_master_status_shows_every_master_of_the_cluster(cluster: Cluster) -> None:
    cluster.join_b()
    cluster.b.start_agent("w1")
    from sloth_core.harness import wait_for

    def status() -> str:
        shown = cluster.a.cli("master", "status")
        assert shown.returncode == 0, shown.stderr.decode()
        return shown.stdout.decode()

    text = wait_for(lambda: "1 agent(s) connected" in (t := status()) and t, 15, "B's agent to be counted")
    assert "cluster: 2 master(s) sharing postgresql://" in text
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  127.0.0.1:")}
    assert "root CA" in lines[cluster.a.master_address]
    assert "master CA (b)" in lines[cluster.b.master_address]
    assert "1 agent(s) connected" in lines[cluster.b.master_address]
    assert "0 agent(s) connected" in lines[cluster.a.master_address]
    assert all(re.search(r"  m-[0-9a-f]{10}  .*  up \d", line) for line in lines.values()), "identity and uptime"
