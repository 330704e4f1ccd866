"""Every error a person can see, as one documented hierarchy, and its wire table.

Each class carries a message a person can act on, the exit code the CLI uses
for it, the gRPC status it travels as, and a short machine-readable
``reason``: its class line is its row of the table
(``class X(Base, status=..., reason=..., exit_code=...)``). A servicer sends the reason in trailing metadata
(:data:`REASON_METADATA_KEY`); a client rebuilds the same class from it with
:func:`error_for`. Nothing anywhere decides on the text of a message: code
branches on the class (or its ``reason``) only.

The grpc glue (aborting a call, reading a failed call) lives in
:mod:`sloth_core.rpc_errors`, so this module imports nothing heavy.

Hierarchy::

    SlothError
    ├── UsageError                  the user's own input is malformed (exit 2)
    │   └── ShellTargetError        a terminal session names other than one agent
    ├── InvalidArgumentError        the master refused a request's contents
    │   └── AmbiguousIdError        an id prefix names several runs or jobs
    ├── NotFoundError
    │   ├── AgentNotFoundError
    │   └── RunNotFoundError        a run or a job
    ├── AgentOfflineError           the agent exists but cannot take the call
    │   └── AgentUnreachableError   it did not answer the master's call
    ├── RunExistsError              an agent is already running a run with this id
    ├── NameTakenError              the name is bound to another identity
    ├── PermissionDeniedError       the caller's identity may not do this
    │   └── CertificateRevokedError
    ├── CredentialsError            missing, unreadable or refused credentials
    │   └── TLSRefusedError         the peer closed the TLS handshake on us
    ├── MasterUnreachableError      no answer (network, master down, deadline)
    ├── ResourceExhaustedError
    │   ├── TooSlowError            a reader fell too far behind a live stream
    │   ├── MasterBusyError         the master sheds load; retry with backoff
    │   ├── StdinTooLargeError      --stdin for several agents is over its cap (exit 2)
    │   └── HistoryUnsavedError     storage is failing and its queue is full
    ├── CallCancelledError          someone cancelled the call (exit 130)
    ├── PortInUseError              a server could not bind its address
    └── StorageError                the store cannot be opened or written
"""

from __future__ import annotations

REASON_METADATA_KEY = "sloth-reason"


class SlothError(Exception):
    """Base of every error shown to the user as one line.

    The CLI prints ``error: <message>`` and exits with ``exit_code``; anything
    that is not a :class:`SlothError` reaching the top is a bug.
    """

    exit_code: int = 1
    #: gRPC status name this error travels as (``grpc.StatusCode[status]``).
    status: str = "UNKNOWN"
    #: Machine-readable name sent in trailing metadata; unique per class.
    reason: str = "error"

    def __init_subclass__(cls, *, status: str = "", reason: str = "", exit_code: int | None = None) -> None:
        # A class's row of the table: `class X(Base, status=..., reason=..., exit_code=...)`;
        # what it leaves out it inherits from its base.
        super().__init_subclass__()
        if status:
            cls.status = status
        if reason:
            cls.reason = reason
        if exit_code is not None:
            cls.exit_code = exit_code

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class UsageError(SlothError, status="INVALID_ARGUMENT", reason="usage", exit_code=2):
    """The user's input is malformed (bad name, bad address, empty command)."""


class ShellTargetError(UsageError, reason="shell_target"):
    """A terminal session (``agent shell``) must target exactly one agent."""


class InvalidArgumentError(SlothError, status="INVALID_ARGUMENT", reason="invalid_argument", exit_code=255):
    """The master refused what a request carried (too long, not UTF-8, NUL)."""


class AmbiguousIdError(InvalidArgumentError, reason="ambiguous_id"):
    """An id prefix matches several runs or jobs; the message lists them."""


class NotFoundError(SlothError, status="NOT_FOUND", reason="not_found", exit_code=255):
    """Something named by the caller does not exist."""


class AgentNotFoundError(NotFoundError, reason="agent_not_found"):
    """No agent has this name (or no agent matches the target)."""


class RunNotFoundError(NotFoundError, reason="run_not_found"):
    """No run or job has this id."""


class AgentOfflineError(SlothError, status="FAILED_PRECONDITION", reason="agent_offline", exit_code=255):
    """The agent is known but offline, stopped, or not answering."""


class AgentUnreachableError(AgentOfflineError, reason="agent_unreachable"):
    """The master could not reach the agent (down, or the network between them)."""


class RunExistsError(SlothError, status="ALREADY_EXISTS", reason="run_exists", exit_code=255):
    """An agent was asked to start a run id it is already running."""


class NameTakenError(SlothError, status="ALREADY_EXISTS", reason="name_taken", exit_code=1):
    """The agent name is bound to another identity."""


class PermissionDeniedError(SlothError, status="PERMISSION_DENIED", reason="permission_denied", exit_code=1):
    """The caller's identity is not allowed to make this call."""


class CertificateRevokedError(PermissionDeniedError, reason="certificate_revoked"):
    """The caller's certificate was revoked (for example by ``agent delete``)."""


class CredentialsError(SlothError, status="UNAUTHENTICATED", reason="credentials", exit_code=1):
    """Missing, unreadable or refused credentials; bad join tokens."""


class TLSRefusedError(CredentialsError, status="UNAVAILABLE", reason="tls_refused"):
    """The peer ended the TLS handshake: our certificate (or plaintext) was refused.

    No server can label this case (the call never reaches a handler), so it is
    recognised on the client side only, in :mod:`sloth_core.rpc_errors`.
    """


class MasterUnreachableError(SlothError, status="UNAVAILABLE", reason="unavailable", exit_code=255):
    """The master (or a peer) did not answer: down, unreachable, or too slow."""


class ResourceExhaustedError(SlothError, status="RESOURCE_EXHAUSTED", reason="resource_exhausted", exit_code=1):
    """A bound was reached; the message says which."""


class TooSlowError(ResourceExhaustedError, reason="too_slow"):
    """A reader fell so far behind a live stream that the master let it go."""


class MasterBusyError(ResourceExhaustedError, reason="master_busy", exit_code=255):
    """The master is shedding load; the call may be retried after a backoff."""


class StdinTooLargeError(ResourceExhaustedError, reason="stdin_too_large", exit_code=2):
    """The input sent to several agents is over the cap the master keeps for them."""


class HistoryUnsavedError(ResourceExhaustedError, reason="history_unsaved", exit_code=255):
    """The store is failing and its retry queue is full: new runs are refused."""


class CallCancelledError(SlothError, status="CANCELLED", reason="cancelled", exit_code=130):
    """The call was cancelled by someone (Ctrl-C, ``runs cancel``)."""


class PortInUseError(SlothError, status="UNAVAILABLE", reason="port_in_use", exit_code=1):
    """A server could not bind its address (in use, or not ours)."""


class StorageError(SlothError, status="UNAVAILABLE", reason="storage", exit_code=1):
    """The store cannot be opened or written (disk full, permissions, server down)."""


class ClusterError(SlothError, status="FAILED_PRECONDITION", reason="cluster", exit_code=1):
    """A cluster operation this master cannot do (no root key, a CA too old to sign intermediates, another cluster's store)."""


def _all_classes() -> list[type[SlothError]]:
    found: list[type[SlothError]] = [SlothError]
    index = 0
    while index < len(found):
        found.extend(found[index].__subclasses__())
        index += 1
    return found


def error_for(status: str, reason: str | None, message: str) -> SlothError:
    """Rebuild the error a servicer raised from its status name and reason.

    The reason decides when it is known; otherwise the most general class of
    that status (an older or foreign server that sent no reason).
    """
    by_reason = {cls.reason: cls for cls in _all_classes()}
    cls = by_reason.get(reason or "")
    if cls is None:
        cls = _DEFAULT_FOR_STATUS.get(status, SlothError)
    return cls(message)


# The other direction of the table: a status with no (known) reason.
_DEFAULT_FOR_STATUS: dict[str, type[SlothError]] = {
    "INVALID_ARGUMENT": InvalidArgumentError,
    "NOT_FOUND": NotFoundError,
    "FAILED_PRECONDITION": AgentOfflineError,
    "ALREADY_EXISTS": NameTakenError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "UNAUTHENTICATED": CredentialsError,
    "UNAVAILABLE": MasterUnreachableError,
    "DEADLINE_EXCEEDED": MasterUnreachableError,
    "RESOURCE_EXHAUSTED": ResourceExhaustedError,
    "CANCELLED": CallCancelledError,
}


def error_report(exc: SlothError) -> str:
    """One JSON line that carries ``exc`` out of a child process (see :func:`error_from_report`)."""
    import json

    return json.dumps({"reason": exc.reason, "message": exc.message})


def error_from_report(line: bytes | str, fallback: str) -> SlothError:
    """The typed error a child process reported with :func:`error_report`; ``fallback`` if it reported none."""
    import json

    try:
        document = json.loads(line)
        reason, message = str(document["reason"]), str(document["message"])
    except (ValueError, KeyError, TypeError):
        return SlothError(fallback)
    return error_for("", reason, message)
