"""One id everywhere: any unique prefix, with or without r-/j-; short ids in listings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sloth_core import errors
from sloth_core.ids import short_ids
from sloth_core.master.id_prefix import resolve_id
from sloth_core.storage import RunRecord
from sloth_core.storage.sqlite import SQLiteStorage
from tests.fleet import Fleet


def test_listings_print_the_shortest_unique_prefix_of_at_least_eight_digits() -> None:
    ids = ["r-9f72ba0123", "r-9f72ba0199", "r-0000000000", "j-348bbc1f00"]
    short = short_ids(ids)
    assert short["r-0000000000"] == "r-00000000"  # never fewer than 8 hex digits
    assert short["j-348bbc1f00"] == "j-348bbc1f"
    assert short["r-9f72ba0123"] == "r-9f72ba012" and short["r-9f72ba0199"] == "r-9f72ba019"


@pytest.fixture
async def storage(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = SQLiteStorage(tmp_path / "master.db")
    await store.open()
    for run_id, job_id in [("r-9f72ba0123", "j-348bbc1f00"), ("r-9f72ba0199", "j-348bbc1f00"), ("r-1111111111", "j-9f00000000")]:
        store.save_run(RunRecord(run_id, job_id, "a1", "true", "admin:local", 2, 1.0))
    yield store
    await store.close()


async def test_the_master_resolves_any_unique_prefix(storage: SQLiteStorage) -> None:
    assert await resolve_id(storage, "r-9f72ba0123") == ("run", "r-9f72ba0123")
    assert await resolve_id(storage, "9f72ba012") == ("run", "r-9f72ba0123")  # r- optional
    assert await resolve_id(storage, "R-1111") == ("run", "r-1111111111")
    assert await resolve_id(storage, "j-348b", ("run", "job")) == ("job", "j-348bbc1f00")
    assert await resolve_id(storage, "348b", ("run", "job")) == ("job", "j-348bbc1f00")
    with pytest.raises(errors.AmbiguousIdError, match="r-9f72ba0123, r-9f72ba0199"):
        await resolve_id(storage, "r-9f72")
    with pytest.raises(errors.AmbiguousIdError, match="r-9f72ba0123, r-9f72ba0199, j-9f00000000"):
        await resolve_id(storage, "9f", ("run", "job"))  # a run and a job share the digits
    with pytest.raises(errors.RunNotFoundError):
        await resolve_id(storage, "r-abc")
    with pytest.raises(errors.RunNotFoundError):
        await resolve_id(storage, "j-348b")  # runs only: a job id is not a run


def test_every_command_takes_the_ids_the_cli_prints(fleet: Fleet) -> None:
    fleet.start_master()
    fleet.start_agent("a1")
    fleet.start_agent("a2")
    ran = fleet.cli("agent", "run", "a1,a2", "echo out-$SLOTH_AGENT", "--json")
    rows = {r["agent"]: r for r in map(json.loads, ran.stdout.decode().splitlines())}
    run_id, job_id = str(rows["a1"]["run_id"]), str(rows["a1"]["job_id"])

    listing = fleet.cli("runs", "list").stdout.decode().splitlines()
    printed = {line.split()[0] for line in listing[1:]}
    assert run_id[:10] in printed and all(len(i) >= 10 for i in printed)  # r- and 8 digits at least
    jobs = {line.split()[1] for line in listing[1:]}
    assert jobs == {job_id[:10]}

    for typed in (run_id, run_id[:10], run_id[2:10], run_id[:6]):  # as printed, without r-, as the console's
        shown = fleet.cli("runs", "show", typed)
        assert shown.returncode == 0 and shown.stdout == b"out-a1\n", (typed, shown.stderr)
    by_job = fleet.cli("runs", "list", "--job", job_id[2:8], "--json")
    assert {r["run_id"] for r in json.loads(by_job.stdout)} == {rows["a1"]["run_id"], rows["a2"]["run_id"]}
    for typed in (job_id[:10], job_id[2:10]):  # a job id lists the job's runs
        job_shown = fleet.cli("runs", "show", typed)
        assert job_shown.returncode == 0 and str(rows["a2"]["run_id"])[:10] in job_shown.stdout.decode()
    nothing = fleet.cli("runs", "show", "abcdef0")
    assert nothing.returncode == 255 and nothing.stderr == b"error: no run or job with id 'abcdef0'\n"
    cancelled = fleet.cli("runs", "cancel", job_id[:10])
    assert cancelled.returncode == 0 and b"nothing to cancel" in cancelled.stdout

    ambiguous = fleet.cli("runs", "show", "r-")
    err = ambiguous.stderr.decode()
    assert ambiguous.returncode != 0 and "could mean" in err
    assert str(rows["a1"]["run_id"]) in err and str(rows["a2"]["run_id"]) in err
