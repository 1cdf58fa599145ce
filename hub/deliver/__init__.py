"""Delivery: the outbox rows (outbox.py), the channel workers that send them (workers.py), the per-host circuit
breaker (breaker.py), and the channels set up from the config (setup.py)."""
