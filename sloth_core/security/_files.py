"""Private files: keys, tokens and the PKI's small JSON state.

Every file here is created with mode 0600 by ``os.open`` itself, so there is
never a moment when a secret sits on disk with wider permissions (a
chmod-after-write leaves such a window). Writes go to a temp file that is
renamed over the target, so a crash never leaves half a key behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sloth_core.errors import CredentialsError

PRIVATE_FILE_MODE = 0o600


def write_private(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``, readable by the owner only."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def read_credential(path: Path, what: str) -> bytes:
    """Read ``path`` or raise a :class:`CredentialsError` naming it."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CredentialsError(f"{what} not found at {path}") from None
    except PermissionError:
        raise CredentialsError(f"cannot read {what} at {path}: permission denied") from None
    except OSError as exc:
        raise CredentialsError(f"cannot read {what} at {path}: {exc.strerror}") from None


class JsonState:
    """A small JSON document shared by the master and local CLI processes.

    The master keeps it in memory but re-reads it when the file changed on
    disk (a local ``sloth-runner`` command may have rotated a token or revoked
    a certificate). Updates hold an exclusive ``flock`` so two processes never
    lose each other's changes.
    """

    def __init__(self, path: Path, empty: Callable[[], dict[str, Any]]) -> None:
        self.path = path
        self._empty = empty
        self._lock_path = path.with_name(f".{path.name}.lock")
        self._data: dict[str, Any] = empty()
        self._signature: tuple[int, int, int] | None = None

    def read(self) -> dict[str, Any]:
        """The current document (re-read only if the file changed)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._data, self._signature = self._empty(), None
            return self._data
        signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        if signature != self._signature:
            try:
                self._data = json.loads(self.path.read_bytes())
            except (OSError, ValueError) as exc:
                raise CredentialsError(f"{self.path} is damaged or unreadable ({exc})") from None
            self._signature = signature
        return self._data

    @contextlib.contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        """Yield the freshest document under the lock and save it afterwards."""
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # Another process may have written within our mtime granularity.
            self._signature = None
            data = self.read()
            try:
                yield data
            except BaseException:
                # Drop the half-edited copy: the next read reloads the file.
                self._signature = None
                raise
            write_private(self.path, json.dumps(data, indent=1, sort_keys=True).encode())
            self._signature = None
            self.read()
        finally:
            os.close(fd)  # closing releases the flock
