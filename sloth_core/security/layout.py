"""Where security files live in master and agent data dirs.

Kept apart so that the master (:mod:`.pki`), local discovery
(:mod:`.credentials`) and joining (:mod:`.join`) agree on names
without importing each other.
"""

from __future__ import annotations

from pathlib import Path

PKI_DIR = "pki"

# Master data dir.
CA_CERT, CA_KEY = "ca.pem", "ca-key.pem"
MASTER_CERT, MASTER_KEY = "master.pem", "master-key.pem"
ADMIN_CERT, ADMIN_KEY = "admin.pem", "admin-key.pem"
JOIN_CERT, JOIN_KEY = "join.pem", "join-key.pem"
TOKEN_FILE = "join-token"
TOKENS_STATE_FILE = "tokens.json"
LEDGER_FILE = "certificates.json"
# A master that joined a cluster signs with its own intermediate CA (the root's key stays with the first master).
ISSUER_CERT, ISSUER_KEY = "issuer.pem", "issuer-key.pem"
# The store this master shares with the cluster (written at start): tokens and the ledger live there.
CLUSTER_FILE = "cluster.json"
MASTER_KEYS = (CA_KEY, MASTER_KEY, ADMIN_KEY, JOIN_KEY)

# Agent data dir.
AGENT_CERT, AGENT_KEY, AGENT_CA = "agent.pem", "agent-key.pem", "ca.pem"


def pki_dir(data_dir: Path) -> Path:
    return data_dir / PKI_DIR
