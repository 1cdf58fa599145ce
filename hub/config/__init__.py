"""The hub's configuration: the settings (sections.py) and reading and checking config.toml (load.py)."""
