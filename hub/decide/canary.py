"""The built-in decision for the hub's own canaries (issue 17 section 2), taken before the operators' rules.

A canary round (:mod:`hub.publish.canary_watch`) is a CAP alert of origin :data:`ORIGIN` that the hub ingests
itself. The router never hands it to the rules: it decides :data:`DECISION` here, so no rule file can suppress,
draft or publish it, and the publishing pipeline queues its probes to the canary endpoints and nothing else
(:func:`hub.publish.canary.queue_due`). An alert of any other origin is decided by the rules, whatever it says.
"""

from __future__ import annotations

from hub.cap.model import Alert
from hub.decide.rules.engine import Decision

ORIGIN = "canary"
"""The intake origin of the hub's canaries; no configured source can take this name (hub.config.load)."""
DECISION = "canary"
"""The decision stored for a canary: its probes are queued to the canary endpoints, no publication is made."""
WHY = ("Kontrollmeldung der Leitstelle: nur an die Kontrollempfänger, nie veröffentlicht / canary of the control "
       "room: to the canary endpoints only, never published")


def is_canary(origin: str) -> bool:
    return origin == ORIGIN


def decision(alert: Alert) -> Decision:
    """The built-in decision: no rule, no channel of a warning, no push to anyone (the probes name their own)."""
    return Decision(DECISION, (), severity=alert.severity, why=WHY)
