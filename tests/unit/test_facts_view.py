"""Facts: what an agent sends per beat, how the master merges it, how operators see it."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from sloth_core import bounds, facts_view
from sloth_core.agent.facts import Facts, FactsReporter
from sloth_core.errors import InvalidArgumentError
from sloth_core.proto import sloth_pb2 as pb

GiB = 1024**3
BASE = Facts(cpus=4, load=(0.5, 0.4, 0.3), mem_total=8 * GiB, mem_available=4 * GiB, disk_total=100 * GiB,
             disk_used=50 * GiB, uptime_s=100, kernel="6.8", os="Debian", arch="x86_64", addresses=("10.0.0.1",))


@pytest.mark.parametrize(
    ("percent", "grade"),
    [(None, ""), (0.0, "ok"), (70.0, "ok"), (70.1, "warn"), (90.0, "warn"), (90.1, "high"), (100.0, "high")],
)
def test_grades_are_green_to_70_yellow_to_90_then_red(percent: float | None, grade: str) -> None:
    assert facts_view.grade(percent) == grade


def test_a_beat_sends_only_what_changed_at_most_every_interval_and_resends_what_failed() -> None:
    now = [0.0]
    current = [BASE]
    reporter = FactsReporter(read=lambda: current[0], clock=lambda: now[0], interval_s=15)

    async def story() -> None:
        hello = await reporter.hello()
        assert hello.cpus == 4 and hello.load1 == 0.5 and list(hello.addresses) == ["10.0.0.1"]
        current[0] = replace(BASE, load=(2.0, 0.4, 0.3), uptime_s=110)
        now[0] = 14.0
        assert await reporter.for_beat() is None  # not yet: at most every 15 s
        now[0] = 15.0
        beat = await reporter.for_beat()
        assert [f.name for f, _ in beat.ListFields()] == ["load1", "load5", "load15", "uptime_s"]
        # That beat was lost: the next read offers the change again.
        now[0] = 30.0
        again = await reporter.for_beat()
        assert again is not None and again.load1 == 2.0
        reporter.delivered()
        now[0] = 45.0
        assert await reporter.for_beat() is None  # nothing new since the master heard
        now[0] = 600.0
        full = await reporter.for_beat()  # every 10 minutes, all of them (a restarted master has none)
        assert full is not None and full.kernel == "6.8" and full.cpus == 4

    asyncio.run(story())


def test_no_facts_means_none_sent() -> None:
    reporter = FactsReporter(enabled=False, read=lambda: BASE)
    assert asyncio.run(reporter.hello()) is None


def test_the_master_merges_a_diff_and_replaces_addresses() -> None:
    held = pb.Facts(cpus=4, load1=0.5, mem_total=8 * GiB, mem_available=4 * GiB, addresses=["10.0.0.1"])
    assert facts_view.merge(held, pb.Facts(load1=3.0, addresses=["10.0.0.2"]))
    assert held.load1 == 3.0 and held.cpus == 4 and list(held.addresses) == ["10.0.0.2"]
    assert not facts_view.merge(held, pb.Facts())
    assert facts_view.mem_percent(held) == 50.0
    assert facts_view.load_per_cpu(held) == 0.75
    assert facts_view.disk_percent(held) is None  # never reported: unknown, not 0 %


def test_facts_from_an_agent_are_bounded() -> None:
    bounds.check_facts(pb.Facts(kernel="6.8", addresses=["10.0.0.1"]))
    with pytest.raises(InvalidArgumentError, match="control characters"):
        bounds.check_facts(pb.Facts(os="Debian\x1b[2J"))
    with pytest.raises(InvalidArgumentError, match="addresses"):
        bounds.check_facts(pb.Facts(addresses=[f"10.0.0.{i}" for i in range(33)]))


@pytest.mark.parametrize(
    ("env", "cwd", "said"),
    [
        ({"A-B": "x"}, "", "not a variable name"),
        ({"SLOTH_RUNNER_HOME": "/x"}, "", "cannot set SLOTH_RUNNER_HOME"),
        ({"A": "x\x00y"}, "", "NUL"),
        ({"A": "x" * 5000}, "", "the limit is 4,096"),
        ({}, "srv/app", "absolute"),
        ({}, "/srv/\x00", "NUL"),
    ],
)
def test_env_and_cwd_are_checked_at_the_master(env: dict[str, str], cwd: str, said: str) -> None:
    with pytest.raises(InvalidArgumentError, match=said):
        bounds.check_run_environment(env, cwd)


def test_good_env_and_cwd_pass() -> None:
    bounds.check_run_environment({"RELEASE": "42", "_x1": "a=b c"}, "/srv/app dir")
