"""The words a person reads for run and agent states: one table for the CLI and the console."""

from __future__ import annotations

from sloth_core.proto import sloth_pb2 as pb

RUN_WORDS: dict[int, str] = {
    pb.RUN_STATUS_UNSPECIFIED: "unknown",
    pb.RUN_PENDING: "pending",
    pb.RUN_RUNNING: "running",
    pb.RUN_SUCCEEDED: "succeeded",
    pb.RUN_FAILED: "failed",
    pb.RUN_CANCELLED: "cancelled",
    pb.RUN_TIMED_OUT: "timed out",
    pb.RUN_LOST: "lost",
    pb.RUN_REJECTED: "rejected",
}

AGENT_WORDS: dict[int, str] = {
    pb.AGENT_STATUS_UNSPECIFIED: "unknown",
    pb.AGENT_ONLINE: "online",
    pb.AGENT_OFFLINE: "offline",
    pb.AGENT_STOPPED: "stopped",
}

KIND_WORDS: dict[int, str] = {
    pb.RUN_COMMAND: "command",
    pb.RUN_SHELL: "shell",  # `agent shell`: a terminal session (its keystrokes and screen are not kept)
}

RUN_ACTIVE = frozenset({pb.RUN_PENDING, pb.RUN_RUNNING})
RUN_FAILED = frozenset({pb.RUN_FAILED, pb.RUN_TIMED_OUT, pb.RUN_LOST})


def run_word(status: int) -> str:
    """``succeeded``, ``timed out``, … for a ``pb.RunStatus`` value."""
    return RUN_WORDS.get(status, "unknown")


def run_key(status: int) -> str:
    """The machine form (``timed_out``) used in ``--json`` output and ``--status`` flags."""
    return run_word(status).replace(" ", "_")


def agent_word(status: int) -> str:
    """``online``, ``offline``, ``stopped`` for a ``pb.AgentStatus`` value."""
    return AGENT_WORDS.get(status, "unknown")


def run_status_from_word(word: str) -> int:
    """The ``pb.RunStatus`` a user typed (``timed_out`` or ``timed out``); 0 if unknown."""
    wanted = word.strip().lower().replace("_", " ")
    for status, text in RUN_WORDS.items():
        if text == wanted and status != pb.RUN_STATUS_UNSPECIFIED:
            return status
    return 0


def kind_word(kind: int) -> str:
    """``command`` or ``shell`` for a ``pb.RunKind`` value (the ``--json`` form too)."""
    return KIND_WORDS.get(kind, "command")


def what_ran(command: str, kind: int) -> str:
    """What a listing shows for a run: its command, or ``shell: …`` for a terminal session."""
    if kind == pb.RUN_SHELL:
        return f"shell: {command}" if command.strip() else "shell (login)"
    return command
