"""How identities are spelled in certificates and TLS server names.

Every certificate the master's CA issues carries exactly one URI SAN naming
its identity, and (for parties that also serve) a DNS SAN that gRPC's
hostname verification checks against the channel's ``server_name``:

=========  ==========================  =====================================
identity   URI SAN                     DNS SAN / server_name
=========  ==========================  =====================================
master     ``sloth://master``          ``master.sloth``
agent X    ``sloth://agent/X``         ``x.agent.sloth`` (see below)
admin Y    ``sloth://admin/Y``         none (admins only dial)
=========  ==========================  =====================================

The URI is the identity: the servers authorize on it. The DNS SAN only lets
a *client* check whom it reached, and gRPC compares DNS names without regard
to case and would accept ``a_b`` or ``a..b`` verbatim. To keep the agent
name -> DNS name mapping one-to-one (so agent ``Web1`` can never pass for
``web1``) and every DNS SAN a valid hostname, names that are already a
lowercase hostname are used as is (``web-1`` -> ``web-1.agent.sloth``);
any other name (capitals, ``_``, empty or dash-edged labels) becomes
``<readable>-<hash>.hashed-agent.sloth``, under a different parent domain
so it can never equal a plain name's DNS name.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal

from sloth_core.names import is_valid_name, validate_agent_name

CertKind = Literal["master", "agent", "admin"]

URI_SCHEME = "sloth://"
MASTER_SERVER_NAME = "master.sloth"
# The join endpoint's self-signed certificate; its trust comes from the pin
# in the token, the name only has to match on both ends.
JOIN_SERVER_NAME = "join.sloth"

_AGENT_DOMAIN = "agent.sloth"
_HASHED_AGENT_DOMAIN = "hashed-agent.sloth"
_HOST_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")




def identity_uri(kind: CertKind, name: str = "") -> str:
    """The URI SAN for an identity (``sloth://master``, ``sloth://agent/web1``)."""
    if kind == "master":
        return f"{URI_SCHEME}master"
    return f"{URI_SCHEME}{kind}/{validate_agent_name(name, kind)}"


def parse_identity_uri(uri: str) -> tuple[CertKind, str] | None:
    """Inverse of :func:`identity_uri`; None for anything else."""
    if not uri.startswith(URI_SCHEME):
        return None
    rest = uri[len(URI_SCHEME) :]
    if rest == "master":
        return "master", ""
    kind, sep, name = rest.partition("/")
    if sep and kind in ("agent", "admin") and is_valid_name(name):
        return kind, name  # type: ignore[return-value]  # narrowed by the check above
    return None


def agent_server_name(name: str) -> str:
    """The TLS server name the master expects when it dials agent ``name``."""
    validate_agent_name(name)
    labels = name.split(".")
    if name == name.lower() and all(_HOST_LABEL_RE.fullmatch(label) for label in labels):
        return f"{name}.{_AGENT_DOMAIN}"
    readable = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "agent"
    digest = hashlib.sha256(name.encode()).hexdigest()[:20]
    return f"{readable}-{digest}.{_HASHED_AGENT_DOMAIN}"
