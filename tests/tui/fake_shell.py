"""A stand-in for `sloth-runner` that the console's ``s`` runs in tests: it records its argv, says what it is told on stderr, exits as told.

    python tests/tui/fake_shell.py ARGS...      with FAKE_SHELL_LOG, FAKE_SHELL_SAYS, FAKE_SHELL_EXIT in the environment
"""

from __future__ import annotations

import json
import os
import sys

if __name__ == "__main__":
    with open(os.environ["FAKE_SHELL_LOG"], "a") as log:
        log.write(json.dumps({"argv": sys.argv[1:], "stdin_is_terminal": os.isatty(0)}) + "\n")
    sys.stderr.write(os.environ.get("FAKE_SHELL_SAYS", ""))
    raise SystemExit(int(os.environ.get("FAKE_SHELL_EXIT", "0")))
