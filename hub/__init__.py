"""warnhub: a civil-protection warning and alerting hub for German districts."""

__version__ = "0.1.0"
