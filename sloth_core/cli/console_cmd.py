"""`sloth-runner tui`: the only command that imports Textual."""

from __future__ import annotations

import argparse
import sys


def tui(args: argparse.Namespace) -> int:
    # Without a terminal the console can neither read keys nor draw, and
    # Textual would spin instead of failing: say so, as a usage error.
    for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout)):
        if stream is None or not stream.isatty():
            from sloth_core.cli.render import print_error

            print_error(
                f"the console needs a terminal, and {name} is not one; "
                "for scripts use `sloth-runner agent list` and `sloth-runner agent run`"
            )
            return 2
    from sloth_tui.app import main

    return main(args.master, args.credentials, args.insecure, args.master_data_dir)
