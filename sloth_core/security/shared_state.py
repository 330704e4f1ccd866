"""The PKI's small JSON documents in PostgreSQL, shared by every master of a cluster.

With ``--store postgresql://…`` join tokens, issued and revoked serials and
admin identities must be the same on every master: a token minted on one is
honoured by all, and a revocation on one is refused by all. :class:`SharedState`
has the interface of :class:`~._files.JsonState` (``read`` and ``update``), so
:mod:`.tokens` and :mod:`.revocation` do not know where their document lives.

Each document is one row of ``sloth_state``, with a version bumped by every
update; updates take the row lock (``SELECT … FOR UPDATE``), so two masters
never lose each other's changes. Reads are served from memory and refreshed
in a background thread when the version changed, checked at most every
:data:`REFRESH_S` (the revocation check runs on every call, on the event
loop: it must never wait on the network); :meth:`SharedState.refresh` reads at once, for a join that must see a
token minted a moment ago on another master. Private keys never come here.

Synchronous psycopg on purpose: the callers are synchronous (the join
servicer, the authorizer's per-call check, local CLI commands), and each call
is one short query on a local connection.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from sloth_core.errors import CredentialsError

log = logging.getLogger(__name__)

#: How stale a shared document may be before a read checks its version.
REFRESH_S = 1.0
#: After a failed check, how long reads keep serving the cached copy.
RETRY_S = 5.0
CONNECT_TIMEOUT_S = 5


class SharedState:
    """One named JSON document in the store's ``sloth_state`` table."""

    def __init__(
        self,
        url: str,
        name: str,
        empty: Callable[[], dict[str, Any]],
        seed: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        from sloth_core.storage.postgres import redact

        self._url = url
        self.name = name
        #: Where the document lives, for messages (no password).
        self.path = f"{redact(url)} ({name})"
        self._empty = empty
        self._seed = seed or empty
        self._lock = threading.RLock()
        self._conn: Any = None
        self._data: dict[str, Any] | None = None
        self._version = -1
        self._checked_at = 0.0
        self._refreshing = False

    # ------------------------------------------------------------ reading

    def read(self) -> dict[str, Any]:
        """The document; a copy at most REFRESH_S old, refreshed off the caller's thread.

        Only the very first read waits for the database: the authorizer calls
        this on every call, on the event loop, and must never wait on the network.
        """
        if self._data is None:
            self.refresh()
        elif time.monotonic() - self._checked_at >= REFRESH_S and not self._refreshing:
            self._refreshing = True
            threading.Thread(target=self._refresh_quietly, name=f"shared-{self.name}", daemon=True).start()
        assert self._data is not None
        return self._data

    def refresh_soon(self) -> None:
        """Re-read now, off the caller's thread (another master said it changed something)."""
        if not self._refreshing:
            self._refreshing = True
            threading.Thread(target=self._refresh_quietly, name=f"shared-{self.name}", daemon=True).start()

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
        except CredentialsError:
            # Keep serving what we know: refusing every call while the store
            # blinks would be worse than a revocation a few seconds late.
            self._checked_at = time.monotonic() - REFRESH_S + RETRY_S
        finally:
            self._refreshing = False

    def refresh(self) -> None:
        """Read the document now if its version changed."""
        with self._lock:
            self._checked_at = time.monotonic()
            row = self._query(lambda c: c.execute(
                "SELECT version FROM sloth_state WHERE name = %s", (self.name,)
            ).fetchone())
            if row is None:
                with self.update():
                    pass  # creates the row from the seed
                return
            if row[0] != self._version or self._data is None:
                full = self._query(lambda c: c.execute(
                    "SELECT doc, version FROM sloth_state WHERE name = %s", (self.name,)
                ).fetchone())
                self._data, self._version = full[0], full[1]

    # ------------------------------------------------------------ writing

    @contextlib.contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        """Yield the freshest document under the row lock and save it afterwards."""
        from psycopg.types.json import Jsonb

        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    conn.execute(
                        "INSERT INTO sloth_state (name, doc) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
                        (self.name, Jsonb(self._seed())),
                    )
                    doc, version = conn.execute(
                        "SELECT doc, version FROM sloth_state WHERE name = %s FOR UPDATE", (self.name,)
                    ).fetchone()
                    yield doc
                    conn.execute(
                        "UPDATE sloth_state SET doc = %s, version = version + 1 WHERE name = %s",
                        (Jsonb(doc), self.name),
                    )
            except _db_errors() as exc:
                self._drop_connection()
                raise self._unreachable(exc) from None
            self._data, self._version, self._checked_at = doc, version + 1, time.monotonic()

    # ------------------------------------------------------------ connection

    def _query(self, run: Callable[[Any], Any]) -> Any:
        try:
            return run(self._connection())
        except _db_errors() as exc:
            self._drop_connection()
            raise self._unreachable(exc) from None

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
            except psycopg.Error as exc:
                raise self._unreachable(exc) from None
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def _unreachable(self, exc: BaseException) -> CredentialsError:
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning("cannot read the cluster's %s from %s: %s", self.name, self.path, cause)
        return CredentialsError(f"cannot reach the cluster's shared {self.name} in {self.path}: {cause}")

    def close(self) -> None:
        with self._lock:
            self._drop_connection()


def _db_errors() -> tuple[type[BaseException], ...]:
    import psycopg

    return (psycopg.OperationalError, psycopg.InterfaceError)
