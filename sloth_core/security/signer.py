"""Certificates made in a child process, so the master never holds `cryptography`.

Making the CA on first start and signing an agent's join need `cryptography`:
about 14 MB that a master would keep for its whole life after using them
once (a fresh master measured 60 MB, a restarted one, which never loads it,
46 MB). :func:`create_pki` makes the CA in a short-lived child, and
:class:`Signer` signs joins in a child it starts at the first join and lets
go after :data:`IDLE_S` without one, so a burst of joins pays for one child.

The signing key reaches the child down its stdin, never on its command line
or in its environment. Requests and answers are JSON lines; a child's
refusal comes back as the typed error it met
(:func:`~sloth_core.errors.error_report`).

    python -m sloth_core.security.signer create DATA_DIR
    python -m sloth_core.security.signer sign      (the Signer's child)
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
from pathlib import Path
from typing import Any

from sloth_core import errors

log = logging.getLogger(__name__)

#: A signer child with no join for this long exits (the next join starts another).
IDLE_S = 30.0
#: How long one signature may take before the child is taken for hung.
ANSWER_TIMEOUT_S = 30.0
# A child that died since the last join is replaced once per request.
ATTEMPTS = 2


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    # Its stderr is the master's: a traceback there lands in the master's log.
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sloth_core.security.signer", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )


async def create_pki(data_dir: Path) -> None:
    """Make the master's CA and identities in ``data_dir`` (a no-op if it holds them); raises the child's typed error."""
    child = await _spawn("create", str(data_dir))
    out, _ = await child.communicate()
    if child.returncode != 0:
        lines = out.strip().splitlines()
        raise errors.error_from_report(
            lines[-1] if lines else b"", f"making the master's certificate authority failed (exit {child.returncode})"
        )


class Signer:
    """Signs agents' CSRs with the master's signing pair, in a child process.

    Requests are answered one at a time, in order; :meth:`close` ends the child.
    """

    def __init__(self, signing_pair: tuple[bytes, bytes], *, idle_s: float = IDLE_S) -> None:
        self._cert_pem, self._key_pem = signing_pair
        self._idle_s = idle_s
        self._child: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._idle: asyncio.TimerHandle | None = None
        self._leaving: set[asyncio.Task[None]] = set()
        self._asked = 0  # requests sent; each answer carries its request's number

    @property
    def running(self) -> bool:
        """Whether a child is up (it is between a join and :data:`IDLE_S` after the last)."""
        return self._child is not None

    async def sign_agent(self, name: str, csr_pem: bytes) -> tuple[bytes, int]:
        """Agent ``name``'s certificate PEM (no chain) and its serial; CredentialsError for a bad CSR."""
        async with self._lock:
            if self._idle is not None:
                self._idle.cancel()
                self._idle = None
            try:
                answer = await self._ask({"name": name, "csr": base64.b64encode(csr_pem).decode()})
            finally:
                self._idle = asyncio.get_running_loop().call_later(self._idle_s, self._retire)
        if "cert" not in answer:
            raise errors.error_from_report(json.dumps(answer), "the certificate signer gave no certificate")
        return str(answer["cert"]).encode(), int(answer["serial"])

    async def _ask(self, request: dict[str, str]) -> dict[str, Any]:
        for _ in range(ATTEMPTS):
            child = self._child or await self._start()
            assert child.stdin is not None and child.stdout is not None
            self._asked += 1
            line = b""
            try:
                child.stdin.write(json.dumps({**request, "id": self._asked}).encode() + b"\n")
                await child.stdin.drain()
                line = await asyncio.wait_for(child.stdout.readline(), ANSWER_TIMEOUT_S)
            except (ConnectionError, TimeoutError):
                pass
            except BaseException:
                # Cancelled (the joiner hung up): its answer would be read as the next join's.
                self._let_go(child, kill=True)
                raise
            answer = _parsed(line)
            if answer is not None and answer.pop("id", None) == self._asked:
                return answer
            log.warning("the certificate signer (pid %d) gave no answer; starting another", child.pid)
            self._let_go(child, kill=True)
        raise errors.SlothError("the master could not sign the certificate: its signer process keeps failing (see its log)")

    async def _start(self) -> asyncio.subprocess.Process:
        child = await _spawn("sign")
        assert child.stdin is not None
        child.stdin.write(json.dumps({"cert": self._cert_pem.decode(), "key": self._key_pem.decode()}).encode() + b"\n")
        self._child = child
        return child

    def _retire(self) -> None:
        self._idle = None
        if self._child is not None and not self._lock.locked():
            self._let_go(self._child, kill=False)

    def _let_go(self, child: asyncio.subprocess.Process, *, kill: bool) -> None:
        """Close ``child``'s stdin (it exits) or kill it, and reap it in the background."""
        if self._child is child:
            self._child = None
        if kill and child.returncode is None:
            child.kill()
        assert child.stdin is not None
        child.stdin.close()
        task = asyncio.get_running_loop().create_task(self._reap(child))
        self._leaving.add(task)
        task.add_done_callback(self._leaving.discard)

    @staticmethod
    async def _reap(child: asyncio.subprocess.Process) -> None:
        try:
            await asyncio.wait_for(child.wait(), 5.0)
        except TimeoutError:
            child.kill()
            await child.wait()

    async def close(self) -> None:
        """End the child (if any) and wait for it."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._child is not None:
            self._let_go(self._child, kill=False)
        if self._leaving:
            await asyncio.gather(*self._leaving, return_exceptions=True)


def _parsed(line: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(line)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


# ---------------------------------------------------------------- the child


def _serve_signing() -> int:
    from sloth_core.names import validate_agent_name

    from . import ca

    stdin, stdout = sys.stdin.buffer, sys.stdout
    opening = json.loads(stdin.readline() or b"{}")
    key, cert = ca.load_key(opening["key"].encode()), ca.load_cert(opening["cert"].encode())
    for line in stdin:
        request = json.loads(line)
        name = str(request["name"])
        try:
            validate_agent_name(name)
            issued = ca.sign_agent_csr(key, cert, name, base64.b64decode(request["csr"]))
        except errors.SlothError as exc:
            answer = json.loads(errors.error_report(exc))
        else:
            answer = {"cert": ca.cert_to_pem(issued).decode(), "serial": issued.serial_number}
        stdout.write(json.dumps({**answer, "id": request["id"]}) + "\n")
        stdout.flush()
    return 0


def _create(data_dir: str) -> int:
    from .pki import MasterPKI

    try:
        MasterPKI.create_if_absent(Path(data_dir))
    except errors.SlothError as exc:
        sys.stdout.write(errors.error_report(exc) + "\n")
        return 1
    except OSError as exc:  # a full disk, a read-only data dir: the master says so in one line
        failure = errors.StorageError(f"cannot write the master's certificate authority in {data_dir}: {exc.strerror or exc}")
        sys.stdout.write(errors.error_report(failure) + "\n")
        return 1
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["sign"]:
        return _serve_signing()
    if argv[:1] == ["create"] and len(argv) == 2:
        return _create(argv[1])
    sys.stderr.write(__doc__ or "")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
