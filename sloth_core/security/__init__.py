"""Transport security: the master's CA, joining, identities, authorization.

Modules, one job each:

- :mod:`.names`         how identities are spelled in certificates and TLS names
- :mod:`.ca`            key, certificate and CSR primitives (no disk)
- :mod:`.pki`           the master's CA and identities on disk (``MasterPKI``)
- :mod:`.tokens`        join tokens: format, issuing, verifying
- :mod:`.revocation`    issued and revoked certificate serials
- :mod:`.join`          the Join endpoint (master) and joining (agent)
- :mod:`.credentials`   admin credentials: local, and the remote bundle
- :mod:`.layout`        file names in master and agent data dirs
- :mod:`.identity`      who is calling and may they (``Authorizer``)

Names are re-exported lazily so that importing this package does not import
grpc or cryptography until something is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "MasterPKI": "pki",
    "JoinTokens": "tokens",
    "JoinToken": "tokens",
    "JoinServicer": "join",
    "join_master": "join",
    "load_agent_tls": "join",
    "find_local_token": "join",
    "load_local_admin_tls": "credentials",
    "load_admin_bundle": "credentials",
    "Identity": "identity",
    "Authorizer": "identity",
    "peer_identity": "identity",
    "MASTER_SERVER_NAME": "names",
    "agent_server_name": "names",
}

__all__ = [
    "MASTER_SERVER_NAME",
    "Authorizer",
    "Identity",
    "JoinServicer",
    "JoinToken",
    "JoinTokens",
    "MasterPKI",
    "agent_server_name",
    "find_local_token",
    "join_master",
    "load_admin_bundle",
    "load_agent_tls",
    "load_local_admin_tls",
    "peer_identity",
]

if TYPE_CHECKING:
    from .credentials import load_admin_bundle, load_local_admin_tls
    from .identity import Authorizer, Identity, peer_identity
    from .join import JoinServicer, find_local_token, join_master, load_agent_tls
    from .names import MASTER_SERVER_NAME, agent_server_name
    from .pki import MasterPKI
    from .tokens import JoinToken, JoinTokens


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
