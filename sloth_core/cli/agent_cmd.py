"""`sloth-runner agent start|stop|list|get|delete`"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from sloth_core import paths
from sloth_core.cli import daemon
from sloth_core.cli.common import with_client
from sloth_core.errors import SlothError, UsageError
from sloth_core.names import parse_label, resolve_master_address, validate_agent_name


def _kind(name: str) -> str:
    return f"agent-{name}"


def start(args: argparse.Namespace) -> int:
    name = validate_agent_name(args.name)
    # --master, else $SLOTH_RUNNER_MASTER, else what the local master recorded.
    master = resolve_master_address(args.master, args.master_data_dir)
    # Several masters (a:50053,b:50053): the agent's session fails over from one to the next.
    labels = dict(parse_label(text) for text in args.label)
    if args.insecure:
        from sloth_core.cli.render import print_warning

        print_warning("--insecure: this agent takes commands from whatever answers at the master's address"
                      + (" and from anyone who can reach its port" if args.port is not None else ""))
    if args.daemon:
        return _launch_daemon(args, name)

    from sloth_core.agent.server import Agent, AgentConfig
    from sloth_core.cli import logs
    from sloth_core.errors import PortInUseError

    logs.setup(log_file=args.log_file)
    config = AgentConfig(
        name=name,
        master=master,
        data_dir=paths.agent_data_dir(name, args.data_dir),
        port=args.port,
        bind_address=args.bind_address,
        labels=labels,
        insecure=args.insecure,
        token=daemon.read_secret(args.secret_fd) or args.token,
        master_data_dir=Path(args.master_data_dir).expanduser() if args.master_data_dir else None,
        facts=args.facts,
        facts_interval_s=args.facts_interval,
        facts_proc=args.facts_proc,
    )
    agent = Agent(config)

    async def started() -> None:
        pass

    pid_path = Path(args.pid_file) if args.pid_file else daemon.pid_file(_kind(name))
    try:
        daemon.serve_until_signalled(agent.start, agent.stop, started, pid_path, agent.stopping, what=f"agent {name}")
    except PortInUseError as exc:
        raise SlothError(f"{exc} (another agent there? choose another with --port)") from None
    if agent.fatal is not None:
        raise agent.fatal  # e.g. the master came back requiring TLS: our plaintext port is closed
    return 0


def _launch_daemon(args: argparse.Namespace, name: str) -> int:
    """Start the agent in the background; its join token goes through a pipe.

    Neither on the daemon's command line (world-readable) nor in its
    environment, which every command it runs would otherwise inherit.
    """
    import os

    from sloth_core.names import TOKEN_ENV

    token = args.token or os.environ.pop(TOKEN_ENV, None)
    argv, skip = [], False
    for arg in args.argv:
        if skip:
            skip = False
        elif arg == "--token":
            skip = True
        elif not arg.startswith("--token="):
            argv.append(arg)
    return daemon.launch(_kind(name), argv, f"agent {name}", secret=token)


def stop(args: argparse.Namespace) -> int:
    name = validate_agent_name(args.name)
    if args.local:
        return daemon.stop(_kind(name), f"agent {name}")

    async def body(client: Any) -> int:
        await client.stop_agent(name)
        print(f"agent {name} stopped")
        return 0

    return with_client(args, body)


def _agent_dict(agent: Any) -> dict[str, Any]:
    from sloth_core import facts_view, status_words

    return {
        "name": agent.name,
        "address": agent.address,
        "status": status_words.agent_word(agent.status),
        "version": agent.version,
        "hostname": agent.hostname,
        "os": agent.os,
        "labels": dict(agent.labels),
        "registered_at": agent.registered_at,
        "last_seen": agent.last_seen,
        "running": agent.running,
        "facts": facts_view.as_dict(agent.facts),
    }


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def list_agents(args: argparse.Namespace) -> int:
    agents = with_client(args, lambda c: c.list_agents())
    rows = [_agent_dict(a) for a in agents]
    wide = args.output == "wide"
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    if not rows:
        print("no agents registered yet (start one with `sloth-runner agent start --name NAME`; add --master HOST:PORT on another machine)")
        return 0
    from sloth_core.cli.render import STATUS_COLOURS, ago, paint
    from sloth_core.escape import shown

    # Plain padding rather than a rich Table: rendering 1,000 rows with rich
    # takes ~0.45 s, more than the whole command's budget.
    now = time.time()
    header: tuple[str, ...] = ("NAME", "ADDRESS", "STATUS", "VERSION", "LABELS", "LAST SEEN", "RUNNING")
    # What agents report is escaped: a label must not repaint the operator's terminal.
    cells = [
        (r["name"], shown(r["address"]), r["status"], shown(r["version"]), shown(_labels(r["labels"])) or "-",
         ago(r["last_seen"], now), str(r["running"]))
        for r in rows
    ]
    if wide:
        header += ("LOAD", "MEM%", "DISK%")
        cells = [cell + _wide_cells(agent.facts) for cell, agent in zip(cells, agents, strict=True)]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    out = [paint("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(), "1")]
    for cell in cells:
        padded = [c.ljust(w) for c, w in zip(cell, widths, strict=True)]
        padded[2] = paint(padded[2], STATUS_COLOURS.get(cell[2], "0"))
        out.append("  ".join(padded).rstrip())
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def _wide_cells(facts: Any) -> tuple[str, str, str]:
    from sloth_core import facts_view

    return (
        facts_view.load_text(facts),
        facts_view.percent_text(facts_view.mem_percent(facts)),
        facts_view.percent_text(facts_view.disk_percent(facts)),
    )


def get(args: argparse.Namespace) -> int:
    agent = with_client(args, lambda c: c.get_agent(args.name))
    row = _agent_dict(agent)
    if args.json:
        json.dump(row, sys.stdout, indent=2)
        print()
        return 0
    from sloth_core import facts_view
    from sloth_core.cli.render import STATUS_COLOURS, ago, paint
    from sloth_core.escape import shown

    when = lambda ts: f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(ts))} ({ago(ts)})" if ts else "never"  # noqa: E731
    fields = [
        ("Name", row["name"]),
        ("Status", paint(row["status"], STATUS_COLOURS.get(row["status"], "0"))),
        ("Address", shown(row["address"])),
        ("Hostname", shown(row["hostname"])),
        ("OS", shown(row["os"])),
        ("Version", shown(row["version"])),
        ("Labels", shown(_labels(row["labels"])) or "-"),
        ("Registered", when(row["registered_at"])),
        ("Last seen", when(row["last_seen"])),
        ("Running", str(row["running"])),
        *((label, shown(text)) for label, text in facts_view.detail_rows(agent.facts)),
    ]
    for key, value in fields:
        print(f"{key + ':':<12}{value}")
    return 0


def delete(args: argparse.Namespace) -> int:
    name = args.name
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"refusing to delete agent {name!r} without confirmation: add --yes")
        answer = input(f"Delete agent {name!r} from the registry (and revoke its certificate)? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not deleted")
            return 1

    async def body(client: Any) -> int:
        await client.delete_agent(name)
        print(f"agent {name} deleted")
        return 0

    return with_client(args, body)
