"""Warning templates (rules/templates/*.toml) and the drafts made from them.

A template is one file; its name is the file name without ``.toml``. It fixes the event, category, severity,
urgency, certainty, BBK event and instruction codes, and per language a headline, description and instruction
with ``{placeholders}`` for sensor values (or, for drafts made from an incoming alert, that alert's headline and
event). A :class:`Draft` is a rendered template: nothing leaves the hub until a person approves it.
"""

from __future__ import annotations

import string
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hub.cap.model import (
    Alert,
    Area,
    Category,
    Certainty,
    Info,
    MsgType,
    Reference,
    ResponseType,
    Scope,
    Severity,
    Status,
    Urgency,
    Value,
)

SENSOR_PLACEHOLDERS = frozenset({"sensor", "value", "unit", "threshold", "clear", "since", "minutes", "rate",
                                 "window", "peak"})
"""Values a sensor condition supplies (``{value}`` is the reading that fired or cleared the condition)."""
ALERT_PLACEHOLDERS = frozenset({"headline", "event", "severity", "sender_name", "area"})
"""Values a draft made from an incoming alert supplies."""
COMMON_PLACEHOLDERS = frozenset({"district", "time"})
PLACEHOLDERS = SENSOR_PLACEHOLDERS | ALERT_PLACEHOLDERS | COMMON_PLACEHOLDERS

LANGUAGES_WANTED = ("de-DE", "de-DE-x-ls", "en")
"""German is required; Leichte Sprache and English are expected (their absence is a warning)."""
BBK_EVENT_PROFILE = "profile:DE-BBK-EVENTCODE"


def placeholders(text: str) -> list[str]:
    """The ``{names}`` a text uses (raises ValueError for unbalanced braces)."""
    names = []
    for _, name, _, _ in string.Formatter().parse(text):
        if name is not None:
            names.append(name)
    return names


class _Formatter(string.Formatter):
    """Missing values show as ``?``; a format spec that does not fit the value (``{value:.0f}`` of "?") is dropped."""

    def get_value(self, key: int | str, args: object, kwargs: Mapping[str, object]) -> object:
        value = kwargs.get(key) if isinstance(key, str) else None
        return "?" if value is None else value

    def format_field(self, value: object, format_spec: str) -> str:
        try:
            return format(value, format_spec)
        except (ValueError, TypeError):
            return str(value)


_FORMATTER = _Formatter()


def _fill(text: str, values: Mapping[str, object]) -> str:
    return _FORMATTER.vformat(text, (), values) if text else text


@dataclass(frozen=True, slots=True)
class Text:
    headline: str
    description: str
    instruction: str = ""


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    file: str
    event: str
    categories: tuple[Category, ...]
    severity: Severity
    urgency: Urgency
    certainty: Certainty
    texts: Mapping[str, Text]
    """Per language (``de-DE``, ``de-DE-x-ls``, ``en``...)."""
    kind: str = "warning"
    """``warning`` or ``all_clear`` (an all-clear is drafted as a CAP Cancel with responseType AllClear)."""
    response_types: tuple[ResponseType, ...] = ()
    event_code: str | None = None
    """BBK-EVC-nnn."""
    instruction_codes: tuple[str, ...] = ()
    """BBK-ISC-nnn, in the order they are to be shown."""
    web: str | None = None
    contact: str | None = None
    uses: frozenset[str] = frozenset()
    """Placeholders its texts use."""

    def render(self, values: Mapping[str, object], *, rule: str = "") -> Draft:
        texts = {lang: Text(_fill(t.headline, values), _fill(t.description, values), _fill(t.instruction, values))
                 for lang, t in self.texts.items()}
        return Draft(template=self.name, kind=self.kind, rule=rule, event=self.event, categories=self.categories,
                     severity=self.severity, urgency=self.urgency, certainty=self.certainty,
                     response_types=self.response_types, event_code=self.event_code,
                     instruction_codes=self.instruction_codes, texts=texts, web=self.web, contact=self.contact,
                     values={k: v for k, v in values.items() if v is not None})


@dataclass(frozen=True, slots=True)
class Draft:
    """A rendered template, waiting for a person to approve it. :meth:`to_alert` makes the CAP message."""

    template: str
    kind: str
    rule: str
    event: str
    categories: tuple[Category, ...]
    severity: Severity
    urgency: Urgency
    certainty: Certainty
    response_types: tuple[ResponseType, ...]
    event_code: str | None
    instruction_codes: tuple[str, ...]
    texts: Mapping[str, Text]
    web: str | None = None
    contact: str | None = None
    values: Mapping[str, object] = field(default_factory=dict)

    def headline(self, lang: str = "de-DE") -> str:
        text = self.texts.get(lang) or next(iter(self.texts.values()))
        return text.headline

    def to_alert(self, *, sender: str, district_name: str, district_ars: str, sent: datetime | None = None,
                 identifier: str | None = None, references: tuple[Reference, ...] = ()) -> Alert:
        """The CAP alert this draft becomes on approval (status Actual; an all-clear is a Cancel and needs the
        ``references`` of the warning it ends, which only the approval knows)."""
        sent = (sent or datetime.now(UTC)).replace(microsecond=0)
        codes = [Value(value_name=BBK_EVENT_PROFILE, value=self.event_code)] if self.event_code else []
        params = [Value(value_name="instructionCode", value=" ".join(self.instruction_codes))] \
            if self.instruction_codes else []
        area = Area(area_desc=district_name, geocodes=(Value(value_name="ARS", value=district_ars),))
        response = self.response_types or ((ResponseType.ALL_CLEAR,) if self.kind == "all_clear" else ())
        infos = tuple(Info(language=lang, categories=self.categories, event=self.event, response_types=response,
                           urgency=self.urgency, severity=self.severity, certainty=self.certainty,
                           event_codes=tuple(codes), headline=t.headline, description=t.description,
                           instruction=t.instruction or None, web=self.web, contact=self.contact,
                           parameters=tuple(params), areas=(area,))
                      for lang, t in self.texts.items())
        return Alert(identifier=identifier or f"warnhub-{uuid.uuid4()}", sender=sender, sent=sent,
                     status=Status.ACTUAL, msg_type=MsgType.CANCEL if self.kind == "all_clear" else MsgType.ALERT,
                     scope=Scope.PUBLIC, references=references, infos=infos)
