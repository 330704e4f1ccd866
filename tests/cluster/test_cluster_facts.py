"""Facts in a cluster: an agent's machine facts show on every master, not only on the one it is connected to."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sloth_core.client import MasterClient
from sloth_core.harness import wait_for
from tests.cluster.conftest import Cluster
from tests.test_facts_env_cwd import GiB, fake_proc


async def test_an_agents_facts_and_their_changes_show_on_the_master_it_is_not_connected_to(
    cluster: Cluster, tmp_path: Path,
) -> None:
    await asyncio.to_thread(cluster.join_b)
    a, b = cluster.a, cluster.b
    proc = fake_proc(tmp_path / "proc", total=8 * GiB, available=6 * GiB)  # 25 % used
    await asyncio.to_thread(b.start_agent, "web-1", "--facts-proc", str(proc), "--facts-interval", "0.5")

    def on_a(*args: str) -> str:
        shown = a.cli(*args)
        assert shown.returncode == 0, shown.stderr.decode()
        return shown.stdout.decode()

    detail = await asyncio.to_thread(
        wait_for, lambda: "(25%)" in (t := on_a("agent", "get", "web-1")) and t, 10, "A to show B's agent's facts",
    )
    assert "CPUs:" in detail and "Kernel:" in detail
    wide = on_a("agent", "list", "-o", "wide")
    assert next(r for r in wide.splitlines() if r.startswith("web-1")).split()[-2] == "25%"

    async with MasterClient.connect(a.master_address, master_data_dir=a.master_dir) as client:
        stream = client.watch()
        snapshot = (await asyncio.wait_for(anext(stream), 10)).snapshot
        assert next(x for x in snapshot.agents if x.name == "web-1").facts.mem_available == 6 * GiB

        fake_proc(proc, total=8 * GiB, available=GiB // 2)  # now 94 % used

        async def changed() -> None:
            async for event in stream:
                if event.HasField("heartbeats") and any(
                    f.name == "web-1" and f.facts.mem_available == GiB // 2 for f in event.heartbeats.facts
                ):
                    return

        await asyncio.wait_for(changed(), 15)
    assert "(94%)" in on_a("agent", "get", "web-1")
