"""Every error a person can see, as one documented hierarchy, and its wire table.

Each class carries a message a person can act on, the exit code the CLI uses
for it, the gRPC status it travels as, and a short machine-readable
``reason``. A servicer sends the reason in trailing metadata
(:data:`REASON_METADATA_KEY`); a client rebuilds the same class from it with
:func:`error_for`. Nothing anywhere decides on the text of a message: code
branches on the class (or its ``reason``) only.

The grpc glue (aborting a call, reading a failed call) lives in
:mod:`sloth_core.rpc_errors`, so this module imports nothing heavy.

Hierarchy::

    SlothError
    ├── UsageError                  the user's own input is malformed (exit 2)
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

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class UsageError(SlothError):
    """The user's input is malformed (bad name, bad address, empty command)."""

    exit_code = 2
    status = "INVALID_ARGUMENT"
    reason = "usage"


class InvalidArgumentError(SlothError):
    """The master refused what a request carried (too long, not UTF-8, NUL)."""

    exit_code = 255
    status = "INVALID_ARGUMENT"
    reason = "invalid_argument"


class AmbiguousIdError(InvalidArgumentError):
    """An id prefix matches several runs or jobs; the message lists them."""

    reason = "ambiguous_id"


class NotFoundError(SlothError):
    """Something named by the caller does not exist."""

    exit_code = 255
    status = "NOT_FOUND"
    reason = "not_found"


class AgentNotFoundError(NotFoundError):
    """No agent has this name (or no agent matches the target)."""

    reason = "agent_not_found"


class RunNotFoundError(NotFoundError):
    """No run or job has this id."""

    reason = "run_not_found"


class AgentOfflineError(SlothError):
    """The agent is known but offline, stopped, or not answering."""

    exit_code = 255
    status = "FAILED_PRECONDITION"
    reason = "agent_offline"


class AgentUnreachableError(AgentOfflineError):
    """The master could not reach the agent (down, or the network between them)."""

    reason = "agent_unreachable"


class RunExistsError(SlothError):
    """An agent was asked to start a run id it is already running."""

    exit_code = 255
    status = "ALREADY_EXISTS"
    reason = "run_exists"


class NameTakenError(SlothError):
    """The agent name is bound to another identity."""

    exit_code = 1
    status = "ALREADY_EXISTS"
    reason = "name_taken"


class PermissionDeniedError(SlothError):
    """The caller's identity is not allowed to make this call."""

    exit_code = 1
    status = "PERMISSION_DENIED"
    reason = "permission_denied"


class CertificateRevokedError(PermissionDeniedError):
    """The caller's certificate was revoked (for example by ``agent delete``)."""

    reason = "certificate_revoked"


class CredentialsError(SlothError):
    """Missing, unreadable or refused credentials; bad join tokens."""

    exit_code = 1
    status = "UNAUTHENTICATED"
    reason = "credentials"


class TLSRefusedError(CredentialsError):
    """The peer ended the TLS handshake: our certificate (or plaintext) was refused.

    No server can label this case (the call never reaches a handler), so it is
    recognised on the client side only, in :mod:`sloth_core.rpc_errors`.
    """

    status = "UNAVAILABLE"
    reason = "tls_refused"


class MasterUnreachableError(SlothError):
    """The master (or a peer) did not answer: down, unreachable, or too slow."""

    exit_code = 255
    status = "UNAVAILABLE"
    reason = "unavailable"


class ResourceExhaustedError(SlothError):
    """A bound was reached; the message says which."""

    exit_code = 1
    status = "RESOURCE_EXHAUSTED"
    reason = "resource_exhausted"


class TooSlowError(ResourceExhaustedError):
    """A reader fell so far behind a live stream that the master let it go."""

    reason = "too_slow"


class MasterBusyError(ResourceExhaustedError):
    """The master is shedding load; the call may be retried after a backoff."""

    exit_code = 255
    reason = "master_busy"


class HistoryUnsavedError(ResourceExhaustedError):
    """The store is failing and its retry queue is full: new runs are refused."""

    exit_code = 255
    reason = "history_unsaved"


class CallCancelledError(SlothError):
    """The call was cancelled by someone (Ctrl-C, ``runs cancel``)."""

    exit_code = 130
    status = "CANCELLED"
    reason = "cancelled"


class PortInUseError(SlothError):
    """A server could not bind its address (in use, or not ours)."""

    exit_code = 1
    status = "UNAVAILABLE"
    reason = "port_in_use"


class StorageError(SlothError):
    """The store cannot be opened or written (disk full, permissions, server down)."""

    exit_code = 1
    status = "UNAVAILABLE"
    reason = "storage"


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
