"""A DNS name that resolves to several addresses stands for several masters.

``--master masters.example.com:50053`` may name a whole cluster: each address
the name resolves to is then a master of its own, tried in the resolver's
order exactly like the entries of ``a:50053,b:50053``, and named when it is
the one in use. A name that resolves to one address (or not at all) is left
as written: gRPC resolves it when it connects and reports what fails. Names
are looked up when a connection is about to be made and again after one
broke, so a changed record is seen without a restart.

Dialing a master by IP address changes nothing for TLS: the master's
certificate is checked against the cluster's master name, never the host
(:data:`sloth_core.security.names.MASTER_SERVER_NAME`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

from sloth_core.names import DEFAULT_MASTER_PORT, join_host_port, split_host_port


@dataclass(frozen=True)
class MasterTarget:
    """One master to try: the address to dial, and the name it was resolved from (if it was)."""

    address: str
    name: str = ""  # "masters.example.com:50053" when that name stands for several masters

    def __str__(self) -> str:
        return f"{self.address} ({self.name})" if self.name else self.address


def _host(address: str) -> tuple[str, int]:
    return split_host_port(address, default_port=DEFAULT_MASTER_PORT, what="master address")


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def has_names(addresses: list[str]) -> bool:
    """Whether any of ``addresses`` is a DNS name (which may stand for several masters)."""
    return any(not is_ip(_host(address)[0]) for address in addresses)


async def expand(addresses: list[str]) -> list[MasterTarget]:
    """``addresses`` in order, each name that resolves to several addresses replaced by them, without repeats."""
    loop = asyncio.get_running_loop()
    found: dict[str, MasterTarget] = {}
    for address in addresses:
        host, port = _host(address)
        resolved: list[str] = []
        if not is_ip(host):
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError:
                infos = []  # gRPC will say the name does not resolve
            for info in infos:
                ip = str(info[4][0])
                if ip not in resolved:
                    resolved.append(ip)
        if len(resolved) < 2:
            found.setdefault(address, MasterTarget(address))
            continue
        for ip in resolved:
            dial = join_host_port(ip, port)
            found.setdefault(dial, MasterTarget(dial, address))
    return list(found.values())


class MasterList:
    """The masters an agent or a client may use: as given, then with the names looked up."""

    def __init__(self, value: str) -> None:
        from sloth_core.names import master_addresses

        #: As given (``a:50053,b:50053``); a DNS name among them may stand for several masters.
        self.configured = master_addresses(value)
        #: Whether any is a name (then :meth:`look_up` before the first use, and after a failure).
        self.has_names = has_names(self.configured)
        self.looked_up = not self.has_names
        self._targets = [MasterTarget(address) for address in self.configured]

    @property
    def addresses(self) -> list[str]:
        """Every master to try, in order (names expanded once looked up)."""
        return [t.address for t in self._targets]

    def label(self, address: str) -> str:
        """``address`` as the user is told it: with the name it was resolved from."""
        return next((str(t) for t in self._targets if t.address == address), address)

    async def look_up(self) -> None:
        self._targets = await expand(self.configured)
        self.looked_up = True
