"""What every benchmark shares: figures, real processes, /proc readings, the machine.

Every process a benchmark starts goes through :func:`spawn`, which records it;
:func:`reap_all` (called by the runner on exit, Ctrl-C or an exception, and
by ``atexit``) stops each one by its pid: SIGTERM to its own session, then
SIGKILL. Processes run on loopback with ephemeral ports in a temporary home
(``SLOTH_RUNNER_HOME``), so a benchmark never touches the user's own files.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sloth_core import harness
from sloth_core.harness import wait_for

# ---------------------------------------------------------------- figures


@dataclass
class Figure:
    """One measured figure: its samples, its target, how it was produced."""

    key: str
    title: str
    unit: str
    samples: list[float] = field(default_factory=list)
    target: float | None = None
    higher_is_better: bool = False
    command: str = ""
    note: str = ""
    error: str = ""  # could not be measured
    failure: str = ""  # measured, but a correctness check failed (counts as FAIL)

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def status(self) -> str:
        if self.error or not self.samples:
            return "missing"
        if self.failure:
            return "FAIL"
        if self.target is None:
            return "-"
        median = self.median
        assert median is not None
        ok = median >= self.target if self.higher_is_better else median <= self.target
        return "pass" if ok else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "unit": self.unit,
            "median": self.median,
            "min": min(self.samples) if self.samples else None,
            "max": max(self.samples) if self.samples else None,
            "n": len(self.samples),
            "samples": self.samples,
            "target": self.target,
            "target_is_minimum": self.higher_is_better,
            "status": self.status,
            "command": self.command,
            "note": self.note,
            "error": self.error,
            "failure": self.failure,
        }


@dataclass
class Results:
    """Everything a run of the benchmarks produced."""

    figures: list[Figure] = field(default_factory=list)
    growth: list[dict[str, Any]] = field(default_factory=list)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def missing(self, key: str, title: str, unit: str, error: str, target: float | None = None) -> Figure:
        return self.add(Figure(key, title, unit, target=target, error=error))


def progress(message: str) -> None:
    """A line on stderr so a long run shows what it is doing (the table goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

_CHILDREN: list[subprocess.Popen[bytes]] = []


def _raise_nofile() -> None:
    """A 1,000-agent master holds ~2 sockets per agent; lift the soft fd limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


_raise_nofile()  # inherited by every child


def compile_sources() -> None:
    """Write the project's bytecode, as installing a wheel does.

    An editable install (``./dev``) leaves the sources uncompiled, and with
    ``PYTHONDONTWRITEBYTECODE`` set (as on some CI and sandboxes) nothing ever
    writes it: every process then compiled ~20 modules on start, a third more
    CPU for a short CLI command than an installed sloth-runner spends.
    """
    import compileall

    for package in ("sloth_core", "sloth_tui"):
        compileall.compile_dir(REPO / package, quiet=2)


def spawn(argv: list[str], *, env: dict[str, str], log: Path | None = None, **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start a process in its own session (so a terminal's Ctrl-C reaches only us) and record it."""
    proc = harness.spawn(argv, env=env, log=log, **kwargs)
    _CHILDREN.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process's session (it is its leader), then SIGKILL if it lingers."""
    harness.stop(proc, timeout)
    with contextlib.suppress(ValueError):
        _CHILDREN.remove(proc)


def stop_many(procs: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    """Stop several processes at once: signal all, then wait for each."""
    harness.stop_many(procs, timeout)
    for proc in procs:
        with contextlib.suppress(ValueError):
            _CHILDREN.remove(proc)


def reap_all() -> None:
    """Stop every process any benchmark started and has not stopped yet."""
    stop_many(list(_CHILDREN), timeout=5.0)


atexit.register(reap_all)


REPO = Path(__file__).resolve().parent.parent


def bench_module(module: str, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """argv and env to run ``python -m bench.<module>`` from any working directory.

    ``-P``: the working directory is not put on ``sys.path``, so a stray
    ``bench.py`` there cannot shadow this package.
    """
    path = env.get("PYTHONPATH", "")
    env = {**env, "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO)}
    return [sys.executable, "-P", "-m", f"bench.{module}"], env


def cli_argv() -> list[str]:
    """How to run `sloth-runner`: this interpreter's console script, as `pip install` made it.

    Not the PATH lookup: a version manager's shim (pyenv) in front of it adds
    ~50 ms of shell that is no part of sloth-runner. If the script is stale
    (it does not call the entry point pyproject.toml names, e.g. after the
    entry point changed without a reinstall), the module is run instead.
    """
    script = Path(sysconfig.get_path("scripts")) / "sloth-runner"
    entry = _entry_point()
    if script.is_file() and os.access(script, os.X_OK) and entry:
        module, func = entry.split(":")
        text = script.read_text(errors="replace")
        if f"from {module} import {func}" in text:
            return [str(script)]
    return [sys.executable, "-m", "sloth_core.cli"]


def _entry_point() -> str:
    import tomllib

    try:
        with open(REPO / "pyproject.toml", "rb") as f:
            return str(tomllib.load(f)["project"]["scripts"]["sloth-runner"])
    except (OSError, KeyError, ValueError):
        return ""


@dataclass
class Timed:
    elapsed_s: float
    returncode: int
    stdout: bytes
    stderr: bytes


class Cluster:
    """A temporary home with a real master and real agent processes on loopback."""

    def __init__(self, label: str, *, insecure: bool = False, keep: bool = False) -> None:
        self.home = Path(tempfile.mkdtemp(prefix=f"sloth-bench-{label}-"))
        self.insecure = insecure
        self.keep = keep
        self.master: subprocess.Popen[bytes] | None = None
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.address = ""
        self.port = 0
        (self.home / "log").mkdir()

    # ------------------------------------------------------------ environment

    @property
    def env(self) -> dict[str, str]:
        return harness.isolated_env(self.home, self.address)

    @property
    def flags(self) -> list[str]:
        return ["--insecure"] if self.insecure else []

    @property
    def master_dir(self) -> Path:
        return self.home / "master"

    def log(self, name: str) -> Path:
        return self.home / "log" / f"{name}.log"

    # ------------------------------------------------------------ processes

    def start_master(self, *extra: str, heartbeat_s: float = 5.0) -> subprocess.Popen[bytes]:
        (self.master_dir / "master.json").unlink(missing_ok=True)
        proc = spawn(
            [*cli_argv(), "master", "--bind", "127.0.0.1", "-p", "0",
             "--heartbeat-interval", str(heartbeat_s), *self.flags, *extra],
            env=self.env, log=self.log("master"),
        )
        self.master = proc
        self.port = harness.wait_for_master(proc, self.master_dir, self.log("master"), timeout=30).port
        self.address = f"127.0.0.1:{self.port}"
        return proc

    def stop_master(self) -> None:
        if self.master is not None:
            stop(self.master)
            self.master = None

    def start_agents(self, names: list[str], *extra: str, timeout: float = 120.0) -> None:
        """Start real `sloth-runner agent start` processes; return once each has registered."""
        logs = {name: self.log(f"agent-{name}") for name in names}
        offsets = {name: log.stat().st_size if log.exists() else 0 for name, log in logs.items()}
        started = {
            name: spawn(
                # As `agent start` runs by default: dialing out, no inbound port.
                [*cli_argv(), "agent", "start", "--name", name, "--master", self.address, *extra, *self.flags],
                env=self.env, log=logs[name],
            )
            for name in names
        }
        self.agents.update(started)
        waiting = set(names)

        def registered() -> bool:
            for name in list(waiting):
                text = logs[name].read_bytes()[offsets[name]:].decode(errors="replace")
                if started[name].poll() is not None:
                    raise RuntimeError(f"agent {name} exited: {text[-2000:]}")
                if "registered with the master" in text:
                    waiting.discard(name)
            return not waiting

        wait_for(registered, timeout, f"{len(names)} agent(s) to register", interval=0.1)

    def cli(self, *args: str, stdout: Any = subprocess.PIPE, stdin: Any = subprocess.DEVNULL,
            timeout: float = 120.0) -> Timed:
        """Run one `sloth-runner` command as a whole process and time it from spawn to exit.

        Its stdin is /dev/null unless given: `agent run` forwards an open stdin, as ssh does.
        """
        argv = [*cli_argv(), *args, *self.flags]
        started = time.perf_counter()
        result = subprocess.run(
            argv, env=self.env, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
            timeout=timeout, check=False,
        )
        elapsed = time.perf_counter() - started
        return Timed(elapsed, result.returncode, result.stdout or b"", result.stderr or b"")

    def admin_tls(self) -> Any:
        if self.insecure:
            return None
        from sloth_core.client import resolve_admin_tls

        return resolve_admin_tls(None, self.master_dir)

    def close(self) -> None:
        stop_many(list(self.agents.values()))
        self.agents.clear()
        self.stop_master()
        if not self.keep:
            shutil.rmtree(self.home, ignore_errors=True)
        else:
            progress(f"kept {self.home}")

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def command_line(args: list[str]) -> str:
    """A copy-pasteable rendering of a command for the report."""
    import shlex

    return " ".join(shlex.quote(a) for a in args)


# ---------------------------------------------------------------- /proc

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICK = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident set size in MB (10^6 bytes), as `ps` and `top` count it."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * _PAGE / 1e6


def pss_mb(pid: int) -> float | None:
    """Proportional set size: shared library pages divided among their users."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


@contextlib.contextmanager
def cpu_meter(pid: int) -> Iterator[Callable[[], float]]:
    """``with cpu_meter(pid) as used: ...; used()`` → CPU seconds since entering."""
    start = cpu_seconds(pid)
    yield lambda: cpu_seconds(pid) - start


# ---------------------------------------------------------------- the machine


def machine() -> dict[str, Any]:
    model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gib = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    from importlib import metadata

    result: dict[str, str] = {}
    for dist in ("sloth-runner", "grpcio", "protobuf", "cryptography", "textual", "rich"):
        try:
            result[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            result[dist] = "absent"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
            capture_output=True, text=True, timeout=5, check=False,
        )
        if head.returncode == 0:
            result["commit"] = head.stdout.strip()
    return result
