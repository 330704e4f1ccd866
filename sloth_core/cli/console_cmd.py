"""`sloth-runner tui`: the only command that imports Textual."""

from __future__ import annotations

import argparse


def tui(args: argparse.Namespace) -> int:
    from sloth_tui.app import main

    return main(args.master, args.credentials, args.insecure)
