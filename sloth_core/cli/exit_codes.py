"""The exit codes scripts rely on, and how a finished run maps to one (`agent run`, `agent shell`).

As ssh: the remote command's own code when it ran, 255 when it could not run
or finish; as timeout(1): 124; an interrupt or a cancel: 130.
"""

from __future__ import annotations

from typing import Any

EXIT_USAGE = 2
EXIT_TIMEOUT = 124  # as timeout(1)
EXIT_INTERRUPTED = 130
EXIT_NOT_RUN = 255  # as ssh: the remote command could not run or finish


def run_exit_code(info: Any) -> int:
    """The exit code for one run's ``pb.RunInfo`` (None: it never reported)."""
    from sloth_core.proto import sloth_pb2 as pb

    if info is None:
        return EXIT_NOT_RUN
    if info.status == pb.RUN_SUCCEEDED:
        return 0
    if info.status == pb.RUN_FAILED:
        if info.exit_code < 0:
            return EXIT_NOT_RUN  # it could not start (e.g. no such --cwd): nothing ran, as ssh's 255
        return info.exit_code if 0 < info.exit_code < 256 else 1
    if info.status == pb.RUN_TIMED_OUT:
        return EXIT_TIMEOUT
    if info.status == pb.RUN_CANCELLED:
        return EXIT_INTERRUPTED
    return EXIT_NOT_RUN
