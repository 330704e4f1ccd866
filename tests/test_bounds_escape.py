"""The bounds and the escaping function, without a master."""

from __future__ import annotations

import logging

import pytest

from sloth_core import bounds
from sloth_core.errors import InvalidArgumentError
from sloth_core.escape import EscapingFilter, clean_output, shortened, shown
from sloth_core.master.admission import Admission
from sloth_core.master.watch_budget import WatchBudget


def test_shown_makes_controls_visible_and_leaves_text_alone() -> None:
    assert shown("web-1 ü 漢") == "web-1 ü 漢"
    assert shown("a\x1b[2Jb\nc\td\x9be\u202ef") == "a\\x1b[2Jb\\nc\\td\\x9be\\u202ef"
    assert shortened("x" * 300) == "x" * 200 + "… (300 chars)"
    assert clean_output("a\x1b[31mred\x1b[0m\r\n") == "ared\n"


def test_log_records_stay_one_line() -> None:
    record = logging.LogRecord("t", logging.INFO, "f", 1, "agent %s from %s (%d)", ("a\nFORGED", ValueError("x\ny"), 3), None)
    assert EscapingFilter().filter(record)
    assert record.getMessage() == "agent a\\nFORGED from x\\ny (3)"


def check(**overrides: object) -> None:
    fields: dict[str, object] = {"address": "10.0.0.1:50051", "hostname": "h", "os": "Linux", "version": "1", "labels": {}}
    bounds.check_agent_metadata(**{**fields, **overrides})  # type: ignore[arg-type]


def test_agent_metadata_limits() -> None:
    check()
    check(labels={f"k{i}": "v" * 60 for i in range(64)}, address="[::1]:1")
    for bad in (
        {"labels": {f"k{i}": "" for i in range(65)}},
        {"labels": {"k": "v" * 256}},
        {"labels": {"": "v"}},
        {"hostname": "h" * 256},
        {"os": "a\x00"},
        {"address": "host"},
        {"address": "host:99999"},
        {"address": "ho st:1"},
        {"address": ""},
    ):
        with pytest.raises(InvalidArgumentError) as info:
            check(**bad)
        assert "\n" not in str(info.value)


def test_command_limits_and_listings() -> None:
    bounds.check_command("echo ok")
    for bad in ("a\x00", "x" * (128 * 1024 + 1), "\udcff"):
        with pytest.raises(InvalidArgumentError):
            bounds.check_command(bad)
    assert bounds.listed_text("y" * 2000).startswith("y" * 1024 + "… (2,000 chars in all")
    assert bounds.page([5, 5, 5], lambda n: n, budget=11) == [5, 5]
    assert bounds.page([50], lambda n: n, budget=11) == [50]


def test_budget_and_admission() -> None:
    budget = WatchBudget(10)
    assert budget.fits(10) and not budget.fits(11)
    budget.take(8)
    budget.give(20)
    assert budget.used == 0
    admission = Admission(1)
    with admission.call(), pytest.raises(Exception, match="master busy"), admission.call():
        pass
    assert admission.active == 0


@pytest.mark.asyncio
async def test_one_budget_for_all_watchers_lets_go_of_the_one_furthest_behind() -> None:
    from sloth_core import errors
    from sloth_core.master.events import EventBus
    from sloth_core.proto import sloth_pb2 as pb

    bus = EventBus(WatchBudget(1000))
    reader, stalled = bus.subscribe(include_output=True), bus.subscribe(include_output=True)
    reader.min_interval_s = 0.0
    batches = reader.batches()
    for _ in range(12):  # 12 x 100 bytes to each: more than the 1,000 both may hold
        bus.run(pb.RunEvent(run_id="r-1", output=pb.OutputChunk(data=b"x" * 100, seq=1)))
        assert bus.budget.used <= 1000
        await anext(batches)  # the reader keeps up
    with pytest.raises(errors.TooSlowError, match="for all watchers together"):
        await anext(stalled.batches())
    assert not reader.overflowed
    await batches.aclose()
    assert bus.budget.used == 0
