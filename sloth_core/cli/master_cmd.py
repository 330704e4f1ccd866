"""`sloth-runner master ...`"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from sloth_core import paths
from sloth_core.cli import daemon
from sloth_core.errors import SlothError, UsageError

KIND = "master"
WHAT = "the master"


def serve(args: argparse.Namespace) -> int:
    import logging

    from sloth_core import __version__
    from sloth_core.cli import logs
    from sloth_core.cli.render import print_warning
    from sloth_core.errors import PortInUseError
    from sloth_core.master.server import Master, MasterConfig
    from sloth_core.names import join_host_port

    if not 0 <= args.port < 65536:
        raise UsageError(f"invalid port {args.port}: use 1-65535, or 0 for a free one")
    if args.max_calls <= 0:
        raise UsageError("--max-calls must be positive")
    if args.max_command_bytes <= 0:
        raise UsageError("--max-command-bytes must be positive")

    if args.history_queue < 1:
        raise UsageError("--history-queue must be at least 1")
    if args.heartbeat_interval <= 0:
        raise UsageError("--heartbeat-interval must be positive")
    if args.insecure:
        print_warning("--insecure: plaintext and NO authentication; anyone who reaches this port can run commands on every agent")
    if args.daemon:
        return daemon.launch(KIND, args.argv, WHAT)
    logs.setup()
    config = MasterConfig(
        data_dir=paths.master_data_dir(args.data_dir),
        bind=args.bind,
        port=args.port,
        join_port=args.join_port,
        insecure=args.insecure,
        heartbeat_interval_s=args.heartbeat_interval,
        output_cap=args.output_cap,
        runs_per_agent=args.runs_per_agent,
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

    try:
        daemon.serve_until_signalled(master.start, master.stop, started, _pid_path(args))
    except PortInUseError as exc:
        raise SlothError(f"{exc} (is another master running? choose another port with -p)") from None
    except OSError as exc:  # a full or read-only disk while creating its files
        where = f": {exc.filename}" if exc.filename else ""
        raise SlothError(f"the master could not start: {exc.strerror or exc}{where}") from None
    return 0


def _pid_path(args: argparse.Namespace) -> Path:
    return Path(args.pid_file) if args.pid_file else daemon.pid_file(KIND)


def status(args: argparse.Namespace) -> int:
    code = daemon.status(KIND, WHAT)
    if code != 0 and not args.master:
        return code
    from sloth_core.cli.common import with_client

    try:
        reply = with_client(args, lambda client: client.get_status())
    except SlothError as exc:
        from sloth_core.cli.render import print_warning

        print_warning(f"could not ask the master for its status: {exc}")
        return code
    store = reply.store
    print(store.warning or f"history is being saved to {store.store}")
    if store.dropped and not store.failing:
        print(f"{store.dropped} output records were dropped while history could not be saved")
    return 0


def stop(args: argparse.Namespace) -> int:
    return daemon.stop(KIND, WHAT)


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


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise UsageError(f"malformed duration {text!r}: use e.g. 90s, 30m, 1h, 2d")
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]


def token_create(args: argparse.Namespace) -> int:
    ttl = parse_duration(args.ttl) if args.ttl else None
    if args.replace and not args.for_name:
        raise UsageError("--replace needs --for NAME: the agent whose name the new machine takes over")
    pki, data_dir = _pki(args)
    print(pki.create_token(
        once=args.once, ttl_s=ttl, join_port=_join_port(data_dir), for_name=args.for_name, replace=args.replace,
    ))
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
    import time

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
