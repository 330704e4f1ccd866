"""What a sloth-runner process keeps out of its memory: Python's OpenSSL bindings.

grpc brings its own TLS (BoringSSL, linked into grpc's extension). Python's
``ssl`` is needed only to read the join endpoint's certificate before a
join, which runs in a short-lived child (``sloth_core.agent.joining``) or
in ``master join-cluster``. Yet asyncio imports ``ssl`` whenever it can, and
``hashlib``/``hmac`` load ``_hashlib``: together they map libssl and
libcrypto, 4.7 MB of an idle agent's 47 MB RSS, and importing ``ssl`` is 7 %
of the CPU of a short CLI command.

:func:`keep_openssl_out` marks both absent (``None`` in ``sys.modules``, the
import system's documented way to make an import fail): asyncio then runs
as on a Python built without ``ssl`` (it never does TLS for us), and
``hashlib``/``hmac`` fall back to their built-in SHA-256 and HMAC, the same
digests. :func:`python_ssl` lifts the mark where ``ssl`` is really needed.
"""

from __future__ import annotations

import sys
from types import ModuleType

_OPENSSL_BINDINGS = ("ssl", "_hashlib")


def keep_openssl_out() -> None:
    """Call before anything imports asyncio or hashlib; a binding already imported stays."""
    for name in _OPENSSL_BINDINGS:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def python_ssl() -> ModuleType:
    """Python's ``ssl`` module, also in a process that kept it out."""
    if "ssl" in sys.modules and sys.modules["ssl"] is None:
        del sys.modules["ssl"]
    import ssl

    return ssl
