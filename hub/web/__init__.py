"""The hub's aiohttp application: status page, JSON API, /healthz and /metrics."""
