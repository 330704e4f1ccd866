"""Which certificate serials were issued to whom, and which are revoked.

The TLS handshake only proves a certificate came from our CA; it cannot say
"not any more". So the master records every serial it issues per identity,
and the authorization checks (:mod:`.identity`) refuse revoked serials.
Persisted in ``pki/certificates.json`` (0600) so revocations survive restarts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._files import JsonState


def _empty() -> dict[str, Any]:
    return {"issued": {}, "revoked": [], "admins": {}}


@dataclass(frozen=True)
class AdminIdentity:
    """An ``admin:NAME`` identity as ``master credentials list`` shows it."""

    name: str
    active: bool
    created_at: float  # 0 when unknown (issued before the master kept notes)
    revoked_at: float
    exported_to: str


class CertificateLedger:
    """Issued and revoked serials, keyed by identity (``"agent/web1"``)."""

    def __init__(self, path: Path, shared: Any = None) -> None:
        # The cluster's shared document (a SharedState) when several masters share a store.
        self._state = shared if shared is not None else JsonState(path, _empty)
        self._revoked: frozenset[int] = frozenset()
        self._revoked_source: list[str] | None = None

    def refresh_soon(self) -> None:
        """Re-read the shared ledger at once (files are re-read on every read anyway)."""
        refresh = getattr(self._state, "refresh_soon", None)
        if refresh is not None:
            refresh()

    def record(self, identity: str, serial: int, *, supersede: bool = False) -> list[int]:
        """Note that ``serial`` was issued to ``identity``.

        With ``supersede`` every earlier certificate of that identity is
        revoked: a re-joined agent has a new key, and the old one (perhaps
        the reason for re-joining) must stop working. Returns those serials.
        """
        with self._state.update() as data:
            serials: list[str] = data["issued"].setdefault(identity, [])
            superseded = [int(s, 16) for s in serials] if supersede else []
            if supersede:
                data["revoked"] = sorted({*data["revoked"], *serials})
                serials.clear()
            serials.append(format(serial, "x"))
        return superseded

    def revoke(self, identity: str) -> list[int]:
        """Revoke every certificate issued to ``identity``; returns their serials."""
        with self._state.update() as data:
            serials: list[str] = data["issued"].pop(identity, [])
            data["revoked"] = sorted({*data["revoked"], *serials})
            kind, _, name = identity.partition("/")
            admin = data.setdefault("admins", {}).get(name) if kind == "admin" else None
            if admin is not None and serials:
                admin["revoked_at"] = time.time()
        return [int(s, 16) for s in serials]

    def note_admin(self, name: str, exported_to: str) -> None:
        """Remember when and where admin ``name``'s bundle was exported (for listing)."""
        with self._state.update() as data:
            data.setdefault("admins", {})[name] = {
                "created_at": time.time(), "file": exported_to, "revoked_at": None,
            }

    def admins(self) -> list[AdminIdentity]:
        """Every admin identity the master issued, active ones and revoked ones."""
        data = self._state.read()
        notes: dict[str, dict[str, Any]] = data.get("admins", {})
        active = {key.partition("/")[2] for key, serials in data["issued"].items() if key.startswith("admin/") and serials}
        found = [
            AdminIdentity(
                name, name in active, float(note.get("created_at") or 0.0),
                float(note.get("revoked_at") or 0.0), str(note.get("file") or ""),
            )
            for name, note in notes.items()
        ]
        found += [AdminIdentity(name, True, 0.0, 0.0, "") for name in active - set(notes)]
        return sorted(found, key=lambda a: a.name)

    def holds_valid(self, identity: str) -> bool:
        """Whether ``identity`` has a certificate that is not revoked."""
        return bool(self._state.read()["issued"].get(identity))

    def is_revoked(self, serial: int) -> bool:
        """Constant-time-ish set lookup; re-reads the file only if it changed."""
        return serial in self.revoked_serials()

    def revoked_serials(self) -> frozenset[int]:
        """Every revoked serial; the same object until the list changes."""
        source = self._state.read()["revoked"]
        if source is not self._revoked_source:
            self._revoked = frozenset(int(s, 16) for s in source)
            self._revoked_source = source
        return self._revoked
