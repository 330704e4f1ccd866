"""User-facing errors: each carries a message a person can act on.

The CLI prints ``error: <message>`` and exits with ``exit_code``; anything
that is not a :class:`SlothError` reaching the top is a bug.
"""

from __future__ import annotations


class SlothError(Exception):
    """Base of every error shown to the user as one line."""

    exit_code: int = 1

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


class MasterUnreachableError(SlothError):
    exit_code = 255


class AgentNotFoundError(SlothError):
    exit_code = 255


class AgentOfflineError(SlothError):
    exit_code = 255


class NameTakenError(SlothError):
    exit_code = 1


class PermissionDeniedError(SlothError):
    exit_code = 1


class TooSlowError(SlothError):
    """A reader fell so far behind a live stream that the master let it go."""

    exit_code = 1


class CredentialsError(SlothError):
    """Missing, unreadable, refused or revoked credentials; bad join tokens."""

    exit_code = 1
