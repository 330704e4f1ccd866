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
from dataclasses import dataclass, field
from pathlib import Path

from sloth_core import harness
from sloth_core.harness import wait_for
from sloth_core.names import join_host_port
from sloth_core.security import layout
from sloth_core.transport import TLSConfig

EXE = [sys.executable, "-m", "sloth_core.cli"]
HEARTBEAT_S = 0.5


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
        harness.stop(self.popen)


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
        return harness.isolated_env(self.home, self.master_address)

    @property
    def security_flags(self) -> list[str]:
        return ["--insecure"] if self.insecure else []

    def spawn(self, argv: list[str], name: str, env: dict[str, str] | None = None) -> Proc:
        self._counter += 1
        log = self.home / f"{self._counter:02d}-{name}.log"
        popen = harness.spawn([*EXE, *argv], env=env or self.env, log=log)
        proc = Proc(popen, log, name)
        self.procs.append(proc)
        return proc

    @property
    def master_dir(self) -> Path:
        return self.data_dir or self.home / "master"

    def start_master(self, *extra: str, heartbeat: float = HEARTBEAT_S, port: int = 0, bind: str = "127.0.0.1") -> Proc:
        (self.master_dir / "master.json").unlink(missing_ok=True)
        proc = self.spawn(
            # --join-port 0: a restart on a fixed port must not collide on port + 1.
            ["master", "--bind", bind, "-p", str(port), "--join-port", "0",
             "--heartbeat-interval", str(heartbeat), *self.security_flags,
             *(["--data-dir", str(self.data_dir)] if self.data_dir else []), *extra],
            "master",
        )
        endpoint = harness.wait_for_master(proc.popen, self.master_dir, proc.log, timeout=15)
        self.master_address = join_host_port(bind, endpoint.port)
        self.master_port = endpoint.port
        return proc

    def start_agent(self, name: str, *extra: str, wait: bool = True, env: dict[str, str] | None = None) -> Proc:
        proc = self.spawn(
            ["agent", "start", "--name", name, "--master", self.master_address, "--port", "0",
             "--bind-address", "127.0.0.1", *self.security_flags, *extra],
            f"agent-{name}",
            env=env,
        )
        if wait:
            harness.wait_for_log(proc.popen, proc.log, "registered with the master", 15, f"agent {name} to register")
        return proc

    def cli(self, *args: str, timeout: float = 60, env: dict[str, str] | None = None,
            input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run the CLI; stdin is ``input``, else /dev/null (`agent run` forwards an open stdin, as ssh does)."""
        return subprocess.run(
            [*EXE, *args], env=env or self.env, capture_output=True, timeout=timeout, input=input,
            stdin=subprocess.DEVNULL if input is None else None,
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
        _kill_leftover_daemons(self.home)


def _kill_leftover_daemons(home: Path) -> None:
    """A daemon a failed test left behind must not outlive the test (it holds ports and CPU)."""
    for pid_file in home.rglob("*.pid"):
        try:
            pid = int(pid_file.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if b"sloth_core" in cmdline and str(home).encode() in cmdline + pid_file.read_bytes():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def agent_tls(fleet: Fleet, name: str) -> TLSConfig:
    """The identity an agent stored when it joined (what a thief would copy)."""
    pki = layout.pki_dir(fleet.home / "agents" / name)
    return TLSConfig(
        (pki / layout.AGENT_CA).read_bytes(),
        (pki / layout.AGENT_CERT).read_bytes(),
        (pki / layout.AGENT_KEY).read_bytes(),
    )


def admin_tls(fleet: Fleet) -> TLSConfig:
    """The local master's own admin identity."""
    pki = layout.pki_dir(fleet.master_dir)
    return TLSConfig(
        (pki / layout.CA_CERT).read_bytes(),
        (pki / layout.ADMIN_CERT).read_bytes(),
        (pki / layout.ADMIN_KEY).read_bytes(),
    )


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid``, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except FileNotFoundError:
                continue
            if int(stat[stat.rindex(b")") + 2 :].split()[1]) == pid:
                found.append(int(entry))
    return found
