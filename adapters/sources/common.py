"""What adapters share: a converted alert with the adapter's flags."""

from __future__ import annotations

from dataclasses import dataclass

from hub.cap.model import Alert


@dataclass(frozen=True, slots=True)
class Converted:
    """An alert made from a non-CAP payload (or a CAP document the adapter had to change), with the adapter's
    notes: what it repaired, dropped or could not tell. Notes travel into the stored version's warnings."""

    alert: Alert
    notes: tuple[str, ...] = ()
