"""Joining in a short-lived process, so the agent never holds `cryptography`.

Making a key and a CSR needs `cryptography` (and checking the join
endpoint's pin needs Python's `ssl`): about 14 MB that a long-running agent
would keep for its whole life after using them once. :func:`join_once` runs
the join in a child process (``python -m sloth_core.agent.joining``), which
stores the certificate in the agent's data dir; the agent then loads it
like a restarted agent does. The token goes to the child in its
environment, never on its command line (``ps`` shows command lines).

The child reports failure as one line (:func:`~sloth_core.errors.error_report`), so the
agent raises the same typed error it would have raised joining itself.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from sloth_core import errors

TOKEN_ENV = "SLOTH_RUNNER_JOIN_TOKEN"


async def join_once(master: str, token: str, name: str, data_dir: Path) -> None:
    """Join ``master`` as ``name`` in a child process; raises the typed error it met."""
    env = {**os.environ, TOKEN_ENV: token}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-P", "-m", "sloth_core.agent.joining", master, name, str(data_dir),
        env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate()
    if child.returncode == 0:
        return
    lines = out.strip().splitlines()
    raise errors.error_from_report(lines[-1] if lines else b"", f"joining failed (the join process exited {child.returncode})")


def main(argv: list[str]) -> int:
    from sloth_core.security import join

    master, name, data_dir = argv
    token = os.environ.get(TOKEN_ENV, "")
    try:
        asyncio.run(join.join_master(master, token, name, Path(data_dir)))
    except errors.SlothError as exc:
        sys.stdout.write(errors.error_report(exc) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
