"""`sloth-runner master ...`"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

from sloth_core import paths
from sloth_core.cli import daemon
from sloth_core.errors import SlothError, UsageError

WHAT = "the master"


def _process_name(args: argparse.Namespace) -> str:
    """`master` for the default data dir, `master-<hash>` for another (see :func:`paths.master_process_name`)."""
    return paths.master_process_name(paths.master_data_dir(getattr(args, "data_dir", None)))


def serve(args: argparse.Namespace) -> int:
    import logging

    from sloth_core import __version__
    from sloth_core.cli import logs
    from sloth_core.cli.render import print_warning
    from sloth_core.errors import PortInUseError
    from sloth_core.master.server import Master, MasterConfig
    from sloth_core.names import join_host_port

    if args.insecure:
        print_warning("--insecure: plaintext and NO authentication; anyone who reaches this port can run commands on every agent")
    name = _process_name(args)
    if args.daemon:
        return daemon.launch(name, args.argv, WHAT)
    logs.setup(log_file=args.log_file)
    config = MasterConfig(
        data_dir=paths.master_data_dir(args.data_dir),
        bind=args.bind,
        advertise=args.advertise,
        port=args.port,
        join_port=args.join_port,
        insecure=args.insecure,
        heartbeat_interval_s=args.heartbeat_interval,
        output_cap=args.output_cap,
        runs_per_agent=args.runs_per_agent,
        log_file=str(Path(args.log_file).resolve()) if args.log_file else "",
        max_command_bytes=args.max_command_bytes,
        max_calls=args.max_calls,
        store=args.store or "",
        history_queue=args.history_queue,
    )
    master = Master(config)

    async def started() -> None:
        log = logging.getLogger("sloth_core.master")
        mode = "INSECURE plaintext" if config.insecure else "mutual TLS"
        log.info(
            "sloth-runner master %s listening for agent registrations on %s (%s)",
            __version__, join_host_port(config.bind, master.port), mode,
        )
        if master.join_port:
            log.info("agents join with a token on port %d", master.join_port)

    pid_path = Path(args.pid_file) if args.pid_file else daemon.pid_file(name)
    try:
        daemon.serve_until_signalled(master.start, master.stop, started, pid_path, what=WHAT)
    except PortInUseError as exc:
        raise SlothError(f"{exc} (is another master running? choose another port with -p)") from None
    except OSError as exc:  # a full or read-only disk while creating its files
        where = f": {exc.filename}" if exc.filename else ""
        raise SlothError(f"the master could not start: {exc.strerror or exc}{where}") from None
    return 0


def status(args: argparse.Namespace) -> int:
    """Where the local master listens, since when, where it logs, how many agents."""
    from sloth_core.endpoint import live_endpoint

    data_dir = paths.master_data_dir(args.data_dir)
    name = _process_name(args)
    pid = daemon.read_pid(daemon.pid_file(name))
    endpoint = live_endpoint(data_dir)
    if endpoint is None and pid is None:
        print(f"{WHAT} is not running (data dir {data_dir})")
        return 3  # as `systemctl status` / LSB for "not running"
    pid = pid or (endpoint.pid if endpoint else None)
    rows = [("pid", str(pid))]
    if endpoint is None:
        rows.append(("address", "not listening yet"))
    else:
        rows += [
            ("address", endpoint.address + (" (INSECURE plaintext)" if endpoint.insecure else "")),
            ("join port", str(endpoint.join_port) if endpoint.join_port else "-"),
        ]
    rows.append(("data dir", str(data_dir)))
    log = endpoint.log_file if endpoint and endpoint.log_file else ""
    rows.append(("log file", log or "none: it logs to the terminal it was started in"))
    if endpoint is not None and endpoint.started_at:
        from sloth_core.cli.render import duration

        rows.append(("uptime", duration(max(0.0, time.time() - endpoint.started_at))))
        rows.append(("agents", _agent_counts(endpoint, data_dir)))
    print(f"{WHAT} is running")
    for key, value in rows:
        print(f"  {key + ':':<11}{value}")
    if endpoint is not None:
        print(_history_state(endpoint, data_dir))
    _print_cluster(data_dir)
    return 0


def _print_cluster(data_dir: Path) -> None:
    """Several masters: each one's address, identity, uptime and agents, read from the shared store."""
    from sloth_core.cli.render import duration
    from sloth_core.security.pki import shared_store_of
    from sloth_core.storage.postgres import redact

    try:
        url = shared_store_of(data_dir / "pki")
    except SlothError:
        return
    if not url:
        return
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT address, id, identity, started_at, agents, lease_until >= now(), "
                "extract(epoch from now()) FROM masters ORDER BY started_at"
            ).fetchall()
    except Exception as exc:
        print(f"cluster: unknown (cannot read {redact(url)}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc})")
        return
    print(f"cluster: {len(rows)} master(s) sharing {redact(url)}")
    for address, master_id, identity, started_at, agents, alive, now in rows:
        state = "" if alive else "  LEASE EXPIRED (stopped?)"
        print(f"  {address:<22}{master_id:<14}{identity:<28}up {duration(max(0.0, float(now) - started_at)):<10}"
              f"{agents} agent(s) connected{state}")


def _agent_counts(endpoint: Any, data_dir: Path) -> str:
    """`N online / M total`, asked of the master itself; the reason if it cannot say."""
    from sloth_core import status_words
    from sloth_core.cli.common import with_client

    client_args = argparse.Namespace(
        master=endpoint.address, credentials=None, insecure=endpoint.insecure, master_data_dir=str(data_dir),
        quiet_insecure=True,
    )
    try:
        agents = with_client(client_args, lambda c: c.list_agents())
    except SlothError as exc:
        return f"unknown ({exc})"
    online = sum(1 for a in agents if status_words.agent_word(a.status) == "online")
    return f"{online} online / {len(agents)} total"


def _history_state(endpoint: Any, data_dir: Path) -> str:
    """Whether the master's history is being saved, asked of the master itself."""
    from sloth_core.cli.common import with_client

    client_args = argparse.Namespace(
        master=endpoint.address, credentials=None, insecure=endpoint.insecure, master_data_dir=str(data_dir),
        quiet_insecure=True,
    )
    try:
        store = with_client(client_args, lambda c: c.get_status()).store
    except SlothError as exc:
        return f"history: unknown ({exc})"
    text = store.warning or f"history is being saved to {store.store}"
    if store.dropped and not store.failing:
        text += f" ({store.dropped} output records were dropped while it could not be saved)"
    return text


def stop(args: argparse.Namespace) -> int:
    from sloth_core.endpoint import live_endpoint

    # A master started in the foreground elsewhere holds the same pid file;
    # master.json names it too.
    endpoint = live_endpoint(paths.master_data_dir(args.data_dir))
    return daemon.stop(_process_name(args), WHAT, fallback_pid=endpoint.pid if endpoint else None)


def _pki(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from sloth_core.security import MasterPKI

    data_dir = paths.master_data_dir(getattr(args, "data_dir", None))
    if not (data_dir / "pki").is_dir():
        raise SlothError(f"no master has run with data dir {data_dir} yet: start `sloth-runner master` first")
    return MasterPKI.load(data_dir), data_dir


def _join_port(data_dir: Path) -> int | None:
    from sloth_core.endpoint import read_endpoint

    endpoint = read_endpoint(data_dir)
    return endpoint.join_port if endpoint is not None else None


def token_show(args: argparse.Namespace) -> int:
    pki, data_dir = _pki(args)
    print(pki.token_string(_join_port(data_dir)))
    return 0


def token_rotate(args: argparse.Namespace) -> int:
    pki, data_dir = _pki(args)
    pki.tokens.rotate()
    print(pki.token_string(_join_port(data_dir)))
    return 0


def token_create(args: argparse.Namespace) -> int:
    if args.replace and not args.for_name:
        raise UsageError("--replace needs --for NAME: the agent whose name the new machine takes over")
    if args.for_master and (args.for_name or args.replace):
        raise UsageError("--master makes a token for a master; --for and --replace are for agents")
    pki, data_dir = _pki(args)
    print(pki.create_token(
        once=args.once, ttl_s=args.ttl, join_port=_join_port(data_dir), for_name=args.for_name, replace=args.replace,
        kind="master" if args.for_master else "agent",
    ))
    return 0


def join_cluster(args: argparse.Namespace) -> int:
    import asyncio
    import os
    import socket

    from sloth_core.security.cluster_join import join_cluster as join
    from sloth_core.security.pki import record_shared_store
    from sloth_core.storage import STORE_ENV

    store = args.store or os.environ.get(STORE_ENV, "")
    if not store.startswith(("postgresql://", "postgres://")):
        raise UsageError("masters of one cluster share a PostgreSQL store: give --store postgresql://USER@HOST/DB")
    data_dir = paths.master_data_dir(args.data_dir)
    name = args.name or socket.gethostname().split(".")[0]
    asyncio.run(join(args.from_master, args.token, name, data_dir))
    record_shared_store(data_dir, store)
    print(f"joined the cluster of {args.from_master} as master {name}; start it with "
          f"`sloth-runner master --data-dir {data_dir} --store URL`", file=sys.stderr)
    return 0


def credentials(args: argparse.Namespace) -> int:
    if not args.out:
        raise UsageError("give --out FILE to export a bundle (or: master credentials list | revoke NAME)")
    pki, _ = _pki(args)
    out = Path(args.out).expanduser()
    name = args.name or default_admin_name(out)
    pki.export_admin_bundle(out, name)
    print(f"admin credentials for admin:{name} written to {out} (mode 0600); use them with --credentials {out}")
    return 0


def default_admin_name(out: Path) -> str:
    """A name for a bundle exported without --name: its file name, else the user's."""
    import getpass

    from sloth_core.names import is_valid_name

    for candidate in (out.stem, getpass.getuser()):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", candidate).lstrip("._-")[:63].rstrip(".-")
        if is_valid_name(name) and name != "local":
            return name
    raise UsageError("cannot derive an admin name from the file name or the user: pass --name NAME")


def credentials_list(args: argparse.Namespace) -> int:
    from sloth_core.escape import shown

    pki, _ = _pki(args)
    when = lambda ts: time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"  # noqa: E731
    rows = [
        (f"admin:{a.name}", "active" if a.active else "revoked", when(a.created_at), when(a.revoked_at),
         "(the master's own: local CLI and console)" if a.name == "local" else shown(a.exported_to))
        for a in pki.admins()
    ]
    header = ("IDENTITY", "STATUS", "EXPORTED", "REVOKED", "FILE")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for row in (header, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def credentials_revoke(args: argparse.Namespace) -> int:
    pki, _ = _pki(args)
    name = args.name.removeprefix("admin:")
    serials = pki.revoke_admin(name)
    print(f"revoked admin:{name} ({len(serials)} certificate(s)); a running master ends its open streams within seconds")
    return 0
