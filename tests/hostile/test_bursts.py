"""Hostile: bursts of calls complete, or are told "master busy" (issue 10, item 10).

2,000 concurrent Runs over two agents once ended 7-8 % with a bare CANCELLED
(grpc core cancelled calls the server had not picked up yet: more than 1,000
waiting), which the CLI reported as "the call was cancelled", exit 130.
Now every call completes; a master over its call limit answers "busy",
which the client retries with backoff and reports plainly if it gives up.
"""

from __future__ import annotations

import asyncio
import collections
import time

import pytest

from sloth_core import errors
from sloth_core.client import MasterClient
from sloth_core.status_words import run_key
from tests.fleet import Fleet, admin_tls
from tests.hostile.trust_support import one_error

pytestmark = pytest.mark.timeout(240)


async def run_many(client: MasterClient, count: int, agents: list[str]) -> collections.Counter[str]:
    async def one(i: int) -> str:
        outcome = "no finished event"
        try:
            async for event in client.run(names=[agents[i % len(agents)]], command="true"):
                if event.HasField("finished"):
                    outcome = run_key(event.finished.status)
        except errors.SlothError as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        return outcome

    return collections.Counter(await asyncio.gather(*(one(i) for i in range(count))))


def test_two_thousand_runs_and_five_thousand_calls_all_complete(fleet: Fleet) -> None:
    master = fleet.start_master()
    fleet.start_agent("a1")
    fleet.start_agent("a2")

    async def burst() -> tuple[collections.Counter[str], collections.Counter[str]]:
        async with MasterClient(fleet.master_address, admin_tls(fleet)) as client:
            runs = await run_many(client, 2000, ["a1", "a2"])

            async def list_once() -> str:
                try:
                    return str(len(await client.list_agents()))
                except errors.SlothError as exc:
                    return f"{type(exc).__name__}: {exc}"

            calls = collections.Counter(await asyncio.gather(*(list_once() for _ in range(5000))))
            return runs, calls

    started = time.monotonic()
    runs, calls = asyncio.run(burst())
    print(f"2,000 runs and 5,000 unary calls: {time.monotonic() - started:.1f} s; {runs}; {calls}")
    assert runs == {"succeeded": 2000}
    assert calls == {"2": 5000}
    assert "Traceback" not in master.text()


def test_a_busy_master_is_retried_and_reported_plainly(fleet: Fleet) -> None:
    fleet.start_master("--max-calls", "20")
    fleet.start_agent("a1")

    async def scenario() -> collections.Counter[str]:
        async with MasterClient(fleet.master_address, admin_tls(fleet)) as client:
            # Twice the limit at once: the ones told "busy" back off and get in.
            runs = await run_many(client, 40, ["a1"])
            # Every slot held by a Watch: a call gives up after its retries, and says so.
            watches = [client.watch() for _ in range(20)]
            for watch in watches:
                await watch.__anext__()
            result = await asyncio.to_thread(fleet.cli, "agent", "list")
            for watch in watches:
                await watch.aclose()  # type: ignore[attr-defined]
            error = one_error(result, 255)
            assert error.startswith("error: master busy: 20 calls in flight (its limit is 20); gave up after 8 tries over ")
            assert "cancel" not in error
            return runs

    assert asyncio.run(scenario()) == {"succeeded": 40}
    assert fleet.cli("agent", "list").returncode == 0  # the slots are free again
