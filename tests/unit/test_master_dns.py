"""A DNS name that resolves to several addresses is several masters (the resolver is the test's own)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from sloth_core.master_dns import MasterTarget, expand, has_names

RECORDS = {
    "masters.sloth.test": ["10.0.0.1", "fd00::2", "10.0.0.1"],
    "one.sloth.test": ["10.0.0.9"],
}


@pytest.fixture(autouse=True)
def resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in RECORDS:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
                for ip in RECORDS[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


async def test_a_name_with_several_addresses_becomes_one_master_per_address_in_the_resolvers_order() -> None:
    targets = await expand(["masters.sloth.test:7000", "10.0.0.5:7000"])
    assert targets == [
        MasterTarget("10.0.0.1:7000", "masters.sloth.test:7000"),
        MasterTarget("[fd00::2]:7000", "masters.sloth.test:7000"),
        MasterTarget("10.0.0.5:7000"),
    ]
    assert str(targets[1]) == "[fd00::2]:7000 (masters.sloth.test:7000)", "the user sees which name it came from"


async def test_a_name_with_one_address_or_none_stays_as_written_and_repeats_are_dropped() -> None:
    targets = await expand(["one.sloth.test:7000", "nowhere.sloth.test:7000", "10.0.0.1:7000", "masters.sloth.test:7000"])
    assert [t.address for t in targets] == [
        "one.sloth.test:7000", "nowhere.sloth.test:7000", "10.0.0.1:7000", "[fd00::2]:7000",
    ]


def test_only_names_need_a_lookup() -> None:
    assert not has_names(["127.0.0.1:50053", "[::1]:50053"])
    assert has_names(["127.0.0.1:50053", "localhost:50053"])
