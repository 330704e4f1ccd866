"""Certificates made in a child process, so the master never holds `cryptography`.

Making the CA on first start and signing an agent's join need `cryptography`:
about 14 MB that a master would keep for its whole life after using them
once (a fresh master measured 60 MB, a restarted one, which never loads it,
44 MB). :class:`Signer` does both in a child it starts when one is needed
and lets go after :data:`IDLE_S` without a request: the child that made a
fresh master's CA also signs the joins that follow it, and a burst of joins
pays for one child.

The signing key reaches the child down its stdin, never on its command line
or in its environment. Requests and answers are JSON lines, each answer
carrying its request's number; a child's refusal comes back as the typed
error it met (:func:`~sloth_core.errors.error_report`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from sloth_core import errors

log = logging.getLogger(__name__)

#: A signer child with no request for this long exits (the next request starts another).
IDLE_S = 30.0
#: How long one request may take before the child is taken for hung.
ANSWER_TIMEOUT_S = 30.0
# A child that died since the last request is replaced once per request.
ATTEMPTS = 2


class Signer:
    """Makes the master's CA and signs agents' CSRs, in a child process.

    Requests are answered one at a time, in order; :meth:`close` ends the child.
    """

    def __init__(self, *, idle_s: float = IDLE_S) -> None:
        self._idle_s = idle_s
        self._pair: tuple[bytes, bytes] | None = None
        self._child: asyncio.subprocess.Process | None = None
        self._keyed: asyncio.subprocess.Process | None = None  # the child that holds the signing pair
        self._lock = asyncio.Lock()
        self._idle: asyncio.TimerHandle | None = None
        self._leaving: set[asyncio.Task[None]] = set()
        self._asked = 0  # requests sent; each answer carries its request's number
        self._closed = False

    @property
    def running(self) -> bool:
        """Whether a child is up (from a request until :data:`IDLE_S` after the last)."""
        return self._child is not None

    def use(self, signing_pair: tuple[bytes, bytes]) -> None:
        """Sign with this certificate and key PEM (``MasterPKI.signing_pair``) from now on."""
        self._pair = signing_pair

    async def create_pki(self, data_dir: Path) -> None:
        """Make the master's CA and identities in ``data_dir`` (a no-op if it holds them); raises the child's typed error."""
        answer = await self._request({"op": "create", "dir": str(data_dir)})
        if "ok" not in answer:
            raise errors.error_from_report(json.dumps(answer), "making the master's certificate authority failed")

    async def sign_agent(self, name: str, csr_pem: bytes) -> tuple[bytes, int]:
        """Agent ``name``'s certificate PEM (no chain) and its serial; CredentialsError for a bad CSR."""
        if self._pair is None:
            raise errors.SlothError("the master has no signing key yet")
        answer = await self._request({"op": "sign", "name": name, "csr": base64.b64encode(csr_pem).decode()})
        if "cert" not in answer:
            raise errors.error_from_report(json.dumps(answer), "the certificate signer gave no certificate")
        return str(answer["cert"]).encode(), int(answer["serial"])

    async def _request(self, request: dict[str, str]) -> dict[str, Any]:
        async with self._lock:
            if self._closed:
                raise errors.SlothError("the master is stopping: it makes no more certificates")
            if self._idle is not None:
                self._idle.cancel()
                self._idle = None
            try:
                return await self._ask(request)
            finally:
                self._idle = asyncio.get_running_loop().call_later(self._idle_s, self._retire)

    async def _ask(self, request: dict[str, str]) -> dict[str, Any]:
        for _ in range(ATTEMPTS):
            # A child that was up may have died idle: another is tried. One
            # started for this request that dies would die again.
            fresh = self._child is None
            child = self._child or await self._start()
            assert child.stdin is not None and child.stdout is not None
            self._asked += 1
            line = b""
            try:
                if request["op"] == "sign" and self._keyed is not child:
                    assert self._pair is not None
                    cert_pem, key_pem = self._pair
                    child.stdin.write(_line({"op": "key", "cert": cert_pem.decode(), "key": key_pem.decode()}))
                    self._keyed = child
                child.stdin.write(_line({**request, "id": self._asked}))
                await child.stdin.drain()
                line = await asyncio.wait_for(child.stdout.readline(), ANSWER_TIMEOUT_S)
            except (ConnectionError, TimeoutError):
                pass
            except BaseException:
                # Cancelled (the joiner hung up): its answer would be read as the next request's.
                self._let_go(child, kill=True)
                raise
            answer = _parsed(line)
            if answer is not None and answer.pop("id", None) == self._asked:
                return answer
            log.warning("the certificate signer (pid %d) gave no answer", child.pid)
            self._let_go(child, kill=True)
            if fresh:
                break
        raise errors.SlothError(
            "the master could not make a certificate: its signer process failed (its error is in the master's output)"
        )

    async def _start(self) -> asyncio.subprocess.Process:
        child = await asyncio.create_subprocess_exec(
            # -P: the current directory is not on its import path (it is handed the CA's key).
            sys.executable, "-P", "-m", "sloth_core.security.signer",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            # Its stderr is the master's. Its own session: a Ctrl-C in the
            # master's terminal is the master's to handle (it closes the child's stdin).
            start_new_session=True,
        )
        self._child = child
        if self._closed:  # close() ran while it started
            self._let_go(child, kill=True)
            raise errors.SlothError("the master is stopping: it makes no more certificates")
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
        """End the child (if any) and wait for it; no request is served after it."""
        self._closed = True
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._child is not None:
            self._let_go(self._child, kill=False)
        if self._leaving:
            await asyncio.gather(*self._leaving, return_exceptions=True)


def _line(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode() + b"\n"


def _parsed(line: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(line)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


# ---------------------------------------------------------------- the child


def _create(data_dir: str) -> dict[str, Any]:
    from .pki import MasterPKI

    try:
        MasterPKI.create_if_absent(Path(data_dir))
    except OSError as exc:  # a full disk, a read-only data dir: the master says so in one line
        raise errors.StorageError(
            f"cannot write the master's certificate authority in {data_dir}: {exc.strerror or exc}"
        ) from None
    return {"ok": True}


def main() -> int:
    """Answer the master's requests on stdin until it closes it."""
    from sloth_core.names import validate_agent_name

    from . import ca

    signing: tuple[Any, Any] | None = None
    for line in sys.stdin.buffer:
        request = json.loads(line)
        op = request["op"]
        if op == "key":
            signing = ca.load_key(request["key"].encode()), ca.load_cert(request["cert"].encode())
            continue
        try:
            if op == "create":
                answer = _create(request["dir"])
            else:
                assert op == "sign" and signing is not None, op
                name = str(request["name"])
                validate_agent_name(name)
                issued = ca.sign_agent_csr(*signing, name, base64.b64decode(request["csr"]))
                answer = {"cert": ca.cert_to_pem(issued).decode(), "serial": issued.serial_number}
        except errors.SlothError as exc:
            answer = json.loads(errors.error_report(exc))
        except Exception as exc:  # a bug or a CSR nobody foresaw: this request fails, the child serves on
            log.exception("certificate request %s failed", request.get("id"))
            answer = json.loads(errors.error_report(errors.SlothError(f"the master could not make this certificate ({type(exc).__name__})")))
        try:
            sys.stdout.write(json.dumps({**answer, "id": request["id"]}) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:  # the master is gone; nothing is left to say, not even at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
