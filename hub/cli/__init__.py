"""The ``warnhub`` command line (entry point ``hub.cli.main:main``): one module per group of commands."""
