"""The master's streams folded into the console's state: no screen, no server."""

from __future__ import annotations

from sloth_core.proto import sloth_pb2 as pb
from sloth_tui.model.feed import Feed


def agent(name: str, status: int = pb.AGENT_ONLINE) -> pb.AgentInfo:
    return pb.AgentInfo(name=name, address="10.0.0.1:50051", status=status)


def snapshot(*agents: pb.AgentInfo, active: tuple[pb.RunInfo, ...] = ()) -> pb.WatchEvent:
    return pb.WatchEvent(snapshot=pb.Snapshot(agents=list(agents), active_runs=list(active)))


def agent_event(kind: int, info: pb.AgentInfo) -> pb.WatchEvent:
    return pb.WatchEvent(agent=pb.AgentEvent(type=kind, agent=info))


def run_info(run_id: str, agent: str, status: int = pb.RUN_PENDING, job_id: str = "j1") -> pb.RunInfo:
    return pb.RunInfo(run_id=run_id, job_id=job_id, agent=agent, command="uptime", status=status, exit_code=-1)


def output(run_id: str, data: bytes, stream: int = pb.STDOUT) -> pb.RunEvent:
    return pb.RunEvent(run_id=run_id, output=pb.OutputChunk(stream=stream, data=data))


def test_a_snapshot_then_agent_events_keep_the_fleet_and_say_what_changed() -> None:
    feed = Feed()
    feed.push_watch([snapshot(agent("web-1"), agent("web-2"))])
    changes = feed.apply()
    assert changes.snapshot and changes.fleet.updated == {"web-1", "web-2"}
    assert sorted(feed.fleet.agents) == ["web-1", "web-2"]

    feed.push_watch([
        agent_event(pb.AGENT_WENT_OFFLINE, agent("web-2", pb.AGENT_OFFLINE)),
        agent_event(pb.AGENT_DELETED, agent("web-1")),
        pb.WatchEvent(heartbeats=pb.Heartbeats(names=["web-2"], at=50.0)),
    ])
    changes = feed.apply()
    assert not changes.snapshot
    assert changes.fleet.updated == {"web-2"} and changes.fleet.removed == {"web-1"}
    assert feed.fleet.agents["web-2"].status == "offline"
    assert feed.fleet.agents["web-2"].last_seen == 50.0


def test_runs_in_flight_elsewhere_are_counted_from_the_watch_feed() -> None:
    feed = Feed()
    feed.push_watch([snapshot(agent("web-1"), active=(run_info("r1", "web-1", pb.RUN_RUNNING),))])
    feed.apply()
    assert feed.fleet.running("web-1") == 1
    finished = run_info("r1", "web-1", pb.RUN_SUCCEEDED)
    feed.push_watch([pb.WatchEvent(run=pb.RunEvent(run_id="r1", finished=finished))])
    assert feed.apply().fleet.updated == {"web-1"}
    assert feed.fleet.running("web-1") == 0


def test_a_job_started_here_collects_its_runs_output_and_outcome() -> None:
    feed = Feed()
    stream = feed.open_job("uptime")
    feed.push_run(stream, [
        pb.RunEvent(job_id="j1", job=pb.JobStarted(runs=[run_info("r1", "web-1"), run_info("r2", "db-1")])),
        pb.RunEvent(run_id="r1", agent="web-1", started=run_info("r1", "web-1", pb.RUN_RUNNING)),
        output("r1", b"up 12 days\nload"),
        output("r1", b" 0.1\n", pb.STDOUT),
    ])
    changes = feed.apply()
    assert changes.runs.new_job == "j1"
    assert changes.runs.lines == {"r1": 2}
    run = feed.store.runs["r1"]
    assert run.lines == ["up 12 days", "load 0.1"] and run.active
    finished = run_info("r1", "web-1", pb.RUN_SUCCEEDED)
    finished.exit_code = 0
    feed.push_run(stream, [pb.RunEvent(run_id="r1", agent="web-1", finished=finished)])
    changes = feed.apply()
    assert "r1" in changes.runs.runs and run.status == pb.RUN_SUCCEEDED
    assert feed.store.in_flight_here() == [feed.store.runs["r2"]]  # quitting now would cancel db-1's
    feed.push_ended(stream, None)
    feed.apply()
    assert not feed.store.jobs["j1"].stream_open and feed.store.in_flight_here() == []


def test_a_broken_stream_detaches_its_runs_and_a_job_that_never_started_says_why() -> None:
    feed = Feed()
    stream = feed.open_job("sleep 100")
    feed.push_run(stream, [pb.RunEvent(job_id="j1", job=pb.JobStarted(runs=[run_info("r1", "web-1", pb.RUN_RUNNING)]))])
    feed.push_ended(stream, "lost the connection to the master")
    changes = feed.apply()
    run = feed.store.runs["r1"]
    assert run.detached and run.lines[-1] == "— lost the stream: lost the connection to the master —"
    assert changes.runs.lines == {"r1": 1}
    assert feed.detached_runs() == [run]

    never = feed.open_job("uptime")
    feed.push_ended(never, "agent web-9 is offline")
    assert feed.apply().failed_jobs == ["agent web-9 is offline"]


def test_a_newer_replay_of_a_run_supersedes_the_older_one() -> None:
    feed = Feed()
    info = run_info("r1", "web-1", pb.RUN_SUCCEEDED)
    old, _ = feed.open_replay(info)
    new, run = feed.open_replay(info)
    feed.push_run(old, [output("r1", b"from the old stream\n")])
    feed.push_run(new, [output("r1", b"from the new one\n")])
    feed.apply()
    assert run.lines == ["from the new one"]


def test_a_burst_is_applied_in_slices_of_bounded_agent_updates() -> None:
    feed = Feed()
    feed.push_watch([snapshot(*(agent(f"n-{i:03d}") for i in range(150)))])
    feed.push_watch([agent_event(pb.AGENT_UPDATED, agent(f"n-{i:03d}", pb.AGENT_OFFLINE)) for i in range(150)])
    slices = 0
    while feed.pending:
        feed.apply(max_agent_events=100, budget_s=10.0)
        slices += 1
    assert slices == 3  # the snapshot (150), then 100 and 50 updates
    assert feed.fleet.counts()["offline"] == 150


def test_the_masters_word_on_its_history_is_kept_and_reported_when_it_changes() -> None:
    feed = Feed()
    failing = pb.StoreHealth(store="sqlite", failing=True, warning="history is not being saved: disk full")
    event = snapshot(agent("web-1"))
    event.snapshot.store.CopyFrom(failing)
    feed.push_watch([event])
    assert feed.apply().health and feed.history_health.warning == "history is not being saved: disk full"
    feed.push_watch([pb.WatchEvent(store=failing)])
    assert not feed.apply().health  # nothing new
    feed.push_watch([pb.WatchEvent(store=pb.StoreHealth(store="sqlite"))])
    assert feed.apply().health and feed.history_health.warning == ""
