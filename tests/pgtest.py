"""A PostgreSQL database of its own for each test.

The project's machines run PostgreSQL on 127.0.0.1:5432 (user postgres, trust
auth). Each test creates ``test_<random>`` and drops it ``WITH (FORCE)``.
Without a server the tests skip, except under CI (``$CI`` set), where a
missing server is a failure: CI must run them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

SERVER = os.environ.get("SLOTH_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
ADMIN_DB = "test"


def _admin():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(f"{SERVER}/{ADMIN_DB}", autocommit=True, connect_timeout=3)


def require_postgres() -> None:
    """Skip (fail under CI) when no PostgreSQL answers."""
    try:
        with _admin():
            return
    except Exception as exc:
        reason = f"PostgreSQL is not reachable at {SERVER}: {str(exc).strip().splitlines()[0]}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the PostgreSQL tests)")
    pytest.skip(reason)


@contextmanager
def temp_database() -> Iterator[str]:
    """Create a fresh database; yield its URL; drop it afterwards."""
    require_postgres()
    name = f"test_{secrets.token_hex(6)}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER}/{name}"
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
