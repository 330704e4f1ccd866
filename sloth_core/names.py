"""Agent names, targets and master addresses: parsing and validation."""

from __future__ import annotations

import difflib
import os
import re

from sloth_core.errors import UsageError

DEFAULT_MASTER_PORT = 50053
DEFAULT_AGENT_PORT = 50051
MASTER_ENV = "SLOTH_RUNNER_MASTER"
TOKEN_ENV = "SLOTH_RUNNER_TOKEN"  # an agent's join token
# The agent's own settings (token, master, home): never passed to a command,
# and `agent run --env` cannot set them.
SECRET_PREFIX = "SLOTH_RUNNER_"

NAME_RULE = "1-63 characters: letters, digits, '-', '_' and '.', starting with a letter or digit"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_GLOB_CHARS = set("*?[")


def is_valid_name(name: str) -> bool:
    """Whether ``name`` is acceptable for an agent (or an admin identity)."""
    return bool(_NAME_RE.fullmatch(name))


def validate_agent_name(name: str, what: str = "agent") -> str:
    """Return ``name`` or raise a :class:`UsageError` that states the rule."""
    if not is_valid_name(name):
        raise UsageError(f"invalid {what} name {name!r}: use {NAME_RULE}")
    return name


def is_glob(pattern: str) -> bool:
    return any(ch in _GLOB_CHARS for ch in pattern)


def close_names(name: str, candidates: list[str], limit: int = 3) -> list[str]:
    return difflib.get_close_matches(name, candidates, n=limit, cutoff=0.5)


def split_host_port(value: str, *, default_port: int, what: str = "address") -> tuple[str, int]:
    """Parse ``HOST:PORT``, ``HOST`` or ``[V6]:PORT``; raise UsageError otherwise."""
    text = value.strip()
    if not text:
        raise UsageError(f"empty {what}: expected HOST:PORT")
    host: str
    port_text: str | None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UsageError(f"malformed {what} {value!r}: expected [IPv6]:PORT")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise UsageError(f"malformed {what} {value!r}: expected [IPv6]:PORT")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:
        raise UsageError(f"malformed {what} {value!r}: write IPv6 addresses as [ADDR]:PORT")
    else:
        host, port_text = text, None
    if not host or any(c.isspace() for c in host) or "/" in host:
        raise UsageError(f"malformed {what} {value!r}: expected HOST:PORT")
    if port_text is None:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"malformed {what} {value!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def resolve_master_address(flag: str | None, master_data_dir: str | os.PathLike[str] | None = None) -> str:
    """``--master``, else ``$SLOTH_RUNNER_MASTER``, else the address the local master
    recorded in its data dir (``master.json``), else 127.0.0.1:50053; normalised.

    Several masters of a cluster are a comma-separated list (``a:50053,b:50053``),
    normalised each; :func:`master_addresses` splits it again.
    """
    value = flag or os.environ.get(MASTER_ENV) or _local_master(master_data_dir) or f"127.0.0.1:{DEFAULT_MASTER_PORT}"
    return ",".join(master_addresses(value))


def master_addresses(value: str) -> list[str]:
    """``a:50053,b`` → ``["a:50053", "b:50053"]``, in order, without repeats.

    A DNS name that resolves to several addresses stays one entry: gRPC's
    resolver tries each of them when it connects.
    """
    found: list[str] = []
    for part in value.split(","):
        if not part.strip():
            continue
        host, port = split_host_port(part.strip(), default_port=DEFAULT_MASTER_PORT, what="master address")
        address = join_host_port(host, port)
        if address not in found:
            found.append(address)
    if not found:
        raise UsageError(f"no master address in {value!r}")
    return found


def _local_master(master_data_dir: str | os.PathLike[str] | None) -> str | None:
    from sloth_core import paths
    from sloth_core.endpoint import local_master_address

    return local_master_address(paths.master_data_dir(master_data_dir))


def parse_env(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` of ``--env`` (the master checks the key and the value)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"malformed --env {text!r}: expected KEY=VALUE")
    return key, value


def parse_label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not re.match(r"^[A-Za-z0-9_.\-/]+$", key):
        raise UsageError(f"malformed label {text!r}: expected KEY=VALUE")
    return key, value

