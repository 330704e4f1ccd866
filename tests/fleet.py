"""Real processes for end-to-end tests: masters, agents and CLI calls.

Every process is the real `sloth-runner` program (run as `python -m
sloth_core.cli` so the test venv's interpreter is used), on loopback with
ephemeral ports, in a temporary home. Waits are on conditions, never fixed
sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

EXE = [sys.executable, "-m", "sloth_core.cli"]
HEARTBEAT_S = 0.5


def wait_for(condition: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log: Path
    name: str

    @property
    def pid(self) -> int:
        return self.popen.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            self.popen.send_signal(sig)
            self.popen.wait(timeout=15)

    def stop(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


@dataclass
class Fleet:
    home: Path
    insecure: bool = False
    procs: list[Proc] = field(default_factory=list)
    master_address: str = ""
    # The master's --data-dir when not the default under home: start_master
    # passes it, and admin commands need `--data-dir` to find its credentials.
    data_dir: Path | None = None
    _counter: int = 0

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLOTH_RUNNER_")}
        env.update({"SLOTH_RUNNER_HOME": str(self.home), "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
        if self.master_address:
            env["SLOTH_RUNNER_MASTER"] = self.master_address
        return env

    @property
    def security_flags(self) -> list[str]:
        return ["--insecure"] if self.insecure else []

    def spawn(self, argv: list[str], name: str, env: dict[str, str] | None = None) -> Proc:
        self._counter += 1
        log = self.home / f"{self._counter:02d}-{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                [*EXE, *argv], env=env or self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True,
            )
        proc = Proc(popen, log, name)
        self.procs.append(proc)
        return proc

    @property
    def master_dir(self) -> Path:
        return self.data_dir or self.home / "master"

    def start_master(self, *extra: str, heartbeat: float = HEARTBEAT_S, port: int = 0) -> Proc:
        endpoint = self.master_dir / "master.json"
        if endpoint.exists():
            endpoint.unlink()
        proc = self.spawn(
            # --join-port 0: a restart on a fixed port must not collide on port + 1.
            ["master", "--bind", "127.0.0.1", "-p", str(port), "--join-port", "0",
             "--heartbeat-interval", str(heartbeat), *self.security_flags,
             *(["--data-dir", str(self.data_dir)] if self.data_dir else []), *extra],
            "master",
        )

        def up() -> bool:
            if not proc.alive():
                raise AssertionError(f"master exited: {proc.text()}")
            return endpoint.exists()

        wait_for(up, what="the master to listen")
        info = json.loads(endpoint.read_text())
        self.master_address = f"127.0.0.1:{info['port']}"
        self.master_port = info["port"]
        return proc

    def start_agent(self, name: str, *extra: str, wait: bool = True, env: dict[str, str] | None = None) -> Proc:
        proc = self.spawn(
            ["agent", "start", "--name", name, "--master", self.master_address, "--port", "0",
             "--bind-address", "127.0.0.1", *self.security_flags, *extra],
            f"agent-{name}",
            env=env,
        )
        if wait:
            def registered() -> bool:
                if not proc.alive():
                    raise AssertionError(f"agent {name} exited: {proc.text()}")
                return "registered with the master" in proc.text()

            wait_for(registered, what=f"agent {name} to register")
        return proc

    def cli(self, *args: str, timeout: float = 60, env: dict[str, str] | None = None,
            input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*EXE, *args], env=env or self.env, capture_output=True, timeout=timeout, input=input,
        )

    def client_flags(self) -> list[str]:
        return self.security_flags

    def agents(self) -> dict[str, dict[str, object]]:
        result = self.cli("agent", "list", "--json", *self.client_flags())
        assert result.returncode == 0, result.stderr.decode()
        return {a["name"]: a for a in json.loads(result.stdout)}

    def wait_status(self, name: str, status: str, timeout: float = 15.0) -> None:
        wait_for(lambda: self.agents().get(name, {}).get("status") == status, timeout,
                 what=f"agent {name} to be {status}")

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
