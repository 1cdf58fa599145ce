"""The rule model: what a checked rule file becomes (conditions, sensor conditions, actions, the district)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hub.cap.model import Category, Certainty, MsgType, Severity, Status, Urgency

DEFAULT_CHANNELS = ("push", "web", "boards", "webhook", "mqtt")
"""Channel names a rule may publish to unless the hub says otherwise (``push`` is the one that notifies)."""
PUSH = "push"
PUBLIC = "public"
CHANGES = ("severity", "urgency", "certainty", "event", "onset", "expires", "area_grows", "area_shrinks",
           "headline", "description", "instruction")
"""What ``push_on_update`` may name."""
DEFAULT_PUSH_ON_UPDATE = ("severity", "certainty", "event", "onset", "expires", "area_grows")
PROVIDERS = ("dwd", "mowas", "katwarn", "biwapp", "lhp", "police", "other")


@dataclass(frozen=True, slots=True)
class CodeMatch:
    """One ``event_code`` entry: ``II=61``, ``II=40..49`` or a bare value (``BBK-EVC-038``) under any name."""

    text: str
    name: str | None
    value: str | None = None
    lo: float | None = None
    hi: float | None = None

    def matches(self, value_name: str, value: str) -> bool:
        if self.name is not None and value_name.strip().lower() != self.name.lower():
            return False
        if self.lo is not None and self.hi is not None:
            try:
                number = float(value.strip())
            except ValueError:
                return False
            return self.lo <= number <= self.hi
        return value.strip().lower() == (self.value or "").lower()


@dataclass(frozen=True, slots=True)
class AreaMatch:
    """``area = "district"``, a list of ARS, or ``{ polygon = [[lat, lon], ...] }`` (CAP order)."""

    district: bool = False
    ars: tuple[str, ...] = ()
    polygon: tuple[tuple[float, float], ...] = ()
    """(lat, lon) points, closed."""

    def describe(self) -> str:
        if self.district:
            return "district"
        if self.ars:
            return "ARS " + ", ".join(self.ars)
        return f"polygon of {len(self.polygon) - 1} points"


@dataclass(frozen=True, slots=True)
class AlertMatch:
    """Conditions on an alert. Each list is alternatives; all given conditions must hold; info conditions must
    hold together for one info (one language) of the alert."""

    sources: tuple[re.Pattern[str], ...] = ()
    providers: tuple[str, ...] = ()
    senders: tuple[re.Pattern[str], ...] = ()
    statuses: frozenset[Status] | None = None
    msg_types: frozenset[MsgType] | None = None
    codes: frozenset[str] | None = None
    events: tuple[re.Pattern[str], ...] = ()
    event_codes: tuple[CodeMatch, ...] = ()
    categories: frozenset[Category] | None = None
    min_severity: Severity | None = None
    max_severity: Severity | None = None
    min_urgency: Urgency | None = None
    min_certainty: Certainty | None = None
    languages: tuple[re.Pattern[str], ...] = ()
    area: AreaMatch | None = None
    max_outside_share: float | None = None

    @property
    def info_level(self) -> bool:
        return bool(self.events or self.event_codes or self.categories or self.min_severity or self.max_severity
                    or self.min_urgency or self.min_certainty or self.languages)


@dataclass(frozen=True, slots=True)
class SensorCondition:
    sensor: str
    kind: str
    """``above``, ``below``, ``rise``, ``fall`` or ``stale``."""
    threshold: float = 0.0
    """Level (above/below), amount within the window (rise/fall) or minutes of silence (stale)."""
    clear: float | None = None
    """Hysteresis: level (clear_below/clear_above) or amount (clear_rate) at which the condition clears."""
    for_s: float = 0.0
    window_s: float = 0.0

    def describe(self) -> str:
        if self.kind == "stale":
            return f"{self.sensor} silent for {self.threshold:g} min"
        if self.kind in ("rise", "fall"):
            verb = "rises" if self.kind == "rise" else "falls"
            return f"{self.sensor} {verb} by {self.threshold:g} within {self.window_s / 60:g} min"
        text = f"{self.sensor} {self.kind} {self.threshold:g}"
        if self.for_s:
            text += f" for {self.for_s / 60:g} min"
        return text


@dataclass(frozen=True, slots=True)
class Actions:
    publish: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()
    suppress: bool = False
    draft: str | None = None
    all_clear: str | None = None
    set_severity: Severity | None = None
    escalate: int = 0
    push_on_update: frozenset[str] = frozenset(DEFAULT_PUSH_ON_UPDATE)
    push_on_cancel: bool = True


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    file: str
    line: int | None
    index: int
    when: AlertMatch | None
    unless: AlertMatch | None
    sensor: SensorCondition | None
    then: Actions
    district: str | None = None
    """The ``[district]`` ARS of the rule's file (what ``area = "district"`` means), if the file names one."""
    description: str = ""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True, slots=True)
class District:
    name: str | None = None
    ars: str | None = None
    audiences: tuple[str, ...] = (PUBLIC,)
