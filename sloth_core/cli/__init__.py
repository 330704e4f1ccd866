"""The ``sloth-runner`` command line. Heavy imports happen inside commands."""
