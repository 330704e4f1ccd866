"""Where sloth-runner keeps its files.

Everything hangs off one home: ``$SLOTH_RUNNER_HOME`` when set (tests and
throwaway demos), else the platformdirs user dirs. A master or agent
``--data-dir`` overrides its own data directory only.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "sloth-runner"
HOME_ENV = "SLOTH_RUNNER_HOME"


def _home() -> Path | None:
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser() if value else None


def data_root() -> Path:
    home = _home()
    if home is not None:
        return home
    import platformdirs

    return Path(platformdirs.user_data_dir(APP))


def state_root() -> Path:
    home = _home()
    if home is not None:
        return home / "run"
    import platformdirs

    return Path(platformdirs.user_state_dir(APP))


def log_root() -> Path:
    home = _home()
    if home is not None:
        return home / "log"
    import platformdirs

    return Path(platformdirs.user_log_dir(APP))


def master_data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    return Path(override).expanduser() if override else data_root() / "master"


def agent_data_dir(name: str, override: str | os.PathLike[str] | None = None) -> Path:
    return Path(override).expanduser() if override else data_root() / "agents" / name


def console_data_dir() -> Path:
    return data_root() / "console"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) if needed; keys and tokens live below it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def master_process_name(data_dir: Path) -> str:
    """The stem of the pid and log files of the master that uses ``data_dir``.

    ``master`` for the default data dir; ``master-<hash of the dir>`` for any
    other, so two masters with different data dirs on one machine each keep
    their own pid file and log (``master status --data-dir DIR`` prints them).
    """
    if _same_dir(data_dir, master_data_dir()):
        return "master"
    import hashlib

    digest = hashlib.sha256(str(data_dir.expanduser().resolve()).encode()).hexdigest()[:8]
    return f"master-{digest}"


def _same_dir(a: Path, b: Path) -> bool:
    return a.expanduser().resolve() == b.expanduser().resolve()
