"""sloth-runner: a distributed command runner (master, agents, CLI)."""

__version__ = "0.1.0"
