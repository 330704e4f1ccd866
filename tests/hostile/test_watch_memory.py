"""Hostile: consoles that stop reading cannot take the master's memory (issue 10, item 9).

100 Watch(include_output) subscribers that never read, during a 200 MB run,
once took the master to 2.6 GB: each subscriber's bound held, their sum did
not. Now one budget (64 MiB) bounds all of them together, each one that is
cut off is told why, and a console that keeps up is not cut off.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fleet import Fleet, wait_for

pytestmark = pytest.mark.timeout(240)

STALLED = 100
RUN_BYTES = 200_000_000
RSS_LIMIT = 300 * 1024 * 1024


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
def test_stalled_watchers_share_one_budget_and_are_told_why(fleet: Fleet, tmp_path: Path) -> None:
    master = fleet.start_master()
    fleet.start_agent("a1")
    bundle = tmp_path / "consoles.json"
    assert fleet.cli("master", "credentials", "--out", str(bundle)).returncode == 0
    watchers = subprocess.Popen(
        [sys.executable, "-m", "tests.hostile.stalled_watchers", fleet.master_address, str(bundle), str(STALLED)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=fleet.env,
    )
    try:
        assert watchers.stdout is not None and watchers.stdin is not None
        assert watchers.stdout.readline().strip() == b"ready", watchers.stderr.read() if watchers.stderr else b""

        peak = [rss(master.pid)]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.02):  # sample every 20 ms until told to stop
                peak[0] = max(peak[0], rss(master.pid))

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            started = time.monotonic()
            result = fleet.cli("agent", "run", "a1", f"head -c {RUN_BYTES} /dev/zero", "--raw", timeout=180)
            took = time.monotonic() - started
        finally:
            done.set()
            sampler.join()
        assert result.returncode == 0 and len(result.stdout) == RUN_BYTES, result.stderr[-500:]
        print(f"200 MB run with {STALLED} stalled watchers: {took:.1f} s, master peak RSS {peak[0] / 2**20:.0f} MiB")
        assert peak[0] < RSS_LIMIT, f"master peaked at {peak[0] / 2**20:.0f} MiB"

        # The consoles read again: each was cut off, and told why.
        watchers.stdin.write(b"go\n")
        watchers.stdin.flush()
        line = watchers.stdout.readline()
        assert line, watchers.stderr.read() if watchers.stderr else b""
        outcomes = json.loads(line)
        assert len(outcomes) == STALLED
        told = collections.Counter((kind, message.split(":")[0]) for kind, message, _ in outcomes)
        assert told == {("TooSlowError", "this watcher fell too far behind"): STALLED}, told
        assert all(received < RUN_BYTES for _, _, received in outcomes)
        assert any("for all watchers together" in message for _, message, _ in outcomes)
        assert "Traceback" not in master.text()
        wait_for(lambda: watchers.poll() is not None, what="the watchers to exit")
    finally:
        if watchers.poll() is None:
            watchers.kill()
            watchers.wait()
