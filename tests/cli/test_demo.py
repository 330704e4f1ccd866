"""The demo never hides its failure: free ports when the defaults are busy, logs kept, real cause."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from sloth_core.names import DEFAULT_MASTER_PORT
from tests.fleet import EXE, wait_for

pytestmark = pytest.mark.timeout(120)


def demo_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLOTH_RUNNER_")}
    env.update({"TMPDIR": str(tmp_path / "tmp"), "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
    return env


def test_busy_default_port_the_demo_says_which_ports_it_took(tmp_path: Path) -> None:
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", DEFAULT_MASTER_PORT))
        holder.listen()
    except OSError:
        pass  # already busy: all the better
    out = tmp_path / "demo.out"
    with open(out, "wb") as log:
        demo = subprocess.Popen([*EXE, "demo", "--no-console", "--agents", "1"], env=demo_env(tmp_path),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def up() -> re.Match[str] | None:
            assert demo.poll() is None, out.read_text()
            return re.search(r"SLOTH_RUNNER_MASTER=127\.0\.0\.1:(\d+)", out.read_text())

        found = wait_for(up, timeout=40, what="the demo to come up")
        assert isinstance(found, re.Match)
        port = int(found[1])
        assert port != DEFAULT_MASTER_PORT
        assert f"port {DEFAULT_MASTER_PORT} or {DEFAULT_MASTER_PORT + 1} is busy" in out.read_text()
        assert f"takes free ports: {port}" in out.read_text()
        os.killpg(demo.pid, signal.SIGINT)
        assert demo.wait(timeout=20) == 0, out.read_text()
    finally:
        holder.close()
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()


def test_a_failed_demo_keeps_its_logs_and_prints_the_cause(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([*EXE, "demo", "--no-console", "--port", str(port)], env=demo_env(tmp_path),
                                stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    err = result.stderr.decode()
    assert result.returncode == 1 and "Traceback" not in err
    assert f"cannot listen on 127.0.0.1:{port}" in err  # the master's own reason, not "see the logs"
    logs = Path(re.search(r"logs kept in (\S+)\)", err)[1])  # type: ignore[index]
    assert logs.is_dir() and f"127.0.0.1:{port}" in (logs / "master.log").read_text()
