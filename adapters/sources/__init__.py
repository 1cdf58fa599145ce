"""Sources: everything that brings warnings or readings into the hub (the contract: :mod:`hub.ports`).

Each source is registered by its config ``type`` as an entry point in pyproject.toml (``warnhub.sources``); the core
finds it through :mod:`hub.registry`. Every entry is documented in README.md (a test checks).
"""
