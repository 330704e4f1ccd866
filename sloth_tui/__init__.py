"""The sloth-runner operator console (``sloth-runner tui``).

Importing this package imports nothing heavy; the CLI reaches the console
through :func:`sloth_tui.app.main`, imported lazily.
"""
