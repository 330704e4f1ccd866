"""Help that teaches: a line per command, Examples, every flag explained, no flag that does nothing."""

from __future__ import annotations

import argparse

import pytest

from sloth_core.cli.main import main
from sloth_core.cli.parser import build_parser
from tests.cli.test_flags import _commands

TYPED_DAILY = [
    "master", "master status", "master stop", "master token", "master credentials", "agent start", "agent stop",
    "agent list", "agent get", "agent delete", "agent run", "agent shell", "runs list", "runs show", "runs cancel", "tui", "demo",
]


def test_every_command_has_a_one_line_description_and_every_flag_a_help_line() -> None:
    for path, parser in _commands(build_parser(), []):
        assert parser.description and parser.description.strip(), path
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help and "\n" not in choice.help, (path, choice.dest)
            elif action.help != argparse.SUPPRESS:
                assert action.help, (path, action.option_strings or action.dest)


@pytest.mark.parametrize("command", TYPED_DAILY)
def test_commands_people_type_have_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([*command.split(), "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out
    assert f"sloth-runner {command.split()[0]}" in out.split("examples:")[1]


def test_agent_run_help_explains_quoting_and_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["agent", "run", "--help"])
    out = capsys.readouterr().out
    assert "quoted as one argument" in out and "as words" in out and "`--`" in out
    codes = out.split("exit codes:")[1]
    for code in ("0 / remote", "1 ", "2 ", "124", "130", "255"):
        assert f"\n  {code}" in codes, code


def test_agent_shell_help_teaches_keys_audit_and_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["agent", "shell", "--help"])
    out = capsys.readouterr().out
    assert "sloth-runner agent shell web-1 -- top" in out
    assert "Ctrl-C, Ctrl-Z and Ctrl-D act there" in " ".join(out.split())
    assert "are NOT recorded" in " ".join(out.split()) and "runs cancel" in out
    codes = out.split("exit codes:")[1]
    for code in ("0 / remote", "1 ", "2 ", "128+N", "255"):
        assert f"\n  {code}" in codes, code


def test_agent_stop_has_no_json_flag_that_would_do_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["agent", "stop", "web-1", "--json"])
    assert exited.value.code == 2 and "--json" in capsys.readouterr().err


def test_every_command_line_in_the_readme_parses() -> None:
    import shlex
    from pathlib import Path

    from sloth_core.cli.main import _normalise_run

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    blocks = readme.split("```sh")[1:]
    commands = []
    for block in blocks:
        for line in block.split("```")[0].splitlines():
            if not line.startswith("sloth-runner "):
                continue
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            words = []
            for token in lexer:
                if set(token) <= set(";|&<>()"):
                    break  # the shell's part of the line: `| wc -l`, `; echo`, `> etc.tar`
                words.append(token)
            commands.append(words[1:])
    assert len(commands) > 25
    parser = build_parser()
    for words in commands:
        try:
            parser.parse_args(_normalise_run(parser, words))
        except SystemExit as exc:
            raise AssertionError(f"README: sloth-runner {' '.join(words)}") from exc


def test_a_command_built_alone_is_the_command_of_the_whole_parser() -> None:
    """The CLI builds only the typed command's parser: its help and parse must be the whole parser's."""
    from sloth_core.cli.parser import subparser_for

    whole = build_parser()
    for path, parser in _commands(whole, []):
        alone = subparser_for(build_parser([*path, "--help"]), path)
        assert alone.format_help() == parser.format_help(), path

    def parsed(parser: argparse.ArgumentParser, words: list[str]) -> dict[str, object]:
        return {k: v for k, v in vars(parser.parse_args(words)).items() if k != "handler"}

    for line in ["agent run --all --timeout 5 uptime", "master -p 0 --heartbeat-interval 2", "runs list --limit 3",
                 "master token create --once --ttl 1h", "agent list -o wide --json", "demo --agents 2"]:
        words = line.split()
        assert parsed(build_parser(words), words) == parsed(whole, words), line
