"""What every client command shares: connecting to the master, running async."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sloth_core.client import MasterClient

T = TypeVar("T")


def connect(args: argparse.Namespace) -> MasterClient:
    from sloth_core.client import MasterClient

    if args.insecure and not getattr(args, "quiet_insecure", False):
        from sloth_core.cli.render import print_warning

        print_warning("--insecure: talking plaintext to the master, without authentication")
    return MasterClient.connect(
        args.master,
        credentials=args.credentials,
        insecure=args.insecure,
        master_data_dir=args.master_data_dir,
        on_failover=say_failover,
    )


def say_failover(previous: str, now: str) -> None:
    """Several masters: say on stderr which one we use when the first choice does not answer."""
    from sloth_core.cli.render import print_warning

    print_warning(f"the master at {previous} does not answer; using the master at {now}")


def with_client(args: argparse.Namespace, body: Callable[[MasterClient], Awaitable[T]]) -> T:
    """Connect, run ``body(client)`` on a fresh loop, close."""

    async def main() -> T:
        client = connect(args)
        try:
            return await body(client)
        finally:
            await client.close()

    return asyncio.run(main())

