"""The argument parser. Handlers are named by "module:function" and imported
only when chosen, so `--help` and `agent run` never load what they don't use.

Every numeric flag has a typed value (:mod:`sloth_core.cli.flags`); every
default comes from the one place that owns it (:class:`MasterConfig`,
:mod:`sloth_core.names`); every command has a one-line description, and the
ones people type have Examples.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from sloth_core import __version__
from sloth_core.cli import flags
from sloth_core.names import DEFAULT_AGENT_PORT, DEFAULT_MASTER_PORT, MASTER_ENV, NAME_RULE

RUN_STATUSES = ["running", "succeeded", "failed", "cancelled", "timed_out", "lost", "rejected"]
DEFAULT_RUNS_LIMIT = 20

RUN_EXIT_CODES = """\
exit codes:
  0 / remote  one target: the remote command's own exit code (0 when it succeeded)
  1           several targets: at least one run did not succeed
  2           usage error (bad flag, missing command or target; --stdin over 64 MiB)
  124         --timeout reached
  130         interrupted (Ctrl-C) or cancelled
  255         the command could not run or finish: unknown or offline agent,
              master unreachable, agent lost (the reason is on stderr)"""

SHELL_EXIT_CODES = """\
exit codes:
  0 / remote  the remote shell's (or CMD's) own exit code
  1           refused: not an admin identity, or unusable credentials
  2           usage error, or stdin is not a terminal
  128+N       this command got signal N (SIGTERM: 143, SIGHUP: 129); the session was ended
  255         the session could not start or was lost: unknown or offline agent, master
              unreachable or gone, agent lost, cancelled with `runs cancel` (the reason is on stderr)"""


def lazy(target: str) -> Callable[[argparse.Namespace], int]:
    module, func = target.split(":")

    def handler(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(f"sloth_core.cli.{module}"), func)(args)

    return handler


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors look like every other error of ours.

    The usage of the (sub)command that was typed, then one ``error:`` line,
    exit code 2.
    """

    #: The words typed (see :func:`build_parser`); None: build every command.
    typed: frozenset[str] | None = None

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        from sloth_core.cli.render import print_error

        print_error(message)
        sys.exit(2)

    def add_subparsers(self, **kwargs: Any) -> Any:
        commands = super().add_subparsers(action=_Commands, **kwargs)
        commands.typed = self.typed
        return commands


class _Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """A command's subcommands, of which only the typed ones are built in full."""

    typed: frozenset[str] | None = None

    def builds(self, name: str) -> bool:
        return self.typed is None or name in self.typed

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if not self.builds(name):
            # Listed (with its summary) in this command's help and choices; nothing more is needed.
            super().add_parser(name, help=kwargs.get("help"))
            return _UNBUILT
        parser = super().add_parser(name, **kwargs)
        parser.typed = self.typed
        return parser


class _Unbuilt:
    """Stands in for the parser of a command that was not typed: every call on it does nothing.

    Building every command's parser was a fifth of the CPU of a short `agent run`.
    """

    def __getattr__(self, name: str) -> Callable[..., _Unbuilt]:
        return lambda *args, **kwargs: self


_UNBUILT = _Unbuilt()


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the Examples as written and shows each flag's default where it has one."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _add(
    sub: Any, name: str, summary: str, *, description: str = "", examples: Sequence[str] = (), epilog: str = ""
) -> argparse.ArgumentParser:
    """A subcommand with its one-line summary (in the parent's list) and its own help page."""
    if isinstance(sub, _Unbuilt) or not sub.builds(name):
        return sub.add_parser(name, help=summary)
    parts = [epilog] if epilog else []
    if examples:
        parts.insert(0, _examples(*examples))
    text = description or summary[0].upper() + summary[1:] + "."
    return sub.add_parser(
        name, help=summary, description=textwrap.fill(text, 88) if "\n" not in text else text,
        epilog="\n\n".join(parts) or None, formatter_class=_Formatter,
    )


def _client_flags(p: argparse.ArgumentParser, *, json: bool = True, json_help: str = "print JSON instead of a table") -> None:
    g = p.add_argument_group("connection")
    g.add_argument(
        "--master", metavar="HOST:PORT",
        help=f"the master to talk to (default: ${MASTER_ENV}, else the address the local master recorded, "
        f"else 127.0.0.1:{DEFAULT_MASTER_PORT})",
    )
    g.add_argument(
        "--credentials", metavar="FILE",
        help="admin credentials bundle from `sloth-runner master credentials` "
        "(default: $SLOTH_RUNNER_CREDENTIALS, else the local master's)",
    )
    g.add_argument("--insecure", action="store_true", help="talk plaintext to a master started with --insecure")
    g.add_argument(
        "--master-data-dir", dest="master_data_dir", metavar="DIR",
        help="data dir of the local master whose address and credentials to use (default: the user data dir)",
    )
    # The old spelling; kept so scripts keep working.
    g.add_argument("--data-dir", dest="master_data_dir", metavar="DIR", help=argparse.SUPPRESS)
    if json:
        p.add_argument("--json", action="store_true", help=json_help)


def _data_dir_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", metavar="DIR", help="the master's data dir (default: the user data dir, or $SLOTH_RUNNER_HOME/master)")


def _master_parser(sub: Any) -> None:
    p = _add(
        sub, "master", "run the master, or manage it (status, stop, token, credentials)",
        description="Run the master: it keeps the agent registry, dispatches runs and keeps their history. "
        "It records its address in its data dir, so local commands find it without --master.",
        examples=[
            "sloth-runner master                      # in the foreground, port 50053",
            "sloth-runner master -p 52053 --daemon    # in the background; `master status` shows where",
            "sloth-runner master --data-dir /srv/sloth -p 0 --daemon   # a second master, a free port",
        ],
    )
    if isinstance(p, _Unbuilt):
        return
    # Here, not at the top: the master's settings import half the master, which
    # only `master` needs (its defaults show in its --help).
    from sloth_core.master.config import MasterConfig

    p.add_argument("-p", "--port", type=flags.port, default=MasterConfig.port, help=f"port for agents and operators (default {MasterConfig.port}; 0 picks a free one)")
    p.add_argument("--bind", default=MasterConfig.bind, metavar="ADDR", help=f"address to listen on (default {MasterConfig.bind})")
    p.add_argument("--advertise", default=MasterConfig.advertise, metavar="HOST[:PORT]", help="several masters: where the other masters reach this one (default: the --bind address, or with a wildcard --bind this machine's address on its route to the store's host)")
    p.add_argument("--join-port", type=flags.port, default=MasterConfig.join_port, metavar="PORT", help="port where new agents join with a token (default: port + 1; 0 picks a free one)")
    _data_dir_flag(p)
    p.add_argument("--store", metavar="URL", help="where run history and the registry live: postgresql://USER@HOST/DB (default: $SLOTH_RUNNER_STORE, else SQLite in the data dir)")
    p.add_argument("--history-queue", type=flags.count, default=MasterConfig.history_queue, metavar="N", help=f"records of history kept for retry while the store fails (default {MasterConfig.history_queue}); past that the oldest output is dropped, and when only run records are left new runs are refused")
    p.add_argument("--daemon", action="store_true", help="run in the background; `master status` prints its log file")
    p.add_argument("--insecure", action="store_true", help="plaintext, no authentication: for tests only")
    p.add_argument("--heartbeat-interval", type=flags.duration, default=MasterConfig.heartbeat_interval_s, metavar="SECONDS", help=f"time between agent heartbeats (default {MasterConfig.heartbeat_interval_s:g}); offline after 3 missed")
    p.add_argument("--output-cap", type=flags.size, default=MasterConfig.output_cap, metavar="BYTES", help="output kept in history per run and stream; head and tail are kept (default 1M)")
    p.add_argument("--runs-per-agent", type=flags.count, default=MasterConfig.runs_per_agent, metavar="N", help=f"runs kept in history per agent (default {MasterConfig.runs_per_agent})")
    p.add_argument("--max-command-bytes", type=flags.size, default=MasterConfig.max_command_bytes, metavar="BYTES", help="longest command the master accepts, in UTF-8 bytes (default 128K)")
    p.add_argument("--max-calls", type=flags.count, default=MasterConfig.max_calls, metavar="N", help=f"operator calls in flight before the master answers 'busy' and clients back off (default {MasterConfig.max_calls})")
    p.add_argument("--pid-file", help=argparse.SUPPRESS)
    p.add_argument("--log-file", help=argparse.SUPPRESS)
    p.set_defaults(handler=lazy("master_cmd:serve"))
    msub = p.add_subparsers(dest="master_command", metavar="[COMMAND]", title="commands")
    s = _add(
        msub, "status", "is the local master running? where, since when, how many agents",
        description="Show the local master: pid, address, join port, data dir, log file, uptime and agents "
        "online/total. Exit code 0 when it runs, 3 when it does not.",
        examples=["sloth-runner master status", "sloth-runner master status --data-dir /srv/sloth"],
    )
    _data_dir_flag(s)
    s.set_defaults(handler=lazy("master_cmd:status"))
    st = _add(msub, "stop", "stop the local master (started with --daemon or in another terminal)",
              examples=["sloth-runner master stop", "sloth-runner master stop --data-dir /srv/sloth"])
    _data_dir_flag(st)
    st.set_defaults(handler=lazy("master_cmd:stop"))
    t = _add(
        msub, "token", "print the join token agents use with --token (or rotate/create one)",
        examples=["sloth-runner master token", "sloth-runner agent start --name web-2 --master 192.0.2.10 --token \"$(sloth-runner master token)\""],
    )
    _data_dir_flag(t)
    t.set_defaults(handler=lazy("master_cmd:token_show"))
    tsub = t.add_subparsers(dest="token_command", metavar="[COMMAND]", title="commands")
    r = _add(tsub, "rotate", "replace the default token; joined agents keep working",
             examples=["sloth-runner master token rotate"])
    _data_dir_flag(r)
    r.set_defaults(handler=lazy("master_cmd:token_rotate"))
    c = _add(tsub, "create", "create an extra token, optionally single-use and expiring",
             examples=["sloth-runner master token create --once --ttl 1h"])
    c.add_argument("--once", action="store_true", help="valid for one join only")
    c.add_argument("--ttl", type=flags.duration, metavar="DURATION", help="expiry, e.g. 30m, 1h, 2d (default: never expires)")
    c.add_argument("--for", dest="for_name", metavar="NAME", help="valid only for the agent of this name")
    c.add_argument("--replace", action="store_true", help="with --for: the joining machine takes the name over from the certificate that holds it (single-use)")
    c.add_argument("--master", dest="for_master", action="store_true", help="a single-use token for another master to join this one's cluster (`master join-cluster`)")
    _data_dir_flag(c)
    c.set_defaults(handler=lazy("master_cmd:token_create"))
    jc = _add(
        msub, "join-cluster", "make this data dir a new master of an existing cluster (shared PostgreSQL store)",
        description="Join the cluster of the master at --from: this master gets its own identity and its own "
        "intermediate CA signed by the cluster's root, and shares the store's tokens, revocations and history. "
        "Then start it with `sloth-runner master --store URL`.",
        examples=[
            "sloth-runner master token create --master             # on the first master",
            "sloth-runner master join-cluster --from 192.0.2.10:50053 --token SLOTH1... --store postgresql://sloth@db/sloth --data-dir /srv/sloth-b",
        ],
    )
    jc.add_argument("--from", dest="from_master", required=True, metavar="HOST:PORT", help="the cluster's first master (the one holding the root CA)")
    jc.add_argument("--token", required=True, help="a token from `sloth-runner master token create --master` on that master")
    jc.add_argument("--store", metavar="URL", help="the cluster's PostgreSQL store (default: $SLOTH_RUNNER_STORE)")
    jc.add_argument("--name", help="this master's name in its CA (default: the host name)")
    _data_dir_flag(jc)
    jc.set_defaults(handler=lazy("master_cmd:join_cluster"))
    cr = _add(msub, "credentials", "export an admin bundle for an operator (a new identity admin:NAME); list or revoke them",
              examples=["sloth-runner master credentials --out alice.json            # admin:alice",
                        "sloth-runner agent list --master 192.0.2.10:50053 --credentials alice.json",
                        "sloth-runner master credentials list",
                        "sloth-runner master credentials revoke alice"])
    cr.add_argument("--out", metavar="FILE", help="where to write the bundle (mode 0600)")
    cr.add_argument("--name", help="the operator's identity admin:NAME, shown in run history (default: from the file name, else your user)")
    _data_dir_flag(cr)
    cr.set_defaults(handler=lazy("master_cmd:credentials"))
    crsub = cr.add_subparsers(dest="credentials_command", metavar="[COMMAND]", title="commands")
    cl = _add(crsub, "list", "every admin identity, active or revoked",
              examples=["sloth-runner master credentials list"])
    _data_dir_flag(cl)
    cl.set_defaults(handler=lazy("master_cmd:credentials_list"))
    cv = _add(crsub, "revoke", "revoke admin:NAME: its calls are refused and its open streams end within seconds",
              examples=["sloth-runner master credentials revoke alice"])
    cv.add_argument("name", metavar="NAME", help="the identity to revoke: NAME or admin:NAME")
    _data_dir_flag(cv)
    cv.set_defaults(handler=lazy("master_cmd:credentials_revoke"))


def _agent_parser(sub: Any) -> None:
    p = _add(sub, "agent", "start agents, list them, run commands on them")
    if isinstance(p, _Unbuilt):
        return
    asub = p.add_subparsers(dest="agent_command", metavar="COMMAND", required=True, title="commands")

    s = _add(
        asub, "start", "start an agent on this machine",
        description=f"Start an agent: it registers with the master and runs the commands the master sends. Names: {NAME_RULE}.",
        examples=[
            "sloth-runner agent start --name web-1                 # the local master, found by itself",
            "sloth-runner agent start --name web-1 --label role=web --daemon",
            "sloth-runner agent start --name web-2 --master 192.0.2.10:50053 --bind-address 192.0.2.11 --token SLOTH1...",
        ],
    )
    s.add_argument("--name", required=True, help="unique agent name")
    s.add_argument(
        "--master", metavar="HOST:PORT",
        help=f"the master to register with (default: ${MASTER_ENV}, else the address the local master recorded)",
    )
    s.add_argument(
        "--port", type=flags.port, default=None,
        help=f"also listen on this port for direct calls from the master's identity (default: none, the agent dials out to the master; with only --bind-address, {DEFAULT_AGENT_PORT}; 0 picks a free one)",
    )
    s.add_argument("--bind-address", default="", metavar="IP", help="with --port: the address to listen on and report to the master (default: all interfaces, reporting the address that routes to the master)")
    s.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="a label for targeting (repeatable)")
    s.add_argument("--token", help="join token from `sloth-runner master token` (default: $SLOTH_RUNNER_TOKEN, or the local master's)")
    s.add_argument("--data-dir", metavar="DIR", help="where the agent keeps its certificate")
    s.add_argument("--master-data-dir", metavar="DIR", help="data dir of the local master whose address and token to use (default: the user data dir)")
    s.add_argument("--daemon", action="store_true", help="run in the background; logs go to the log dir")
    s.add_argument("--insecure", action="store_true", help="plaintext, no authentication: for tests only")
    s.add_argument("--no-facts", dest="facts", action="store_false", help="do not report load, memory, disk and the like to the master")
    s.add_argument("--facts-interval", type=flags.duration, default=15.0, help=argparse.SUPPRESS)  # tests
    s.add_argument("--facts-proc", default="/proc", help=argparse.SUPPRESS)  # tests: a /proc of their own
    s.add_argument("--pid-file", help=argparse.SUPPRESS)
    s.add_argument("--log-file", help=argparse.SUPPRESS)
    s.add_argument("--secret-fd", type=int, help=argparse.SUPPRESS)  # the join token, from a daemonizing parent
    s.set_defaults(handler=lazy("agent_cmd:start"))

    st = _add(
        asub, "stop", "stop an agent (through the master, or --local through its pid file)",
        examples=["sloth-runner agent stop web-1", "sloth-runner agent stop --local web-1"],
    )
    st.add_argument("name", metavar="NAME", help="agent name")
    st.add_argument("--local", action="store_true", help="stop the daemonized agent of that name on this machine")
    _client_flags(st, json=False)
    st.set_defaults(handler=lazy("agent_cmd:stop"))

    ls = _add(asub, "list", "list registered agents",
              examples=["sloth-runner agent list", "sloth-runner agent list -o wide          # with LOAD, MEM%, DISK%",
                        "sloth-runner agent list --json | jq -r '.[].name'"])
    ls.add_argument("-o", "--output", choices=["wide"], help="wide: add each agent's load, memory and disk use")
    _client_flags(ls)
    ls.set_defaults(handler=lazy("agent_cmd:list_agents"))

    g = _add(asub, "get", "show one agent in detail", examples=["sloth-runner agent get web-1"])
    g.add_argument("name", metavar="NAME", help="agent name")
    _client_flags(g, json_help="print JSON instead of the details")
    g.set_defaults(handler=lazy("agent_cmd:get"))

    d = _add(asub, "delete", "remove an agent from the registry (and revoke its certificate)",
             examples=["sloth-runner agent delete web-1 --yes"])
    d.add_argument("name", metavar="NAME", help="agent name")
    d.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    _client_flags(d, json=False)
    d.set_defaults(handler=lazy("agent_cmd:delete"))

    r = _add(
        asub, "run", "run a shell command on agents",
        description=textwrap.dedent("""\
            Run COMMAND with `bash -c` on the target agents and stream its output, as ssh does: the
            remote stdout goes to stdout byte for byte, the remote stderr to stderr, and summaries
            to stderr.

            TARGETS is a name, a comma list (web-1,web-2) or a glob ('web-*'); --label and --all
            replace it. Options go before TARGETS or right after it. The command starts at the first
            word that is not an option: give it quoted as one argument ('uname -a') or as words
            (uname -a), which are joined with spaces as ssh joins them; `--` ends the options
            explicitly (-- ls -la). Options after a command given as one argument still count.

            The result box (one target) or the table (several) goes to stderr when stderr is a
            terminal; --summary / --quiet force it on or off. With several targets the last line
            on stderr is always `N succeeded, M failed, K rejected`.

            Stdin, as ssh forwards it: with one target and a stdin that is not a terminal, it is
            streamed to the remote command and its EOF closes the remote stdin; -n sends none (the
            remote stdin is /dev/null). As with ssh, a script or program that starts `agent run`
            with a stdin it never closes must pass -n or redirect it (< /dev/null), or the run
            waits for that EOF. With several targets stdin is sent only with --stdin: it is read to
            EOF first (at most 64 MiB; beyond that nothing runs, exit 2) and every agent gets all
            of it, so an idle stdin never holds a fan-out. The remote command may exit without
            reading it all: its exit code counts, the rest is dropped."""),
        examples=[
            "sloth-runner agent run web-1 uname -a",
            "sloth-runner agent run web-1 'seq 3' | wc -l            # 3: only the remote output",
            "sloth-runner agent run web-1 --timeout 30 -- ls -la /srv",
            "sloth-runner agent run 'web-*,db-1' uptime             # prefixed lines, table, summary",
            "sloth-runner agent run --label role=web 'apt-get -s upgrade'",
            "sloth-runner agent run --all --json 'df -h /'          # one JSON object per run",
            "sloth-runner agent run web-1 --env RELEASE=42 --cwd /srv/app -- ./deploy.sh",
            "sloth-runner agent run web-1 'tar c /etc' --raw > etc.tar",
            "sloth-runner agent run web-1 'sh -s' < deploy.sh          # stdin goes to the remote command",
            "tar c . | sloth-runner agent run web-1 'tar x -C /srv/app'",
            "sloth-runner agent run --stdin 'web-*' 'cat > /etc/motd' < motd   # all of stdin to every agent",
            "while read h; do sloth-runner agent run -n \"$h\" uptime; done < hosts   # -n: the loop keeps its stdin",
        ],
        epilog=RUN_EXIT_CODES,
    )
    r.add_argument("targets", nargs="?", default="", metavar="TARGETS", help="agent name, comma list or glob (omit with --label/--all)")
    r.add_argument("command", nargs="?", default=None, metavar="COMMAND ...", help="the command: one quoted argument or several words")
    r.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="run on agents with this label (repeatable, all must match)")
    r.add_argument("--all", action="store_true", help="run on every agent")
    r.add_argument("--timeout", type=flags.duration_or_zero, default=0.0, metavar="SECONDS", help="kill a run after this long, exit 124 (e.g. 30, 90s, 5m; default 0: no limit)")
    r.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="set a variable in the command's environment (repeatable; not SLOTH_RUNNER_*)")
    r.add_argument("--cwd", default="", metavar="DIR", help="start the command in DIR on the agent (absolute; a missing DIR fails the run)")
    r.add_argument("--parallel", type=flags.count_or_zero, default=0, metavar="N", help="at most N runs at once (default 0: no limit)")
    stdin = r.add_mutually_exclusive_group()
    stdin.add_argument("-n", "--no-stdin", dest="no_stdin", action="store_true", help="send no stdin: the remote stdin is /dev/null (as ssh -n); for scripts whose stdin stays open")
    stdin.add_argument("--stdin", dest="stdin", action="store_true", help="send stdin to every target: read to EOF first, at most 64 MiB (one target: streamed, as without the flag)")
    r.add_argument("--raw", action="store_true", help="only the remote output, byte-exact (several targets: lines prefixed), no summary")
    shown = r.add_mutually_exclusive_group()
    shown.add_argument("--summary", dest="summary", action="store_true", default=None, help="show the result box or table on stderr even when stderr is not a terminal")
    shown.add_argument("-q", "--quiet", dest="summary", action="store_false", help="no result box or table (the one-line count of a multi-agent run stays)")
    progress = r.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None, help="a live status line on stderr for several targets (default: when stderr is a terminal)")
    progress.add_argument("--no-progress", dest="progress", action="store_false", help="no live status line")
    _client_flags(r, json_help="one JSON object per run on stdout (output, status, exit code), instead of the live output")
    r.set_defaults(handler=lazy("run_cmd:run"))

    sh = _add(
        asub, "shell", "an interactive shell on one agent (admin only)",
        description=textwrap.dedent("""\
            Open an interactive terminal on agent NAME, through the master, as `ssh -t` does: the
            agent user's login shell, or CMD with `--`. Your terminal goes raw while the session
            runs, so every key reaches the remote side: Ctrl-C, Ctrl-Z and Ctrl-D act there, not
            here. The window size follows yours; TERM is passed through. Type `exit` (or Ctrl-D
            at the prompt) to leave; your terminal is restored however the session ends.

            Admin identities only. The master records the session in the run history as a run of
            kind `shell` (who, when, how long, exit code: `sloth-runner runs list`); the keys you
            type and what the screen shows are NOT recorded. `sloth-runner runs cancel ID` ends
            it. Needs a terminal on stdin; for scripts use `agent run`."""),
        examples=[
            "sloth-runner agent shell web-1",
            "sloth-runner agent shell web-1 -- top",
            "sloth-runner agent shell web-1 -- vim /etc/hosts",
            "sloth-runner agent shell web-1 -- sudo -i",
        ],
        epilog=SHELL_EXIT_CODES,
    )
    sh.add_argument("name", metavar="NAME", help="the agent (exactly one)")
    sh.add_argument("command", nargs="*", metavar="-- CMD ARGS", help="run CMD ARGS interactively instead of a login shell")
    _client_flags(sh, json=False)
    sh.set_defaults(handler=lazy("shell_cmd:shell"))


def _runs_parser(sub: Any) -> None:
    p = _add(sub, "runs", "run history: list, show, follow, cancel")
    if isinstance(p, _Unbuilt):
        return
    rsub = p.add_subparsers(dest="runs_command", metavar="COMMAND", required=True, title="commands")
    ids = "Ids are accepted in full, as printed, or as any unique prefix, with or without the r-/j- prefix."
    ls = _add(
        rsub, "list", "recent runs, newest first", description=f"Recent runs, newest first. {ids}",
        examples=["sloth-runner runs list", "sloth-runner runs list --agent web-1 --status failed",
                  "sloth-runner runs list --job j-348bbc1f"],
    )
    ls.add_argument("--agent", default="", metavar="NAME", help="runs on one agent")
    ls.add_argument("--status", choices=RUN_STATUSES, help="runs with this status")
    ls.add_argument("--job", default="", metavar="JOB_ID", help="runs of one job")
    ls.add_argument("--limit", type=flags.count, default=DEFAULT_RUNS_LIMIT, metavar="N", help=f"at most N runs (default {DEFAULT_RUNS_LIMIT})")
    _client_flags(ls)
    ls.set_defaults(handler=lazy("runs_cmd:list_runs"))
    sh = _add(
        rsub, "show", "a run's details and stored output (a job's runs for a job id)",
        description=f"A run's details and its stored output: stdout to stdout, stderr to stderr. {ids}",
        examples=["sloth-runner runs show r-9f72ba01", "sloth-runner runs show 9f72 --follow",
                  "sloth-runner runs show 9f72ba01 --raw > out.bin"],
    )
    sh.add_argument("run_id", metavar="ID", help="run id or prefix (a job id lists the job's runs)")
    sh.add_argument("-f", "--follow", action="store_true", help="keep streaming a live run")
    sh.add_argument("--raw", action="store_true", help="only the output, byte-exact")
    _client_flags(sh, json_help="the run and its stored output as one JSON object")
    sh.set_defaults(handler=lazy("runs_cmd:show"))
    c = _add(rsub, "cancel", "cancel a run or a whole job", description=f"Cancel a run or a whole job. {ids}",
             examples=["sloth-runner runs cancel r-9f72ba01", "sloth-runner runs cancel j-348bbc1f"])
    c.add_argument("id", metavar="ID", help="run or job id, or a unique prefix")
    _client_flags(c, json=False)
    c.set_defaults(handler=lazy("runs_cmd:cancel"))


def build_parser(typed: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; with ``typed`` (the command line), only the commands named in it are built.

    The others are listed with their one-line summaries, which is all their
    parents' help and errors show.
    """
    parser = Parser(
        prog="sloth-runner",
        description=textwrap.fill(
            "Run shell commands on many machines: a master keeps a registry of agents "
            "and dispatches commands to them over gRPC (mutual TLS by default).", 88,
        ),
        epilog=_examples(
            "sloth-runner master --daemon",
            "sloth-runner agent start --name web-1 --daemon",
            "sloth-runner agent run web-1 uname -a",
            "sloth-runner tui",
        ) + "\n\nRun `sloth-runner COMMAND --help` for a command's options and examples.",
        formatter_class=_Formatter,
    )
    parser.typed = None if typed is None else frozenset(typed)
    parser.add_argument("--version", action="version", version=f"sloth-runner {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    _master_parser(sub)
    _agent_parser(sub)
    _runs_parser(sub)
    t = _add(sub, "tui", "the operator console", examples=["sloth-runner tui", "sloth-runner tui --master 192.0.2.10:50053 --credentials ops.json"])
    _client_flags(t, json=False)
    t.set_defaults(handler=lazy("console_cmd:tui"))
    d = _add(
        sub, "demo", "a throwaway master with local agents, and the console",
        description="Start a throwaway master and local agents in a temporary directory, then open the console. "
        "Busy default ports are replaced by free ones; on failure the logs are kept and the cause printed.",
        examples=["sloth-runner demo", "sloth-runner demo --agents 6 --no-console"],
    )
    d.add_argument("--agents", type=flags.count, default=3, metavar="N", help="how many local agents (default 3)")
    d.add_argument("--no-console", action="store_true", help="do not open the console; keep running until Ctrl-C")
    d.add_argument("--port", type=flags.port, default=0, help=f"master port (default: {DEFAULT_MASTER_PORT} if free, else a free one)")
    d.set_defaults(handler=lazy("demo_cmd:demo"))
    return parser


def subparser_for(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.ArgumentParser:
    """The (sub)parser of the deepest command named in ``argv``: whose usage an error shows."""
    current = parser
    for word in argv:
        if word == "--":
            break
        choices = _subcommands(current)
        if word in choices:
            current = choices[word]
    return current


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}
