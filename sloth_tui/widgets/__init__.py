"""The console's widgets. None of them talks to the master."""
