"""The console's state, without a screen: filter, sort, marks, output buffers, history."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from rich.text import Text

from sloth_core import errors
from sloth_core.proto import sloth_pb2 as pb
from sloth_tui.app import unusable_credentials
from sloth_tui.batching import Coalescer
from sloth_tui.model.connection import Connection
from sloth_tui.model.fleet import Agent, Filter, FleetModel, empty_message
from sloth_tui.model.prompt_history import PromptHistory
from sloth_tui.model.runs import NOTICE, STDERR, STDOUT, RunStore, RunView, clean_text, end_of
from sloth_tui.widgets.flow import flow_lines


def agent(name: str, status: str = "online", **labels: str) -> Agent:
    return Agent(name=name, address=f"10.0.0.{len(name)}:50051", status=status, labels=labels,
                 version="0.1.0", last_seen=100.0)


def fleet_of(*agents: Agent) -> FleetModel:
    fleet = FleetModel()
    fleet.replace_all(agents)
    return fleet


class TestFilter:
    def test_words_match_name_address_and_labels(self) -> None:
        web = agent("web-1", role="web")
        assert Filter.parse("web").matches(web)
        assert Filter.parse("role=web").matches(web)
        assert Filter.parse("10.0.0").matches(web)
        assert not Filter.parse("db").matches(web)

    def test_status_and_label_terms(self) -> None:
        down = agent("db-2", "offline", role="db")
        assert Filter.parse("status:off").matches(down)
        assert not Filter.parse("status:online").matches(down)
        assert Filter.parse("label:role=db").matches(down)
        assert Filter.parse("label:role").matches(down)
        assert not Filter.parse("label:role=web").matches(down)
        assert not Filter.parse("label:zone").matches(down)

    def test_every_term_must_match(self) -> None:
        assert not Filter.parse("status:offline web").matches(agent("web-1"))
        assert not Filter()


class TestFleet:
    def test_sort_repeat_reverses_and_ties_break_by_name(self) -> None:
        fleet = fleet_of(agent("b"), agent("a", "offline"), agent("c"))
        assert fleet.visible() == ["a", "b", "c"]
        fleet.sort_by("status")
        assert fleet.visible() == ["b", "c", "a"]
        fleet.sort_by("status")
        assert fleet.visible() == ["a", "c", "b"]

    def test_snapshot_removes_what_is_gone_and_drops_its_mark(self) -> None:
        fleet = fleet_of(agent("a"), agent("b"))
        fleet.toggle_mark("b")
        changes = fleet.replace_all([agent("a")])
        assert changes.removed == {"b"}
        assert fleet.marks == set()

    def test_unchanged_agent_is_not_reported(self) -> None:
        fleet = fleet_of(agent("a"))
        assert not fleet.upsert(agent("a"))
        assert fleet.upsert(agent("a", "offline")).updated == {"a"}

    def test_runs_in_flight_are_counted_from_watch_events(self) -> None:
        fleet = fleet_of(agent("a"))
        run = pb.RunInfo(run_id="r1", agent="a", status=pb.RUN_RUNNING, started_at=5)
        assert fleet.run_started(run).updated == {"a"}
        assert fleet.running("a") == 1
        assert fleet.active_run_of("a") is run
        fleet.run_finished("r1")
        assert fleet.running("a") == 0
        assert fleet.active_run_of("a") is None


def run_view(max_lines: int = 1000) -> RunView:
    return RunView(pb.RunInfo(run_id="r", agent="a", command="x", status=pb.RUN_RUNNING), max_lines=max_lines)


class TestRunView:
    def test_lines_split_across_chunks_and_streams(self) -> None:
        run = run_view()
        run.feed(pb.STDOUT, b"hel")
        run.feed(pb.STDOUT, b"lo\nwor")
        run.feed(pb.STDERR, b"oops\n")
        run.feed(pb.STDOUT, b"ld\n")
        assert run.lines == ["hello", "wor", "oops", "ld"]
        assert list(run.kinds) == [STDOUT, STDOUT, STDERR, STDOUT]

    def test_utf8_split_between_chunks_and_invalid_bytes(self) -> None:
        run = run_view()
        data = "héllo\n".encode()
        run.feed(pb.STDOUT, data[:2])
        run.feed(pb.STDOUT, data[2:])
        run.feed(pb.STDOUT, b"bad \xff byte\n")
        assert run.lines == ["héllo", "bad \ufffd byte"]

    def test_terminal_control_sequences_cannot_reach_the_screen(self) -> None:
        assert clean_text("\x1b[31mred\x1b[0m\x1b]0;title\x07 ok") == "red ok"
        assert clean_text("a\tb") == "a       b"
        assert clean_text("50%\r100%\r\n") == "100%\n"
        assert clean_text("bell\x07 c1\x9b") == "bell\ufffd c1\ufffd"

    def test_buffer_is_capped_from_the_head(self) -> None:
        run = run_view(max_lines=100)
        run.feed(pb.STDOUT, b"".join(b"%d\n" % i for i in range(250)))
        assert len(run.lines) <= 110
        assert run.lines[-1] == "249"
        assert run.dropped_lines + len(run.lines) == 250

    def test_notes_and_final_flush(self) -> None:
        run = run_view()
        run.feed(pb.STDOUT, b"no newline at the end")
        run.note("gap")
        assert run.lines == ["no newline at the end", "gap"]
        assert run.kinds[-1] == NOTICE

    def test_duration(self) -> None:
        run = run_view()
        run.info.started_at = 10
        assert run.duration(12.5) == 2.5
        run.update(pb.RunInfo(run_id="r", status=pb.RUN_SUCCEEDED, started_at=10, finished_at=11))
        assert run.duration(99) == 1


def test_job_summary_counts_each_outcome() -> None:
    store = RunStore()
    statuses = [pb.RUN_RUNNING, pb.RUN_SUCCEEDED, pb.RUN_FAILED, pb.RUN_TIMED_OUT, pb.RUN_REJECTED]
    store.start_job("j", "cmd", [pb.RunInfo(run_id=f"r{i}", agent=f"a{i}", status=s) for i, s in enumerate(statuses)])
    summary = store.summary("j")
    assert (summary.running, summary.succeeded, summary.failed, summary.rejected) == (1, 1, 2, 1)
    assert store.for_agent("a2").run_id == "r2"


def test_old_jobs_are_forgotten_but_not_what_is_shown_or_running() -> None:
    store = RunStore(max_runs=4)
    store.start_job("j1", "a", [pb.RunInfo(run_id="r1", agent="x", status=pb.RUN_SUCCEEDED)])
    store.start_job("j2", "b", [pb.RunInfo(run_id="r2", agent="y", status=pb.RUN_RUNNING)])
    store.start_job("j3", "c", [pb.RunInfo(run_id="r3", agent="x", status=pb.RUN_SUCCEEDED),
                                pb.RunInfo(run_id="r4", agent="z", status=pb.RUN_SUCCEEDED)])
    store.start_job("j4", "d", [pb.RunInfo(run_id="r5", agent="x", status=pb.RUN_SUCCEEDED)])
    assert "j1" not in store.jobs and "r1" not in store.runs  # finished, and x shows r5 now
    assert "j2" in store.jobs  # still running
    assert store.for_agent("z").run_id == "r4"


def test_prompt_history_recall_and_persistence(tmp_path: Path) -> None:
    path = tmp_path / "console" / "history"
    history = PromptHistory(path)
    for command in ("uptime", "df -h", "df -h", "uname -a"):
        history.add(command)
    assert history.previous("draft") == "uname -a"
    assert history.previous("") == "df -h"
    assert history.next() == "uname -a"
    assert history.next() == "draft"
    assert history.next() is None
    again = PromptHistory(path)
    assert again.entries == ["uptime", "df -h", "uname -a"]
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_coalescer_batches_in_order_and_flushes_urgent_items() -> None:
    batches: list[list[int]] = []
    batch = Coalescer(batches.append, 0.02)
    for i in range(5):
        batch.add(i)
    assert batches == []
    await asyncio.sleep(0.05)
    assert batches == [[0, 1, 2, 3, 4]]
    batch.add(5)
    batch.add(6, urgent=True)
    assert batches[-1] == [5, 6]


def test_a_run_ends_are_described_the_same_way_everywhere() -> None:
    cancelled = pb.RunInfo(status=pb.RUN_CANCELLED, exit_code=143, signal=15)
    assert end_of(cancelled) == "signal 15 (SIGTERM)"  # not "143": the signal is what happened
    assert end_of(pb.RunInfo(status=pb.RUN_FAILED, exit_code=3)) == "exit 3"
    assert end_of(pb.RunInfo(status=pb.RUN_RUNNING, exit_code=-1)) == ""
    assert end_of(pb.RunInfo(status=pb.RUN_REJECTED, exit_code=-1)) == ""


def test_summaries_wrap_between_items_never_inside_one() -> None:
    items = [Text("job 8170bb3d"), Text("$ apt-get upgrade -y"), Text("→ 4 agents"), Text("● 2 running")]
    lines = [line.plain for line in flow_lines(items, 40)]
    assert lines == ["job 8170bb3d  $ apt-get upgrade -y", "→ 4 agents  ● 2 running"]
    assert [t.plain for t in flow_lines([Text("x" * 50)], 20)] == ["x" * 19 + "…"]


def test_an_empty_table_says_why() -> None:
    conn = Connection(target="10.0.0.2:50053")
    empty = FleetModel()
    assert empty_message(empty, conn) == "Connecting to 10.0.0.2:50053…"
    conn.failed("cannot reach the master at 10.0.0.2:50053", attempt=1, retry_at=5.0, now=0.0)
    assert empty_message(empty, conn).startswith(
        "Not connected to 10.0.0.2:50053: cannot reach the master at 10.0.0.2:50053."
    )
    conn.connected()
    assert empty_message(empty, conn).startswith("No agents yet.")
    fleet = fleet_of(agent("web-1"))
    fleet.set_filter("db")
    assert empty_message(fleet, conn) == "No agent matches the filter “db”. Esc clears it."


def test_the_retry_countdown_counts_and_statuses_go_stale_only_after_a_connection() -> None:
    conn = Connection(target="m")
    conn.failed("down", attempt=1, retry_at=104.0, now=100.0)
    assert not conn.stale  # nothing was shown yet, so nothing is stale
    assert [conn.retry_in(t) for t in (100.0, 101.2, 103.5, 104.0, 109.0)] == [4, 3, 1, 0, 0]
    conn.connected()
    assert conn.retry_in(100.0) is None
    conn.failed("lost the connection", attempt=1, retry_at=201.0, now=200.0)
    assert conn.stale and conn.lost_at == 200.0


def test_credentials_that_cannot_work_end_the_console_like_the_cli() -> None:
    assert unusable_credentials(errors.CredentialsError("no admin credentials"), connected_once=False)
    assert unusable_credentials(errors.CertificateRevokedError("revoked"), connected_once=True)
    # After a session worked, a closed handshake is likelier a restarting master: keep trying.
    assert not unusable_credentials(errors.TLSRefusedError("refused"), connected_once=True)
    assert not unusable_credentials(errors.MasterUnreachableError("down"), connected_once=False)


def test_a_job_whose_history_may_be_lost_says_so_in_its_summary() -> None:
    from sloth_tui.model.runs import Job, Summary
    from sloth_tui.widgets.job_summary import summary_items

    job = Job("j-1", "uptime", run_ids=["r-1"], warning="history is not being saved: disk full")
    head, _ = summary_items(job, Summary(running=1))
    assert "⚠ history is not being saved: disk full" in [item.plain for item in head]


def test_ids_are_shown_as_the_cli_lists_them() -> None:
    from sloth_tui.model.fmt import short_id

    assert short_id("r-9f72ba01c3") == "r-9f72ba01"  # `runs show r-9f72ba01` finds it
    assert short_id("j-348bbc7d10") == "j-348bbc7d"
