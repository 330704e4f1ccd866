"""Join tokens: what an agent needs to get its certificate from the master.

A token string is self-contained so one copy-paste is enough::

    SLOTH1.<join_port>.<token_id>.<secret>.<pin>

``token_id``, ``secret`` (32 random bytes) and ``pin`` (SHA-256 of the join
endpoint's certificate) are url-safe base64 without padding; parts are
separated by ``.`` because ``-`` and ``_`` occur inside base64url. The join
port is in the token because joining uses its own port (it must accept
clients without certificates); the pin lets the agent check it reached the
right master before it sends anything, and the secret is never sent at all:
the agent sends ``HMAC-SHA256(secret, csr_pem)``.

The master keeps a *default* token (written to ``pki/join-token`` for local
discovery) plus any extra single-use or expiring tokens, in
``pki/tokens.json`` (0600).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sloth_core.errors import CredentialsError

from ._files import JsonState, write_private
from .layout import TOKEN_FILE, TOKENS_STATE_FILE

TOKEN_PREFIX = "SLOTH1"

INVALID = "join token is invalid or was rotated"
EXPIRED = "join token expired"
USED = "join token was already used"
MALFORMED = "join token is malformed (expected SLOTH1.<port>.<id>.<secret>.<pin>); copy it again from the master"

WRONG_KIND = {
    "agent": "this is a token for a master joining the cluster (`master join-cluster`), not for an agent",
    "master": "this is an agent's join token; a master joins with `sloth-runner master token create --master`",
}

# Spent or expired tokens are kept this long so that a late attempt gets the
# precise "expired" / "already used" message rather than "invalid".
_KEEP_DEAD_S = 7 * 24 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def compute_proof(secret: bytes, csr_pem: bytes) -> bytes:
    """What a joining agent sends instead of the secret."""
    return hmac.new(secret, csr_pem, hashlib.sha256).digest()


@dataclass(frozen=True)
class JoinToken:
    """A parsed token string. ``str(token)`` gives the string back."""

    join_port: int
    token_id: str
    secret: bytes = field(repr=False)  # never lands in logs or tracebacks
    pin: str

    def __str__(self) -> str:
        return f"{TOKEN_PREFIX}.{self.join_port}.{self.token_id}.{_b64(self.secret)}.{self.pin}"

    def proof(self, csr_pem: bytes) -> bytes:
        return compute_proof(self.secret, csr_pem)

    @classmethod
    def parse(cls, text: str) -> JoinToken:
        """Parse a token string; :class:`CredentialsError` if malformed."""
        parts = text.strip().split(".")
        if len(parts) != 5 or parts[0] != TOKEN_PREFIX:
            raise CredentialsError(MALFORMED)
        _, port_text, token_id, secret_text, pin = parts
        try:
            port = int(port_text)
            secret = _unb64(secret_text)
            pin_bytes = _unb64(pin)
            _unb64(token_id)
        except (ValueError, binascii.Error):
            raise CredentialsError(MALFORMED) from None
        if not (0 < port < 65536) or len(secret) < 16 or len(pin_bytes) != 32 or not token_id:
            raise CredentialsError(MALFORMED)
        return cls(port, token_id, secret, pin)


@dataclass(frozen=True)
class JoinGrant:
    """What a verified token allows: any name, or one (and whether to take it over)."""

    for_name: str | None = None
    replace: bool = False


def _empty() -> dict[str, Any]:
    return {"join_port": None, "tokens": {}}


class JoinTokens:
    """The master's join tokens. Created and owned by :class:`~.pki.MasterPKI`.

    Token strings need the join port, which is known only once the master
    has bound it: the master calls :meth:`publish` (via
    ``MasterPKI.set_join_port``) after binding, which also (re)writes the
    default token file. The port and the tokens are persisted, and re-read
    when the file changes, so a local CLI process can rotate or mint tokens
    that the running master honours at once.
    """

    def __init__(self, pki_dir: Path, pin: str, shared: Any = None) -> None:
        self._pin = pin
        self._token_file = pki_dir / TOKEN_FILE
        #: This master's own document: its join port (and the tokens, alone).
        self._local = JsonState(pki_dir / TOKENS_STATE_FILE, _empty)
        #: The tokens: the cluster's shared document (a :class:`~.shared_state.SharedState`)
        #: when several masters share a store, else the local file.
        self._state = shared if shared is not None else self._local
        if self._default_id(self._state.read()) is None:
            with self._state.update() as data:
                if self._default_id(data) is None:
                    self._add(data, default=True, once=False, ttl_s=None)

    # ------------------------------------------------------------ issuing

    @property
    def join_port(self) -> int | None:
        port = self._local.read()["join_port"]
        return int(port) if port else None

    def publish(self, join_port: int) -> str:
        """Record the bound join port and write the default token file."""
        with self._local.update() as data:
            data["join_port"] = join_port
        token = self.current_token()
        write_private(self._token_file, f"{token}\n".encode())
        return token

    def current_token(self, join_port: int | None = None) -> str:
        """The default token string (for ``join_port``, else the published one)."""
        data = self._state.read()
        token_id = self._default_id(data)
        if token_id is None:  # only if someone edited tokens.json by hand
            raise CredentialsError(f"{self._state.path} has no default join token; run rotate")
        return self._format(data, token_id, join_port)

    def rotate(self) -> None:
        """Replace the default token.

        Certificates issued with the old one stay valid, and extra tokens from
        :meth:`create` are untouched.
        """
        with self._state.update() as data:
            old = self._default_id(data)
            if old is not None:
                del data["tokens"][old]
            self._add(data, default=True, once=False, ttl_s=None)
        if self.join_port is not None:
            self.publish(self.join_port)

    def create(
        self,
        *,
        once: bool = False,
        ttl_s: float | None = None,
        join_port: int | None = None,
        for_name: str | None = None,
        replace: bool = False,
        kind: str = "agent",
    ) -> str:
        """An extra token, optionally single-use and/or expiring after ``ttl_s``.

        ``for_name`` admits only the agent of that name; with ``replace`` it
        may take that name over from the certificate that holds it (the
        operator's explicit act; see :class:`~.join.JoinServicer`). A
        replacing token is always single-use. Rotation leaves extra tokens
        alone; they end by use or expiry.
        """
        if ttl_s is not None and ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        if replace and not for_name:
            raise ValueError("a replacing token names the agent it replaces")
        with self._state.update() as data:
            token_id = self._add(data, default=False, once=once or replace or kind == "master", ttl_s=ttl_s)
            if kind != "agent":
                data["tokens"][token_id]["kind"] = kind
            if for_name:
                data["tokens"][token_id].update({"for": for_name, "replace": replace})
        return self._format(self._state.read(), token_id, join_port)

    # ------------------------------------------------------------ checking

    def verify(
        self, token_id: str, proof: bytes, csr_pem: bytes, *, consume: bool = True, kind: str = "agent"
    ) -> JoinGrant:
        """Check a join proof; consume a single-use token unless told not to.

        Returns what the token allows (:class:`JoinGrant`).

        The proof is checked first, so someone without the secret learns
        nothing about a token (not even whether it expired). Raises
        :class:`CredentialsError` with a message for the person joining.
        """
        refresh = getattr(self._state, "refresh", None)
        if refresh is not None:
            refresh()  # a token minted a moment ago on another master
        record = self._state.read()["tokens"].get(token_id)
        if record is None:
            raise CredentialsError(INVALID)
        expected = compute_proof(_unb64(record["secret"]), csr_pem)
        if not hmac.compare_digest(expected, proof):
            raise CredentialsError(INVALID)
        if record.get("expires_at") is not None and time.time() >= record["expires_at"]:
            raise CredentialsError(EXPIRED)
        if record.get("used_at") is not None:
            raise CredentialsError(USED)
        if record.get("kind", "agent") != kind:
            # A master token makes a new CA: it must never pass as an agent's, nor the reverse.
            raise CredentialsError(WRONG_KIND[kind])
        if consume:
            self.consume(token_id)
        return JoinGrant(for_name=record.get("for"), replace=bool(record.get("replace")))

    def consume(self, token_id: str) -> None:
        """Mark a single-use token as spent (no-op for reusable ones)."""
        known = self._state.read()["tokens"].get(token_id)
        if known is not None and not known.get("once"):
            return  # nothing to record: skip the locked write
        with self._state.update() as data:
            record = data["tokens"].get(token_id)
            if record is None:
                raise CredentialsError(INVALID)  # rotated by another process meanwhile
            if record.get("once"):
                if record.get("used_at") is not None:
                    raise CredentialsError(USED)
                record["used_at"] = time.time()

    # ------------------------------------------------------------ internals

    @staticmethod
    def _default_id(data: dict[str, Any]) -> str | None:
        return next((tid for tid, rec in data["tokens"].items() if rec.get("default")), None)

    @staticmethod
    def _add(data: dict[str, Any], *, default: bool, once: bool, ttl_s: float | None) -> str:
        now = time.time()
        tokens = data["tokens"]
        for tid in [t for t, rec in tokens.items() if _is_dead_since(rec) < now - _KEEP_DEAD_S]:
            del tokens[tid]
        token_id = _b64(secrets.token_bytes(8))
        tokens[token_id] = {
            "secret": _b64(secrets.token_bytes(32)),
            "default": default,
            "once": once,
            "created_at": now,
            "expires_at": now + ttl_s if ttl_s is not None else None,
            "used_at": None,
        }
        return token_id

    def _format(self, data: dict[str, Any], token_id: str, join_port: int | None = None) -> str:
        port = join_port or self._local.read()["join_port"]
        if not port:
            # The master publishes the port right after binding it.
            raise CredentialsError("the master has not opened its join port yet; start the master first")
        secret = _unb64(data["tokens"][token_id]["secret"])
        return str(JoinToken(int(port), token_id, secret, self._pin))


def _is_dead_since(record: dict[str, Any]) -> float:
    """When a token stopped being usable (+inf while it still is)."""
    ends = [t for t in (record.get("used_at"), record.get("expires_at")) if t is not None]
    return min(ends) if ends else float("inf")
