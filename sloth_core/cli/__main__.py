from sloth_core.cli.main import entry

entry()
