"""Channels: everything that takes a warning out of the hub (GUIDE.md section 5; the contract: :mod:`hub.ports`).

Each channel kind is registered as an entry point in pyproject.toml (``warnhub.channels``): a factory that builds its
channels from the config (:data:`hub.ports.ChannelFactory`); the core finds it through :mod:`hub.registry`.
"""
