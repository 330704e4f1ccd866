"""The console's facts: filter comparisons, colour grades and sorting, on the model and the table's cells."""

from __future__ import annotations

import pytest

from sloth_core.proto import sloth_pb2 as pb
from sloth_tui.model.fleet import Agent, FleetModel
from sloth_tui.widgets.agent_table import percent_cell

GiB = 1024**3


def agent(name: str, *, cpus: int = 4, load: float = 0.0, mem: float = 0.0, disk: float = 0.0) -> Agent:
    facts = pb.Facts(cpus=cpus, load1=load, mem_total=100 * GiB, mem_available=int((100 - mem) * GiB),
                     disk_total=100 * GiB, disk_used=int(disk * GiB))
    return Agent.from_pb(pb.AgentInfo(name=name, status=pb.AGENT_ONLINE, facts=facts))


FLEET = [
    agent("idle", load=0.1, mem=10, disk=20),
    agent("busy", load=9.0, mem=85, disk=95),
    agent("full", load=2.5, mem=95, disk=50),
    Agent.from_pb(pb.AgentInfo(name="silent", status=pb.AGENT_ONLINE)),  # --no-facts
]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("load>2", ["busy", "full"]),
        ("load>=9", ["busy"]),
        ("mem>80", ["busy", "full"]),
        ("disk>90", ["busy"]),
        ("disk<30", ["idle"]),
        ("cpu>70", ["busy"]),  # 9.0 / 4 CPUs = 225 %; full is 62 %
        ("mem>80 disk<60", ["full"]),
        ("MEM>80% b", ["busy"]),  # case, a % sign, and a word together
        ("mem>abc", []),  # not a comparison: a word nobody has
    ],
)
def test_the_filter_compares_facts(text: str, shown: list[str]) -> None:
    fleet = FleetModel()
    fleet.replace_all(FLEET)
    fleet.set_filter(text)
    assert sorted(fleet.visible()) == sorted(shown)


def test_agents_without_facts_never_match_a_comparison_and_sort_last() -> None:
    fleet = FleetModel()
    fleet.replace_all(FLEET)
    fleet.set_filter("mem<100")
    assert "silent" not in fleet.visible()
    fleet.set_filter("")
    fleet.sort_by("mem")
    assert fleet.visible() == ["full", "busy", "idle", "silent"]  # the fullest first, as k9s sorts
    fleet.sort_by("disk")
    assert fleet.visible()[0] == "busy"


@pytest.mark.parametrize(
    ("percent", "text", "colour"),
    [(12.0, "12%", "green"), (70.0, "70%", "green"), (74.0, "74%", "yellow"), (91.0, "91%", "bold red")],
)
def test_percent_cells_are_graded_like_k9s(percent: float, text: str, colour: str) -> None:
    cell = percent_cell(percent)
    assert cell.plain == text and str(cell.style) == colour


def test_an_unreported_fact_is_a_dash_not_zero() -> None:
    assert percent_cell(None).plain == "-"


def test_a_facts_change_in_a_heartbeat_batch_updates_the_agent() -> None:
    fleet = FleetModel()
    fleet.replace_all(FLEET)
    changes = fleet.heartbeats(["idle"], 10.0, [pb.AgentFacts(name="idle", facts=pb.Facts(
        cpus=4, load1=0.1, mem_total=100 * GiB, mem_available=5 * GiB))])
    assert changes.updated == {"idle"}
    assert fleet.agents["idle"].mem == pytest.approx(95.0)
    assert fleet.agents["idle"].last_seen == 10.0
    assert ("Memory", "95.0 GiB used of 100.0 GiB (95%)") in fleet.agents["idle"].details
