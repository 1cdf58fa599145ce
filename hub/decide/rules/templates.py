"""Warning templates: their format, how a file is checked, and the drafts made from them.

A template is one TOML file; its name is the file name without ``.toml``. It fixes the event, category, severity,
urgency, certainty, BBK event and instruction codes, and per language a headline, description and instruction
with ``{placeholders}``. A :class:`Draft` is a rendered template: nothing leaves the hub until a person approves it.

One format, two folders:

- ``rules/templates/``: what rules draft from, filled with sensor values or, for a draft made from an incoming
  alert, that alert's headline and event.
- ``rules/templates/compose/``: what the control-room console composes from (:func:`compose_templates`). Each has
  a ``title`` for the picker, uses only what the operator fills (``{ort} {district} {time} {until}``), names the
  template of its all-clear and carries the date of its last review, so the console can say when a text was last
  checked and warn when it is due.

Reading and checking template files, and :func:`compose_templates`, are in :mod:`hub.decide.rules.template_checks`.
"""

from __future__ import annotations

import string
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date, format_time
from babel.lists import format_list

from hub.cap import event_names
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
from hub.i18n.languages import code_of, language

SENSOR_PLACEHOLDERS = frozenset({"sensor", "value", "unit", "threshold", "clear", "since", "minutes", "rate",
                                 "window", "peak"})
"""Values a sensor condition supplies (``{value}`` is the reading that fired or cleared the condition)."""
ALERT_PLACEHOLDERS = frozenset({"headline", "event", "severity", "sender_name", "area"})
"""Values a draft made from an incoming alert supplies."""
COMMON_PLACEHOLDERS = frozenset({"district", "time"})
PLACEHOLDERS = SENSOR_PLACEHOLDERS | ALERT_PLACEHOLDERS | COMMON_PLACEHOLDERS
"""What a rule's template may use."""
COMPOSE_PLACEHOLDERS = frozenset({"ort", "district", "time", "until"})
"""What a console template may use: the places the operator picked, the district, the time of issue, the end."""

LANGUAGES_WANTED = ("de-DE", "de-DE-x-ls", "en")
"""German is required; Leichte Sprache and English are expected (their absence is a warning)."""
LANGUAGE_TAGS = ("de-DE", "de-DE-x-ls", "en", "ar", "es-ES", "fr-FR", "pl-PL", "ru-RU", "tr-TR")
"""The nine languages as a template's ``[text."<tag>"]`` and the CAP info name them, in this order: hub.i18n's
``Language.cap``, except English, whose ``en`` (older than the nine) stays as it was."""
BBK_EVENT_PROFILE = "profile:DE-BBK-EVENTCODE"

BIWAPP_CATEGORIES = ("Bombenfund", "Chemieunfall", "Feuer", "Hochwasser", "Erdrutsch/Lawine", "Großschadenslage",
                     "Unwetter", "Verkehrsunfall", "Unterrichtsausfall", "Seuchenfall")
COMPOSE_CHANNELS = ("push", "web", "boards", "webhook")
"""What ``default_channels`` may name."""
AUDIENCES = ("public", "topic")
"""``topic``: only people who subscribed to the topic (a school closure), by push, never the main warning channel."""
KINDS = {"warning": "warning", "all-clear": "all_clear", "all_clear": "all_clear"}
"""As written → as kept (``all_clear`` is the older spelling)."""
REVIEW_EVERY_DAYS = 365
MAX_DEFAULT_HOURS = 30 * 24
COMPOSE_FOLDER = Path("templates") / "compose"
"""Inside the rules folder. ``rules/templates/*.toml`` does not descend into it, so rules never draft from it."""

TEMPLATE_KEYS = ("event", "category", "severity", "urgency", "certainty", "response_type", "event_code",
                 "instruction_codes", "kind", "web", "contact", "text", "title", "biwapp_category", "reviewed",
                 "reviewed_by", "review_every_days", "all_clear", "default_hours", "default_channels", "audience")
TEXT_KEYS = ("headline", "description", "instruction")
REVIEW_KEYS = ("reviewed_by", "reviewed_on")
"""Per language: who confirmed the text as a native speaker, and when (both empty or absent: unreviewed)."""

try:
    _BERLIN: tzinfo | None = ZoneInfo("Europe/Berlin")
except ZoneInfoNotFoundError:  # no tz database: times are written in UTC and say so
    _BERLIN = None
_MONTHS_DE = ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
              "November", "Dezember")
_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December")


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


def _when(lang: str, at: datetime) -> str:
    """A time as the language writes it, in German local time (Leichte Sprache spells the month; the languages
    beyond German and English through Babel's month names)."""
    local = at.astimezone(_BERLIN or UTC)
    utc = "" if _BERLIN else " (UTC)"
    code = code_of(lang)
    if code == "de-x-ls":
        return f"{local.day}. {_MONTHS_DE[local.month - 1]} {local.year}, {local:%H:%M} Uhr{utc}"
    if code == "de":
        return f"{local:%d.%m.%Y}, {local:%H:%M} Uhr{utc}"
    if code in (None, "en"):
        return f"{local.day} {_MONTHS_EN[local.month - 1]} {local.year}, {local:%H:%M}{utc}"
    locale = language(code).babel
    return f"{format_date(local, 'long', locale=locale)}, {format_time(local, 'HH:mm', locale=locale)}{utc}"


def _places(lang: str, names: Sequence[str]) -> str:
    """``Hitzacker (Elbe), Dannenberg (Elbe) und Gartow``, joined as the language joins a list."""
    if len(names) < 2:
        return "".join(names)
    code = code_of(lang)
    if code in (None, "de", "de-x-ls", "en"):
        word = "and" if code in (None, "en") else "und"
        return f"{', '.join(names[:-1])} {word} {names[-1]}"
    return format_list(list(names), locale=language(code).babel)


def event_in(lang: str, event: str, event_code: str | None, biwapp_category: str | None = None) -> str:
    """The event's name in ``lang`` from the codes table (:mod:`hub.cap.event_names`): the event itself as a
    BIWAPP category, else the template's BIWAPP category, else its BBK event code. German keeps the template's own
    word; where the table has no name, the German word stays (nothing is invented)."""
    if code_of(lang) == "de":
        return event
    for key in (event, biwapp_category, event_code):
        name = event_names.lookup(key, lang) if key else None
        if name is not None:
            return name.text
    return event


def day(now: date) -> date:
    if isinstance(now, datetime):
        return now.astimezone(_BERLIN or UTC).date() if now.tzinfo else now.date()
    return now


@dataclass(frozen=True, slots=True)
class Text:
    headline: str
    description: str
    instruction: str = ""
    reviewed_by: str = ""
    """Who confirmed this language's text as a native speaker ("": nobody yet)."""
    reviewed_on: date | None = None

    @property
    def reviewed(self) -> bool:
        return bool(self.reviewed_by.strip()) and self.reviewed_on is not None

    def review(self) -> dict[str, Any]:
        """The review state as JSON (the console shows it per language)."""
        return {"reviewed": self.reviewed, "reviewed_by": self.reviewed_by or None,
                "reviewed_on": self.reviewed_on.isoformat() if self.reviewed_on else None}


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
    """Placeholders its texts use, other than ``{district}`` and ``{time}`` (always supplied)."""
    title: str | None = None
    """German name in the console's picker."""
    biwapp_category: str | None = None
    """One of :data:`BIWAPP_CATEGORIES`."""
    reviewed: date | None = None
    """When a person last checked the texts (None: never)."""
    reviewed_by: str | None = None
    review_every_days: int = REVIEW_EVERY_DAYS
    all_clear: str | None = None
    """The template (same folder) of the all-clear that ends a warning made from this one."""
    default_hours: float | None = None
    """How long a warning made from it is valid unless the operator says otherwise."""
    default_channels: tuple[str, ...] = ()
    audience: str = "public"
    """``public`` or ``topic`` (only the topic's subscribers)."""

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.texts)

    def review_due(self) -> date | None:
        """The day the next review falls due (None: never reviewed, so due now)."""
        return None if self.reviewed is None else self.reviewed + timedelta(days=self.review_every_days)

    def days_since_review(self, now: date) -> int | None:
        """Whole days from the last review to ``now`` (a date, or a datetime taken in German local time)."""
        return None if self.reviewed is None else (day(now) - self.reviewed).days

    def stale(self, now: date) -> bool:
        """Never reviewed, or the last review is more than ``review_every_days`` before ``now``."""
        days = self.days_since_review(now)
        return days is None or days > self.review_every_days

    def render(self, values: Mapping[str, object], *, rule: str = "") -> Draft:
        texts = {lang: _render_text(t, values) for lang, t in self.texts.items()}
        return self._draft(texts, values, rule=rule)

    def compose(self, *, ort: Sequence[str], district: str, time: datetime, until: datetime | None = None,
                rule: str = "") -> Draft:
        """The draft for what the operator chose in the console, each language filled in its own words.

        ``ort``: the places picked (none: the whole district); ``time``: the time of issue; ``until``: the end
        (default ``time`` + ``default_hours``; the draft's ``expires``). Times must be timezone-aware; the texts
        show them in German local time."""
        if time.tzinfo is None or (until is not None and until.tzinfo is None):
            raise ValueError("time and until must be timezone-aware")
        if until is None and self.default_hours is not None:
            until = time + timedelta(hours=self.default_hours)
        if until is not None and until <= time:
            raise ValueError(f"until ({until.isoformat()}) must lie after time ({time.isoformat()})")
        if until is None and "until" in self.uses:
            raise ValueError(f"template {self.name!r} says until when; give until (it has no default_hours)")
        names = [p.strip() for p in ort if p.strip()] or [district]
        texts = {}
        for lang, t in self.texts.items():
            values = {"ort": _places(lang, names), "district": district, "time": _when(lang, time),
                      "until": _when(lang, until) if until else None}
            texts[lang] = _render_text(t, values)
        german = {"ort": _places("de-DE", names), "district": district, "time": _when("de-DE", time),
                  "until": _when("de-DE", until) if until else None}
        return replace(self._draft(texts, german, rule=rule), expires=until)

    def _draft(self, texts: Mapping[str, Text], values: Mapping[str, object], *, rule: str) -> Draft:
        return Draft(template=self.name, kind=self.kind, rule=rule, event=self.event, categories=self.categories,
                     severity=self.severity, urgency=self.urgency, certainty=self.certainty,
                     response_types=self.response_types, event_code=self.event_code,
                     instruction_codes=self.instruction_codes, texts=texts, web=self.web, contact=self.contact,
                     values={k: v for k, v in values.items() if v is not None}, audience=self.audience,
                     channels=self.default_channels, all_clear=self.all_clear,
                     biwapp_category=self.biwapp_category)

    def as_dict(self, now: date) -> dict[str, Any]:
        """What the console's picker shows, with the review state as of ``now``."""
        due = self.review_due()
        return {"name": self.name, "title": self.title, "kind": self.kind, "biwapp_category": self.biwapp_category,
                "event": self.event, "categories": [c.value for c in self.categories],
                "severity": self.severity.value, "urgency": self.urgency.value, "certainty": self.certainty.value,
                "response_types": [r.value for r in self.response_types], "event_code": self.event_code,
                "instruction_codes": list(self.instruction_codes), "languages": list(self.languages),
                "texts": {lang: {"headline": t.headline, "description": t.description, "instruction": t.instruction}
                          for lang, t in self.texts.items()},
                "review": {lang: t.review() for lang, t in self.texts.items()},
                "placeholders": sorted({name for t in self.texts.values()
                                        for text in (t.headline, t.description, t.instruction)
                                        for name in placeholders(text)}),
                "audience": self.audience, "default_channels": list(self.default_channels),
                "default_hours": self.default_hours, "all_clear": self.all_clear,
                "reviewed": self.reviewed.isoformat() if self.reviewed else None, "reviewed_by": self.reviewed_by,
                "review_every_days": self.review_every_days, "review_due": due.isoformat() if due else None,
                "days_since_review": self.days_since_review(now), "stale": self.stale(now)}


def _render_text(t: Text, values: Mapping[str, object]) -> Text:
    return replace(t, headline=_fill(t.headline, values), description=_fill(t.description, values),
                   instruction=_fill(t.instruction, values))


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
    expires: datetime | None = None
    """The end the operator chose (console drafts)."""
    audience: str = "public"
    channels: tuple[str, ...] = ()
    """The template's default channels (empty: the rule's or the operator's choice)."""
    all_clear: str | None = None
    """The template that ends a warning made from this draft."""
    biwapp_category: str | None = None

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
        expires = self.expires.replace(microsecond=0) if self.expires else None
        infos = tuple(Info(language=lang, categories=self.categories,
                           event=event_in(lang, self.event, self.event_code, self.biwapp_category),
                           response_types=response,
                           urgency=self.urgency, severity=self.severity, certainty=self.certainty,
                           event_codes=tuple(codes), expires=expires, headline=t.headline,
                           description=t.description, instruction=t.instruction or None, web=self.web,
                           contact=self.contact, parameters=tuple(params), areas=(area,))
                      for lang, t in self.texts.items())
        return Alert(identifier=identifier or f"warnhub-{uuid.uuid4()}", sender=sender, sent=sent,
                     status=Status.ACTUAL, msg_type=MsgType.CANCEL if self.kind == "all_clear" else MsgType.ALERT,
                     scope=Scope.PUBLIC, references=references, infos=infos)


def review_notice(template: Template) -> str:
    """One line for an operator: the file, when it was last reviewed and since when a review is due."""
    due = template.review_due()
    when = (f"geprüft / reviewed {template.reviewed.isoformat()}, fällig seit / due since {due.isoformat()}"
            if template.reviewed and due else "nie geprüft / never reviewed")
    return f"Vorlage zur Prüfung fällig / template due for review: {template.file} ({when})"


def due_for_review(templates: Sequence[Template], now: date) -> list[Template]:
    """The templates whose review is due as of ``now`` (a date, or a datetime taken in German local time), by
    file. Staleness is for people to act on (``warnhub check``, the console), never an error."""
    return sorted((t for t in templates if t.stale(now)), key=lambda t: t.file)
