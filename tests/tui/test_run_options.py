"""The prompt's ``--env`` / ``--cwd`` syntax: options first, the command kept exactly as typed."""

from __future__ import annotations

import pytest

from sloth_core.errors import UsageError
from sloth_tui.model.run_options import RunOptions, split_run_options


@pytest.mark.parametrize(
    ("line", "options", "command"),
    [
        ("uptime", RunOptions(), "uptime"),
        ("--cwd /srv/app ./deploy.sh --env X=1", RunOptions(cwd="/srv/app"), "./deploy.sh --env X=1"),
        ("--env A=1 --env=B=2 --cwd=/tmp ls -la", RunOptions({"A": "1", "B": "2"}, "/tmp"), "ls -la"),
        ("--env 'G=hello world' echo \"$G\"", RunOptions({"G": "hello world"}), 'echo "$G"'),
        ("--cwd /srv -- --env is a command here", RunOptions(cwd="/srv"), "--env is a command here"),
        ("  echo '--cwd'  ", RunOptions(), "echo '--cwd'"),
        ("--stdin deploy.sh sh -s", RunOptions(stdin="deploy.sh"), "sh -s"),
        ("--stdin='my file.tar' --cwd /srv tar x", RunOptions(cwd="/srv", stdin="my file.tar"), "tar x"),
    ],
)
def test_options_before_the_command(line: str, options: RunOptions, command: str) -> None:
    assert split_run_options(line) == (options, command)


@pytest.mark.parametrize(("line", "said"), [("--env", "needs a value"), ("--env NOEQ ls", "KEY=VALUE"),
                                            ("--cwd '/srv ls", "unclosed"), ("--stdin", "FILE")])
def test_malformed_options_say_why(line: str, said: str) -> None:
    with pytest.raises(UsageError, match=said):
        split_run_options(line)


def test_described_for_the_confirmation() -> None:
    assert RunOptions({"A": "1"}, "/srv").describe() == "in /srv with A=1"
    assert RunOptions({"A": "1"}, "/srv", "x.sh").describe() == "in /srv with A=1, stdin from x.sh"
    assert RunOptions(stdin="x.sh").describe() == "stdin from x.sh"
