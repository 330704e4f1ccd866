"""Entry point: parse, dispatch, and turn every SlothError into one line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from sloth_core.cli.parser import build_parser, subparser_for
from sloth_core.errors import SlothError, UsageError


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    try:
        words = _normalise_run(parser, args_list)
    except UsageError as exc:
        return _usage_error(parser, args_list, str(exc))
    args, extra = parser.parse_known_args(words)
    if extra:
        subparser_for(parser, args_list).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    args.argv = args_list
    # grpc's own log lines would break the console screen and clutter CLI
    # output; it reads this only if set before the first `import grpc`.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        return int(args.handler(args) or 0)
    except UsageError as exc:
        return _usage_error(parser, args_list, str(exc))
    except SlothError as exc:
        from sloth_core.cli.render import print_error

        print_error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _normalise_run(parser: argparse.ArgumentParser, words: list[str]) -> list[str]:
    """`agent run`'s words rearranged ssh-style (see :mod:`sloth_core.cli.run_argv`)."""
    if words[:2] != ["agent", "run"] or any(w in ("-h", "--help") for w in words[2:3]):
        return words
    from sloth_core.cli.run_argv import normalise

    return [*words[:2], *normalise(subparser_for(parser, words[:2]), words[2:])]


def _usage_error(parser: argparse.ArgumentParser, words: list[str], message: str) -> int:
    """As argparse reports its own errors: the typed subcommand's usage, then one line."""
    subparser_for(parser, words).print_usage(sys.stderr)
    from sloth_core.cli.render import print_error

    print_error(message)
    return 2


def entry() -> None:
    """The console script: run, flush, and leave without interpreter teardown.

    Tearing down grpc's threads at exit costs ~30 ms, a fifth of a short
    command's budget; everything that matters (output, logs, the database)
    is flushed or closed before this point.
    """
    from sloth_core.footprint import keep_openssl_out

    keep_openssl_out()
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        code = code or 141
    import logging

    logging.shutdown()
    os._exit(code)
