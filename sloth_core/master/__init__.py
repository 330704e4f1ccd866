"""The master: agent registry, dispatch of runs, run history, event feed."""
