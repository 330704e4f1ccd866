"""No flag ends in a traceback: every numeric flag is typed and checked by the parser."""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Iterator

import pytest

from sloth_core.cli import flags
from sloth_core.cli.main import main
from sloth_core.cli.parser import build_parser
from sloth_core.master.config import MasterConfig
from tests.fleet import EXE

NUMERIC_TYPES = {flags.port, flags.count, flags.count_or_zero, flags.size, flags.duration, flags.duration_or_zero}
# Values no numeric flag of that type may accept.
BAD = {
    flags.port: ["99999", "-1", "65536", "http", "1.5"],
    flags.count: ["0", "-1", "many", "1.5"],
    flags.count_or_zero: ["-1", "many", "1.5"],
    flags.size: ["0", "-1", "big"],
    flags.duration: ["0", "-1", "inf", "nan", "1e999", "soon"],
    flags.duration_or_zero: ["-1", "inf", "nan", "soon"],
}


def _commands(parser: argparse.ArgumentParser, path: list[str]) -> Iterator[tuple[list[str], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, [*path, name])


def numeric_flags() -> list[tuple[list[str], str, object]]:
    found = []
    for path, parser in _commands(build_parser(), []):
        for action in parser._actions:
            if action.option_strings and action.type in NUMERIC_TYPES:
                found.append((path, action.option_strings[-1], action.type))
    return found


FLAGS = numeric_flags()


def test_every_flag_that_takes_a_number_is_typed() -> None:
    """A flag whose default or metavar is a number must have one of the checked types."""
    for path, parser in _commands(build_parser(), []):
        for action in parser._actions:
            numeric = isinstance(action.default, (int, float)) and not isinstance(action.default, bool)
            if action.option_strings and action.nargs != 0 and (numeric or action.metavar in ("N", "PORT", "SECONDS")):
                assert action.type in NUMERIC_TYPES, (path, action.option_strings)
    names = {(" ".join(p), f) for p, f, _ in FLAGS}
    for expected in [("master", "--port"), ("master", "--join-port"), ("master", "--heartbeat-interval"),
                     ("master", "--output-cap"), ("master", "--runs-per-agent"), ("master token create", "--ttl"),
                     ("agent start", "--port"), ("agent run", "--timeout"), ("agent run", "--parallel"),
                     ("runs list", "--limit"), ("demo", "--agents"), ("demo", "--port")]:
        assert expected in names


@pytest.mark.parametrize(
    ("path", "flag", "value"),
    [(path, flag, value) for path, flag, kind in FLAGS for value in BAD[kind]],  # type: ignore[index]
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_a_bad_number_is_one_line_naming_the_flag(
    path: list[str], flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*path, f"{flag}={value}"]
    if path[:2] == ["agent", "run"]:
        argv += ["web-1", "true"]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("error: argument "), err
    assert flag in errors[0].split(": ")[1] and repr(value) in errors[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [["master", "--join-port", "99999"], ["master", "token", "create", "--ttl", "0"],
     ["runs", "list", "--limit", "-1"], ["demo", "--agents", "0"]],
)
def test_the_reported_cases_exit_2_without_a_traceback(argv: list[str], tmp_path: object) -> None:
    result = subprocess.run([*EXE, *argv], capture_output=True, timeout=60, env={"SLOTH_RUNNER_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert "Traceback" not in err and f"argument {argv[-2]}" in err.splitlines()[-1]


def test_zero_keeps_meaning_a_free_port_and_no_limit() -> None:
    args = build_parser().parse_args(["master", "-p", "0", "--join-port", "0"])
    assert (args.port, args.join_port) == (0, 0)
    assert flags.duration_or_zero("0") == 0 and flags.count_or_zero("0") == 0
    assert flags.duration("90s") == 90 and flags.duration("250ms") == 0.25 and flags.duration("2h") == 7200
    assert flags.size("64K") == 65536 and flags.size("1M") == 1024 * 1024


def test_the_parser_defaults_are_the_master_config_defaults() -> None:
    args = build_parser().parse_args(["master"])
    defaults = MasterConfig(data_dir=None)  # type: ignore[arg-type]
    assert args.port == defaults.port and args.bind == defaults.bind and args.join_port == defaults.join_port
    assert args.heartbeat_interval == defaults.heartbeat_interval_s
    assert args.output_cap == defaults.output_cap and args.runs_per_agent == defaults.runs_per_agent
