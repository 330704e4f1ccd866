"""The argument parser. Handlers are named by "module:function" and imported
only when chosen, so `--help` and `agent run` never load what they don't use."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any

from sloth_core import __version__
from sloth_core.names import DEFAULT_AGENT_PORT, DEFAULT_MASTER_PORT, NAME_RULE

RUN_STATUSES = ["running", "succeeded", "failed", "cancelled", "timed_out", "lost", "rejected"]


def lazy(target: str) -> Callable[[argparse.Namespace], int]:
    module, func = target.split(":")

    def handler(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(f"sloth_core.cli.{module}"), func)(args)

    return handler


def _client_flags(p: argparse.ArgumentParser, *, json: bool = True) -> None:
    g = p.add_argument_group("connection")
    g.add_argument(
        "--master", metavar="HOST:PORT",
        help=f"the master to talk to (default: $SLOTH_RUNNER_MASTER, else 127.0.0.1:{DEFAULT_MASTER_PORT})",
    )
    g.add_argument(
        "--credentials", metavar="FILE",
        help="admin credentials bundle from `sloth-runner master credentials` "
        "(default: $SLOTH_RUNNER_CREDENTIALS, else the local master's)",
    )
    g.add_argument("--insecure", action="store_true", help="talk plaintext to a master started with --insecure")
    g.add_argument("--data-dir", dest="master_data_dir", metavar="DIR", help=argparse.SUPPRESS)
    if json:
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _master_parser(sub: Any) -> None:
    p = sub.add_parser(
        "master", help="run the master, or manage it (status, stop, token, credentials)",
        description="Run the master: it keeps the agent registry, dispatches runs and keeps their history.",
    )
    p.add_argument("-p", "--port", type=int, default=DEFAULT_MASTER_PORT, help=f"port for agents and operators (default {DEFAULT_MASTER_PORT}; 0 picks a free one)")
    p.add_argument("--bind", default="0.0.0.0", metavar="ADDR", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--join-port", type=int, default=None, metavar="PORT", help="port where new agents join with a token (default: port + 1)")
    p.add_argument("--data-dir", metavar="DIR", help="state directory (default: the user data dir, or $SLOTH_RUNNER_HOME/master)")
    p.add_argument("--daemon", action="store_true", help="run in the background; logs go to the log dir")
    p.add_argument("--insecure", action="store_true", help="plaintext, no authentication: for tests only")
    p.add_argument("--heartbeat-interval", type=float, default=5.0, metavar="S", help="seconds between agent heartbeats (default 5); offline after 3 missed")
    p.add_argument("--output-cap", type=int, default=1024 * 1024, metavar="BYTES", help="output kept in history per run and stream; head and tail are kept (default 1 MiB)")
    p.add_argument("--runs-per-agent", type=int, default=1000, metavar="N", help="runs kept in history per agent (default 1000)")
    p.add_argument("--pid-file", help=argparse.SUPPRESS)
    p.set_defaults(handler=lazy("master_cmd:serve"))
    msub = p.add_subparsers(dest="master_command", metavar="[COMMAND]")
    for name, help_text in (("status", "is the local daemonized master running?"), ("stop", "stop the local daemonized master")):
        s = msub.add_parser(name, help=help_text)
        s.set_defaults(handler=lazy(f"master_cmd:{name}"))
    t = msub.add_parser("token", help="print the join token agents use with --token (or rotate/create one)")
    t.add_argument("--data-dir", metavar="DIR", help="the master's data dir")
    t.set_defaults(handler=lazy("master_cmd:token_show"))
    tsub = t.add_subparsers(dest="token_command", metavar="[COMMAND]")
    r = tsub.add_parser("rotate", help="replace the default token; joined agents keep working")
    r.add_argument("--data-dir", metavar="DIR", help="the master's data dir")
    r.set_defaults(handler=lazy("master_cmd:token_rotate"))
    c = tsub.add_parser("create", help="create an extra token, optionally single-use and expiring")
    c.add_argument("--once", action="store_true", help="valid for one join only")
    c.add_argument("--ttl", metavar="DURATION", help="expiry, e.g. 30m, 1h, 2d")
    c.add_argument("--data-dir", metavar="DIR", help="the master's data dir")
    c.set_defaults(handler=lazy("master_cmd:token_create"))
    cr = msub.add_parser("credentials", help="export an admin credentials bundle for an operator elsewhere")
    cr.add_argument("--out", required=True, metavar="FILE", help="where to write the bundle (mode 0600)")
    cr.add_argument("--name", help="issue a separate admin identity admin:NAME (shown in run history; revocable alone)")
    cr.add_argument("--data-dir", metavar="DIR", help="the master's data dir")
    cr.set_defaults(handler=lazy("master_cmd:credentials"))


def _agent_parser(sub: Any) -> None:
    p = sub.add_parser("agent", help="start agents, list them, run commands on them")
    asub = p.add_subparsers(dest="agent_command", metavar="COMMAND", required=True)

    s = asub.add_parser("start", help="start an agent on this machine", description=f"Start an agent. Names: {NAME_RULE}.")
    s.add_argument("--name", required=True, help="unique agent name")
    s.add_argument("--master", required=True, metavar="HOST:PORT", help="the master to register with")
    s.add_argument("--port", type=int, default=None, help=f"also listen on this port for direct calls from the master's identity (default: no inbound port, the agent dials out; with only --bind-address, {DEFAULT_AGENT_PORT}; 0 picks a free one)")
    s.add_argument("--bind-address", default="", metavar="IP", help="with --port: address to listen on and report to the master (default: all interfaces, reporting the address that routes to the master)")
    s.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="a label for targeting (repeatable)")
    s.add_argument("--token", help="join token from `sloth-runner master token` (default: $SLOTH_RUNNER_TOKEN, or the local master's)")
    s.add_argument("--data-dir", metavar="DIR", help="where the agent keeps its certificate")
    s.add_argument("--daemon", action="store_true", help="run in the background")
    s.add_argument("--insecure", action="store_true", help="plaintext, no authentication: for tests only")
    s.add_argument("--pid-file", help=argparse.SUPPRESS)
    s.set_defaults(handler=lazy("agent_cmd:start"))

    st = asub.add_parser("stop", help="stop an agent (via the master, or --local via its pid file)")
    st.add_argument("name", help="agent name")
    st.add_argument("--local", action="store_true", help="stop the daemonized agent of that name on this machine")
    _client_flags(st)
    st.set_defaults(handler=lazy("agent_cmd:stop"))

    ls = asub.add_parser("list", help="list registered agents")
    _client_flags(ls)
    ls.set_defaults(handler=lazy("agent_cmd:list_agents"))

    g = asub.add_parser("get", help="show one agent in detail")
    g.add_argument("name")
    _client_flags(g)
    g.set_defaults(handler=lazy("agent_cmd:get"))

    d = asub.add_parser("delete", help="remove an agent from the registry (and revoke its certificate)")
    d.add_argument("name")
    d.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    _client_flags(d, json=False)
    d.set_defaults(handler=lazy("agent_cmd:delete"))

    r = asub.add_parser(
        "run", help="run a shell command on agents",
        description="Run COMMAND with `bash -c` on the target agents and stream its output. "
        "TARGETS: a name, a comma list (web-1,web-2) or a glob ('web-*'). Exit code: the remote "
        "one for a single target (255 if it could not run); for several, 0 only if all succeeded.",
    )
    r.add_argument("targets", nargs="?", default="", metavar="TARGETS")
    r.add_argument("command", nargs="?", default=None, metavar="COMMAND")
    r.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="run on agents with this label (repeatable, all must match)")
    r.add_argument("--all", action="store_true", help="run on every agent")
    r.add_argument("--timeout", type=float, default=0.0, metavar="SECONDS", help="kill a run after this long (exit 124)")
    r.add_argument("--parallel", type=int, default=0, metavar="N", help="at most N runs at once")
    r.add_argument("--raw", action="store_true", help="only the remote output, byte-exact, on the matching streams")
    _client_flags(r)
    r.set_defaults(handler=lazy("run_cmd:run"))


def _runs_parser(sub: Any) -> None:
    p = sub.add_parser("runs", help="run history: list, show, follow, cancel")
    rsub = p.add_subparsers(dest="runs_command", metavar="COMMAND", required=True)
    ls = rsub.add_parser("list", help="recent runs, newest first")
    ls.add_argument("--agent", default="")
    ls.add_argument("--status", choices=RUN_STATUSES)
    ls.add_argument("--job", default="", help="runs of one job")
    ls.add_argument("--limit", type=int, default=20)
    _client_flags(ls)
    ls.set_defaults(handler=lazy("runs_cmd:list_runs"))
    sh = rsub.add_parser("show", help="a run's details and stored output")
    sh.add_argument("run_id")
    sh.add_argument("-f", "--follow", action="store_true", help="keep streaming a live run")
    sh.add_argument("--raw", action="store_true", help="only the output, byte-exact")
    _client_flags(sh)
    sh.set_defaults(handler=lazy("runs_cmd:show"))
    c = rsub.add_parser("cancel", help="cancel a run or a whole job")
    c.add_argument("id", metavar="RUN_OR_JOB_ID")
    _client_flags(c, json=False)
    c.set_defaults(handler=lazy("runs_cmd:cancel"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sloth-runner",
        description="Run shell commands on many machines: a master keeps a registry of agents "
        "and dispatches commands to them over gRPC (mutual TLS by default).",
    )
    parser.add_argument("--version", action="version", version=f"sloth-runner {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _master_parser(sub)
    _agent_parser(sub)
    _runs_parser(sub)
    t = sub.add_parser("tui", help="the operator console")
    _client_flags(t, json=False)
    t.set_defaults(handler=lazy("console_cmd:tui"))
    d = sub.add_parser("demo", help="a throwaway master with three local agents, and the console")
    d.add_argument("--agents", type=int, default=3, help="how many local agents (default 3)")
    d.add_argument("--no-console", action="store_true", help="do not open the console; keep running until Ctrl-C")
    d.add_argument("--port", type=int, default=0, help="master port (default: a free one)")
    d.set_defaults(handler=lazy("demo_cmd:demo"))
    return parser
