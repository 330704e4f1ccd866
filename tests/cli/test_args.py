"""`agent run` takes its words as ssh and `kubectl exec` do; usage errors show the subcommand's usage."""

from __future__ import annotations

import argparse

import pytest

from sloth_core.cli.main import _normalise_run, main
from sloth_core.cli.parser import build_parser


def parse_run(*words: str) -> argparse.Namespace:
    parser = build_parser()
    return parser.parse_args(_normalise_run(parser, ["agent", "run", *words]))


@pytest.mark.parametrize(
    ("words", "targets", "command"),
    [
        (["web-1", "uname -a"], "web-1", "uname -a"),
        (["web-1", "uname", "-a"], "web-1", "uname -a"),  # words joined with spaces, as ssh joins them
        (["web-1", "echo", "hello", "world"], "web-1", "echo hello world"),
        (["web-1", "--", "ls", "-la"], "web-1", "ls -la"),  # `--` ends the options
        (["--", "web-1", "ls", "-la"], "web-1", "ls -la"),
        (["web-1", "--timeout", "2", "sleep 1"], "web-1", "sleep 1"),  # options right after the target
        (["--timeout", "2", "web-1", "sleep", "1"], "web-1", "sleep 1"),  # or before it
        (["web-1", "tar c /etc", "--raw"], "web-1", "tar c /etc"),  # the README's compatible form
        (["web-1", "ls", "--raw", "-l"], "web-1", "ls --raw -l"),  # not all options of ours: the command's
        (["web-1", "grep", "--timeout", "x", "f"], "web-1", "grep --timeout x f"),
        (["--all", "uname", "-a"], "", "uname -a"),
        (["--label", "role=web", "df", "-h", "/"], "", "df -h /"),
        (["'uptime'", "--all"], "", "'uptime'"),
    ],
)
def test_command_words_like_ssh(words: list[str], targets: str, command: str) -> None:
    args = parse_run(*words)
    assert (args.targets, args.command) == (targets, command)


def test_options_before_or_right_after_the_target_take_effect() -> None:
    args = parse_run("web-1", "--timeout", "2.5", "--parallel", "3", "-q", "echo", "hi")
    assert (args.timeout, args.parallel, args.summary, args.command) == (2.5, 3, False, "echo hi")
    args = parse_run("web-1", "echo hi", "--json", "--timeout", "5")
    assert args.json and args.timeout == 5 and args.command == "echo hi"


@pytest.mark.parametrize(
    ("argv", "usage", "message"),
    [
        (["agent", "run", "web-1", "--bogus", "x"], "usage: sloth-runner agent run", "unknown option '--bogus'"),
        (["agent", "run", "web-1"], "usage: sloth-runner agent run", "missing COMMAND"),
        (["agent", "run", "web-1", "--timeout"], "usage: sloth-runner agent run", "--timeout"),
        (["runs", "list", "--bogus"], "usage: sloth-runner runs list", "unrecognized arguments: --bogus"),
        (["agent", "list", "extra"], "usage: sloth-runner agent list", "unrecognized arguments: extra"),
    ],
)
def test_usage_errors_show_the_usage_of_the_subcommand_typed(
    argv: list[str], usage: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(usage), err
    assert message in err and "Traceback" not in err
