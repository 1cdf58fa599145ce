"""The CAP message of a version: templates as content, the values filled into them, CAP areas, exercise marks,
:func:`build_alert`, and the previous sent version it references."""

from __future__ import annotations

import string
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.cap.model import (
    Alert,
    Area,
    Category,
    Certainty,
    Circle,
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
from hub.console.model import EXERCISE_PREFIX, LANGUAGES, ConsoleConfig, ConsoleError, _msg
from hub.console.tables import _COLS, _row
from hub.decide.rules.templates import BBK_EVENT_PROFILE, TEXT_KEYS, Template, event_in
from hub.store.db import Store


def template_content(tpl: Template, values: Mapping[str, object]) -> dict[str, Any]:
    """Adapter over hub.decide.rules.templates: a template as console content. Placeholders without a value stay
    visible (``{sensor}``) so the operator fills them; submitting refuses texts that still hold any."""
    full: dict[str, object] = {p: "{" + p + "}" for p in tpl.uses}
    full.update({k: v for k, v in values.items() if v is not None})
    d = tpl.render(full)
    return {"event": d.event, "categories": [c.value for c in d.categories], "severity": d.severity.value,
            "urgency": d.urgency.value, "certainty": d.certainty.value,
            "response_types": [r.value for r in d.response_types], "event_code": d.event_code,
            "instruction_codes": list(d.instruction_codes), "web": d.web, "contact": d.contact,
            "texts": {lang: {"headline": t.headline, "description": t.description, "instruction": t.instruction}
                      for lang, t in d.texts.items() if lang in LANGUAGES},
            "review": template_review(tpl, d.texts), "biwapp_category": d.biwapp_category}


def _fits(template: str, text: str) -> bool:
    """Whether ``text`` is ``template`` with some non-empty value in each placeholder (each literal part at its
    leftmost place, the last one at the end: linear, no backtracking over an operator's 4000 characters)."""
    chunks = [(literal, name is not None) for literal, name, _, _ in string.Formatter().parse(template)]
    pos, pending = 0, False
    for n, (literal, field) in enumerate(chunks):
        if not pending:
            if not text.startswith(literal, pos):
                return False
            pos += len(literal)
        elif n == len(chunks) - 1 and not field:  # the closing words: at the very end
            if not text.endswith(literal) or len(text) - len(literal) < pos + 1:
                return False
            pos = len(text)
        else:
            at = text.find(literal, pos + 1)
            if at < 0:
                return False
            pos = at + len(literal)
        pending = field
    return pos < len(text) if pending else pos == len(text)


def template_review(tpl: Template, texts: Mapping[str, Any]) -> dict[str, dict[str, str | None]]:
    """The review state of the languages of ``texts`` (Text objects or ``{headline, description, instruction}``)
    whose words are still the template's reviewed ones, whatever fills its placeholders: a text the operator
    changed is no longer what a native speaker confirmed."""
    out: dict[str, dict[str, str | None]] = {}
    for lang, t in tpl.texts.items():
        given = texts.get(lang)
        if not t.reviewed or lang not in LANGUAGES or given is None:
            continue
        parts = given if isinstance(given, Mapping) else {k: getattr(given, k) for k in TEXT_KEYS}
        if all(_fits(getattr(t, k), parts.get(k) or "") for k in TEXT_KEYS):
            out[lang] = {"reviewed_by": t.reviewed_by, "reviewed_on": t.review()["reviewed_on"]}
    return out


def sent_languages(cfg: ConsoleConfig, content: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The languages of a version that go out, and those left out because no native speaker has reviewed them
    (only with ``[console] languages_require_review``; German always goes out)."""
    have = [lang for lang in LANGUAGES if lang in content["texts"]]
    if not cfg.languages_require_review:
        return have, []
    reviewed = content.get("review") or {}
    keep = [lang for lang in have if lang == "de-DE" or lang in reviewed]
    return keep, [lang for lang in have if lang not in keep]


def all_clear_template(templates: Mapping[str, Template], original: str | None) -> Template | None:
    """The all-clear template of a warning made from template ``original``: the one its ``all_clear`` field names
    (compose templates), else ``entwarnung``."""
    tpl = templates.get(original) if original else None
    return templates.get(getattr(tpl, "all_clear", None) or "entwarnung")


def _local(at: datetime) -> str:
    from zoneinfo import ZoneInfo

    return at.astimezone(ZoneInfo("Europe/Berlin")).strftime("%d.%m.%Y %H:%M")


def _values(cfg: ConsoleConfig, area: Mapping[str, Any], expires: str | None, now: datetime) -> dict[str, object]:
    """What the console fills into a template: the district, the time of issue, the places (``ort``) and the end
    (``until``) of compose templates, and the alert placeholders a rule's template may use."""
    district = cfg.sender_name or cfg.geo.registry.name(cfg.district) or cfg.district
    return {"district": district, "time": _local(now), "ort": area.get("desc") or _area_desc(cfg, area),
            "area": area.get("desc") or _area_desc(cfg, area), "sender_name": district,
            "until": _local(datetime.fromisoformat(expires)) if expires else None}


# -- the CAP message ----------------------------------------------------------------------------------------------


def _area_desc(cfg: ConsoleConfig, area: Mapping[str, Any]) -> str:
    reg = cfg.geo.registry
    names = [reg.name(a) or a for a in area["ars"]]
    return ", ".join(names) or (cfg.sender_name or reg.name(cfg.district) or cfg.district)


def _cap_areas(cfg: ConsoleConfig, area: Mapping[str, Any]) -> tuple[Area, ...]:
    """Selected regions as one area of ARS geocodes; drawn shapes as another (CAP ``lat,lon``). Separate, because
    beside shapes, geocodes only say "touched" (hub.geo.resolve) and the rules' geometry ignores them."""
    out = []
    if area["ars"]:
        out.append(Area(area_desc=_area_desc(cfg, area)[:500],
                        geocodes=tuple(Value(value_name="ARS", value=a) for a in area["ars"])))
    polygons, circles = [], []
    for f in area["features"]:
        g = f["geometry"]
        if g["type"] == "Point":
            lon, lat = g["coordinates"]
            circles.append(Circle(center=(lat, lon), radius_km=round(f["properties"]["radius_m"] / 1000, 3)))
        else:
            for poly in (g["coordinates"] if g["type"] == "MultiPolygon" else [g["coordinates"]]):
                polygons.append(tuple((lat, lon) for lon, lat in poly[0]))
    if polygons or circles:
        district = cfg.sender_name or cfg.geo.registry.name(cfg.district) or cfg.district
        out.append(Area(area_desc=area.get("desc") or f"Markiertes Gebiet ({district})", polygons=tuple(polygons),
                        circles=tuple(circles)))
    return tuple(out)


def _mark(text: str, lang: str, exercise: bool) -> str:
    prefix = EXERCISE_PREFIX.get(lang, EXERCISE_PREFIX["en"])
    return prefix + text if exercise and text and not text.startswith(prefix) else text


def build_alert(cfg: ConsoleConfig, row: Mapping[str, Any], *, previous: Alert | None, sent: datetime) -> Alert:
    """The CAP 1.2 alert of a version: one info per language (:func:`sent_languages`; the event named in each
    language from the codes table), BBK event code, instruction codes, ARS geocodes, polygons and circles; an
    exercise marked in every text; references to the previous version."""
    c = row["content"]
    exercise = row["status"] == Status.EXERCISE.value
    params = [Value(value_name="instructionCode", value=" ".join(c["instruction_codes"]))] \
        if c["instruction_codes"] else []
    if row["audience"] == "topic":
        params.append(Value(value_name="warnhub:topic", value=row["topic"]))
    codes = (Value(value_name=BBK_EVENT_PROFILE, value=c["event_code"]),) if c["event_code"] else ()
    areas = _cap_areas(cfg, row["area"])
    infos = []
    for lang in sent_languages(cfg, c)[0]:
        t = c["texts"][lang]
        infos.append(Info(
            language=lang, categories=tuple(Category(x) for x in c["categories"]),
            event=event_in(lang, c["event"], c["event_code"], c.get("biwapp_category")),
            response_types=tuple(ResponseType(x) for x in c["response_types"]), urgency=Urgency(c["urgency"]),
            severity=Severity(c["severity"]), certainty=Certainty(c["certainty"]), event_codes=codes,
            onset=_dt(c["onset"]), expires=_dt(c["expires"]), sender_name=cfg.sender_name or None,
            headline=_mark(t["headline"], lang, exercise), description=_mark(t["description"], lang, exercise),
            instruction=_mark(t["instruction"], lang, exercise) or None, web=c["web"], contact=c["contact"],
            parameters=tuple(params), areas=areas))
    refs = (Reference(sender=previous.sender, identifier=previous.identifier, sent=previous.sent),) if previous \
        else ()
    return Alert(identifier=f"warnhub.console.{row['thread']}.{row['version']}", sender=cfg.sender, sent=sent,
                 status=Status(row["status"]), msg_type=MsgType(row["msg_type"]), scope=Scope.PUBLIC,
                 references=refs, infos=tuple(infos))


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _previous_sent(store: Store, row: Mapping[str, Any]) -> tuple[dict[str, Any] | None, Alert | None]:
    prev = store.conn.execute(
        f"SELECT {', '.join(_COLS)} FROM console_warnings WHERE thread=? AND version<? AND state='sent'"
        " ORDER BY version DESC LIMIT 1", (row["thread"], row["version"])).fetchone()
    if prev is None:
        if row["version"] > 1:
            raise ConsoleError(_msg("Die vorige Fassung wurde nie gesendet", "the previous version was never sent"))
        return None, None
    p = _row(prev)
    return p, store.alert(p["alert_id"])


def _sent_time(now: datetime, previous: Alert | None) -> datetime:
    sent = now.astimezone(UTC).replace(microsecond=0)
    if previous is not None and sent <= previous.sent:
        sent = previous.sent + timedelta(seconds=1)  # sent strictly increases along the chain
    return sent
