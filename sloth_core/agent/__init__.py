"""The agent: registers with a master, heartbeats, executes commands."""
