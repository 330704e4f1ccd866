"""Leases and the one sweeper, against a real PostgreSQL (no processes)."""

from __future__ import annotations

import asyncio

from sloth_core.harness import wait_until
from sloth_core.master.events import EventBus
from sloth_core.master.lease import MasterLease
from sloth_core.master.registry import Registry
from sloth_core.proto import sloth_pb2 as pb
from sloth_core.storage import AgentRecord, RunRecord
from sloth_core.storage.postgres import PostgresStorage
from tests.pgtest import temp_database


async def test_one_master_sweeps_at_a_time_and_the_lock_passes_when_it_dies() -> None:
    with temp_database() as url:
        stores = [PostgresStorage(url) for _ in range(3)]
        await asyncio.gather(*(s.open() for s in stores))
        leases = [
            MasterLease(url, store, Registry(store, EventBus(), heartbeat_interval_s=1.0), master_id=f"m-{i}",
                        address=f"127.0.0.1:{i}", identity="root CA", refresh_s=0.05)
            for i, store in enumerate(stores)
        ]
        try:
            await asyncio.gather(*(lease.start() for lease in leases))
            tasks = [asyncio.create_task(lease.run()) for lease in leases]
            await wait_until(lambda: any(lease.sweeping for lease in leases), 10, "one master to take the lock")
            # The property is one over time: ten refresh periods in which the others keep trying.
            await asyncio.sleep(10 * 0.05)
            sweepers = [lease for lease in leases if lease.sweeping]
            assert len(sweepers) == 1, [lease.master_id for lease in sweepers]
            tasks[leases.index(sweepers[0])].cancel()
            await sweepers[0]._close()  # the connection drops, as when its process dies
            await wait_until(lambda: any(lease.sweeping for lease in leases if lease is not sweepers[0]), 5,
                             "another master to take the lock")
            assert sum(lease.sweeping for lease in leases if lease is not sweepers[0]) == 1
            for task in tasks:
                task.cancel()
        finally:
            for lease in leases:
                await lease._close()
            await asyncio.gather(*(s.close() for s in stores))


async def test_reaping_marks_lost_only_the_runs_of_expired_masters_and_offline_their_stale_agents() -> None:
    with temp_database() as url:
        store = PostgresStorage(url)
        await store.open()
        registry = Registry(store, EventBus(), heartbeat_interval_s=1.0)
        live = MasterLease(url, store, registry, master_id="m-live", address="a", identity="root CA")
        dead = MasterLease(url, store, registry, master_id="m-dead", address="b", identity="root CA",
                           lease_s=0.0)
        try:
            await live.start()
            await dead.start()
            for run_id, driver in (("r-live", "m-live"), ("r-dead", "m-dead")):
                store.save_run(RunRecord(run_id, "j-1", "w", "sleep", "admin:t", pb.RUN_RUNNING, 1.0, driver=driver))
            store.save_agent(AgentRecord("stale", "x", status=pb.AGENT_ONLINE, last_seen=1.0))
            await store.flush()
            await asyncio.sleep(0.05)  # the dead master's zero-length lease is now in the past
            assert await live.reap() == (1, 1)
            assert (await store.get_run("r-dead")).status == pb.RUN_LOST  # type: ignore[union-attr]
            assert (await store.get_run("r-live")).status == pb.RUN_RUNNING  # type: ignore[union-attr]
            assert [m.id for m in await live.masters()] == ["m-live"]
        finally:
            await live.close()
            await dead._close()
            await store.close()
