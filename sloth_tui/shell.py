"""``s``: a terminal session on the selected agent, in the console's own terminal.

The console suspends itself (Textual's ``App.suspend``: the terminal back as
it was before the console started), runs `sloth-runner agent shell NAME` on
the same master with the same credentials, and when the session ends
resumes on the screen it left, selection and panes as they were. The shell
is the CLI's, so there is one implementation of a terminal session: raw
mode, window size, keys, and the exit code that says how it ended.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass

from sloth_core.cli.exit_codes import EXIT_NOT_RUN


@dataclass(frozen=True)
class ShellResult:
    exit_code: int
    stderr: str
    """What the CLI said on stderr (why it could not start or was lost); the screen went to the terminal."""


@dataclass(frozen=True)
class ShellLauncher:
    """How to reach the console's master from a child `sloth-runner agent shell`."""

    master: str
    credentials: str | None = None
    insecure: bool = False
    master_data_dir: str | None = None
    program: tuple[str, ...] = (sys.executable, "-m", "sloth_core.cli")

    def argv(self, agent: str, command: str = "") -> list[str]:
        argv = [*self.program, "agent", "shell", "--master", self.master]
        if self.credentials:
            argv += ["--credentials", self.credentials]
        if self.master_data_dir:
            argv += ["--master-data-dir", self.master_data_dir]
        if self.insecure:
            argv.append("--insecure")
        argv.append(agent)
        if command.strip():
            argv += ["--", *_words(command)]
        return argv

    def run(self, agent: str, command: str = "") -> ShellResult:
        """Run the session on this terminal until it ends (the caller has suspended the console)."""
        # Until the session turns the terminal raw (while it connects) a
        # Ctrl-C reaches the whole foreground group: it is the shell's to
        # act on, not a KeyboardInterrupt for the console. A handler, not
        # SIG_IGN: exec resets handlers, but would pass SIG_IGN on.
        try:
            previous = signal.signal(signal.SIGINT, _nothing)
        except ValueError:  # not the main thread: nothing to shield
            previous = _NOT_SHIELDED
        try:
            # stdin and stdout are the terminal's; stderr only carries the
            # CLI's own messages, which the console shows once it is back.
            done = subprocess.run(self.argv(agent, command), stderr=subprocess.PIPE, check=False)
        except OSError as exc:
            return ShellResult(EXIT_NOT_RUN, f"cannot start {self.program[0]}: {exc.strerror or exc}")
        finally:
            if previous is not _NOT_SHIELDED:
                signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
        return ShellResult(done.returncode, done.stderr.decode("utf-8", errors="replace"))


_NOT_SHIELDED = object()


def _nothing(*_: object) -> None:
    """A handler that ignores its signal in this process only (unlike SIG_IGN, exec does not pass it on)."""


def _words(command: str) -> list[str]:
    """A recorded session's command as `-- CMD ARGS` words (the CLI joins them back with shlex)."""
    try:
        return shlex.split(command)
    except ValueError:  # not shell-quoted as our CLI records it: let a shell read it as it is
        return ["sh", "-c", command]
