"""`sloth-runner tui` without a terminal: a clear message and exit 2, not a console spinning on nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tui.standin_master import ROOT

pytestmark = pytest.mark.timeout(30)


def test_without_a_terminal_the_console_says_so_and_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLOTH_RUNNER_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "sloth_core.cli", "tui", "--master", "127.0.0.1:9"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20, env=env,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: the console needs a terminal, and stdin is not one")
    assert len(result.stderr.splitlines()) == 1
    assert result.stdout == ""
