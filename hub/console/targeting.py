"""Whom a version reaches (the pipeline's own resolution, :func:`hub.publish.audience.recipients`, and its
channels by :func:`hub.publish.audience.effective_channels`, without writing), the confirmation token bound to it,
the widening a region without a boundary needs confirmed, and the preview of what sending it now would do."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shapely.geometry.base import BaseGeometry

from hub.cap.model import Alert, MsgType, Urgency
from hub.cap.serialize import to_xml
from hub.cap.sign import SignaturePolicy
from hub.config.sections import BoardConfig, WebhookConfig
from hub.console import offers
from hub.console.alert import _previous_sent, _sent_time, build_alert, sent_languages
from hub.console.model import LANGUAGES, ConsoleConfig, ConsoleError, _msg
from hub.console.tables import _dumps, _require
from hub.decide.rules.engine import Decision
from hub.geo.geography import Geography
from hub.geo.registry import DEFAULT_DISTRICT
from hub.geo.resolve import resolve
from hub.intake.documents import check_document
from hub.publish import audience, publications
from hub.publish.audience import Widening
from hub.publish.boardtext import fit
from hub.publish.pipeline import push_payload
from hub.publish.publications import Notice, Publication
from hub.store.clock import now_utc
from hub.store.db import Store

# -- whom it reaches (the pipeline's targeting, without writing) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    alert: Alert
    area_proj: BaseGeometry | None
    area_lonlat: BaseGeometry | None
    regions: tuple[str, ...]
    inside_district: bool
    outside_share: float
    area_km2: float
    inside_km2: float
    neighbours: tuple[tuple[str, str], ...]
    boards: tuple[BoardConfig, ...]
    kiosks: tuple[BoardConfig, ...]
    webhooks: tuple[WebhookConfig, ...]
    channels: tuple[str, ...] = ()
    """The channels it is published on (the decision's, :func:`hub.publish.audience.effective_channels`)."""
    push: Sequence[str] = ()
    """Ids of the push subscriptions it reaches now (with an index)."""
    widened: tuple[Widening, ...] = ()
    """Picked regions without a boundary of their own: the warning covers their whole Kreis instead (to be
    confirmed; not for a Cancel or an all-clear, which end what was confirmed before)."""


def _plan(cfg: ConsoleConfig, row: Mapping[str, Any], alert: Alert, index: Any = None) -> _Plan:
    """Area, regions and recipients exactly as the pipeline will deliver the stored decision: the decision
    :func:`_decision` stores, resolved by :func:`hub.publish.audience.recipients` (the pipeline's own function)."""
    geo, reg, district = cfg.geo, cfg.geo.registry, cfg.district
    res = resolve(alert, district, geo=geo)
    keys = audience.regions(geo, district, row["area"]["ars"], res)
    neighbours = tuple((h.ars, h.name or h.ars) for h in res.regions if h.level == "kreis"
                       and not reg.is_within(h.ars, district) and not reg.is_within(district, h.ars))
    inside = res.inside_district or any(reg.is_within(w.kreis, district) for w in keys.widened)
    d = _targeting(row, alert, keys.keys, inside)
    aud = audience.recipients(geo, index, cfg.boards, cfg.webhooks, alert, d, district=district)
    ending = row["msg_type"] == MsgType.CANCEL.value or row["kind"] == "all-clear"  # never waits for a tick
    return _Plan(alert, aud.area_proj, aud.area_lonlat, keys.keys, inside, aud.outside_share, aud.area_km2,
                 aud.inside_km2, neighbours, aud.boards, aud.kiosks, aud.webhooks, d.channels, aud.push,
                 () if ending else keys.widened)


def _audiences(row: Mapping[str, Any]) -> tuple[str, ...]:
    """Whom a console version is for: the public, or the subscribers of its topic."""
    return (audience.PUBLIC,) if row["audience"] == "public" else (f"{audience.TOPIC}{row['topic']}",)


def _targeting(row: Mapping[str, Any], alert: Alert, regions: tuple[str, ...], inside: bool) -> Decision:
    """The decision :func:`_decision` stores, as far as the pipeline targets by it (the preview resolves it): its
    channels by the pipeline's own audience rule (:func:`hub.publish.audience.effective_channels`)."""
    audiences = _audiences(row)
    channels = audience.effective_channels(row["channels"], audiences, alert.scope.value)
    return Decision("publish", ("console",), channels=channels, audiences=audiences, push="push" in channels,
                    severity=alert.severity, regions=regions, inside_district=inside)


def _decision(row: Mapping[str, Any], plan: _Plan, why: str) -> Decision:
    """The decision the console records for a version it sends (the pipeline publishes it)."""
    return replace(_targeting(row, plan.alert, plan.regions, plan.inside_district),
                   outside_share=plan.outside_share, why=why)


def check_widening(plan: _Plan, confirmed: bool) -> None:
    """Refuse to send a warning whose picked regions have no boundary of their own unless the sender confirmed
    that it then goes to the whole Kreis."""
    if plan.widened and not confirmed:
        raise ConsoleError(_msg(f"{widening_text(plan, 'de', None)}: bitte die Ausweitung ausdrücklich bestätigen",
                                f"{widening_text(plan, 'en', None)}: confirm the widening explicitly"))


def widening_text(plan: _Plan, lang: str, push: int | None) -> str:
    """"Hitzacker ohne eigene Grenze – die Warnung gilt für den ganzen Landkreis Lüchow-Dannenberg (3 Abos)"
    (``push`` None: without the count)."""
    names = ", ".join(w.name for w in plan.widened)
    kreise = ", ".join(dict.fromkeys(w.kreis_name.removeprefix("Kreis ") for w in plan.widened))
    if lang == "en":
        count = f" ({push} subscriptions)" if push is not None else ""
        return f"{names} has no boundary of its own – the warning covers the whole district {kreise}{count}"
    count = f" ({push} Abos)" if push is not None else ""
    return f"{names} ohne eigene Grenze – die Warnung gilt für den ganzen Landkreis {kreise}{count}"


def confirmation(row: Mapping[str, Any], plan: _Plan) -> str:
    """The token a preview shows and sending demands: a hash of content, area, status, audience, channels and the
    boards, kiosks and webhooks reached. Push counts are shown but not bound (citizens subscribe any minute)."""
    doc = {"warning": row["id"], "thread": row["thread"], "version": row["version"], "status": row["status"],
           "msg_type": row["msg_type"], "kind": row["kind"], "content": row["content"], "area": row["area"],
           "channels": sorted(row["channels"]), "audience": row["audience"], "topic": row["topic"],
           "regions": list(plan.regions), "boards": [b.id for b in plan.boards],
           "kiosks": [b.id for b in plan.kiosks], "webhooks": [h.id for h in plan.webhooks]}
    return hashlib.sha256(_dumps(doc).encode()).hexdigest()


def topic_subscribers(store: Store, topic: str) -> set[str]:
    """Ids of the subscriptions that chose the event topic ``topic`` (``event:<topic>``)."""
    return {r[0] for r in store.conn.execute(
        "SELECT s.id FROM subscriptions s, json_each(s.topics) t WHERE t.value = ?", (f"event:{topic}",))}


# -- preview --------------------------------------------------------------------------------------------------------


def preview(store: Store, geo: Geography, index: Any, boards: Sequence[BoardConfig],
            webhooks: Sequence[WebhookConfig], warning: int | Mapping[str, Any], *, district: str = DEFAULT_DISTRICT,
            sender: str = "warnhub@example.invalid", sender_name: str = "", base_url: str = "",
            now: datetime | None = None) -> dict[str, Any]:
    """What sending this version now would do, without doing anything: audience per channel, overspill beyond
    the district, the exact push and board texts, whether the CAP passes validation, and the confirmation
    ``token`` that :func:`approve` / :func:`send` demand. ``index``: the pipeline's SubscriptionIndex (None: no
    push count)."""
    cfg = ConsoleConfig(geo=geo, district=district, sender=sender, sender_name=sender_name, base_url=base_url,
                        boards=tuple(boards), webhooks=tuple(webhooks))
    return preview_for(store, cfg, index, warning, now=now)


def preview_for(store: Store, cfg: ConsoleConfig, index: Any, warning: int | Mapping[str, Any], *,
                now: datetime | None = None) -> dict[str, Any]:
    """:func:`preview` with the console's config."""
    full = _require(store, warning) if isinstance(warning, int) else dict(warning)
    row = offers.own_row(cfg, full)  # what the CAP covers; the part in another district is offered to it
    prev, prev_alert = _previous_sent(store, row)
    alert = build_alert(cfg, row, previous=prev_alert, sent=_sent_time(now or now_utc(), prev_alert))
    plan = _plan(cfg, row, alert, index)
    report, _ = check_document(cfg.validator, to_xml(alert), SignaturePolicy.IGNORE)
    pub_thread = cfg.publication_thread(prev["store_thread"]) if prev else "w-neu"
    push_on = "push" in plan.channels
    if alert.msg_type is MsgType.CANCEL:  # the pipeline tells whoever had an earlier version
        had = dict(store.conn.execute(
            "SELECT channel, count(DISTINCT recipient) FROM outbox WHERE thread=? AND state IN ('done','inflight')"
            " GROUP BY channel", (pub_thread,)).fetchall())
        push_n: int | None = int(had.get("push", 0))
    elif push_on and index is not None:
        push_n = len(plan.push)
    else:
        push_n = 0 if not push_on else None
    pub = _publication_like(cfg, row, plan, pub_thread, prev)
    offered = offers.preview(cfg, full)
    notes = _notes(cfg, row, plan) + [_msg(o["text"]["de"], o["text"]["en"]) for o in offered]
    return {
        "warning": {k: row[k] for k in ("id", "thread", "version", "state", "status", "msg_type", "kind",
                                        "audience", "topic", "channels")},
        "cap": {"identifier": alert.identifier, "status": alert.status.value, "msgType": alert.msg_type.value,
                "severity": alert.severity.value, "verdict": report.verdict.value,
                "problems": report.errors + report.warnings},
        "audience": {"kind": row["audience"], "topic": row["topic"], "push": push_n,
                     "channels": list(plan.channels), "web": "web" in plan.channels,
                     "boards": [{"id": b.id, "name": b.name} for b in plan.boards],
                     "kiosks": [{"id": b.id, "name": b.name} for b in plan.kiosks],
                     "webhooks": [{"id": h.id} for h in plan.webhooks]},
        "overspill": {"area_km2": round(plan.area_km2, 3), "inside_km2": round(plan.inside_km2, 3),
                      "outside_share": round(plan.outside_share, 4), "inside_district": plan.inside_district,
                      "neighbours": [{"ars": a, "name": n} for a, n in plan.neighbours],
                      "regions": list(plan.regions)},
        "widening": _widening(plan, push_n),
        "languages": language_states(cfg, row["content"]),
        "texts": {"push": {n.language: _push_text(pub, n.language, cfg.base_url) for n in pub.notices},
                  "boards": {b.id: fit(pub, pub.notice([b.language]), lines=b.lines, chars=b.chars,
                                       charset=b.charset) for b in plan.boards}},
        "offers": offered,
        "notes": notes,
        "token": confirmation(full, plan),
    }


def _widening(plan: _Plan, push_n: int | None) -> dict[str, Any] | None:
    """What the sender must confirm when a picked region has no boundary of its own (None: nothing widened)."""
    if not plan.widened:
        return None
    return {"regions": [{"ars": w.ars, "name": w.name, "kreis": w.kreis, "kreis_name": w.kreis_name}
                        for w in plan.widened],
            "text": {"de": widening_text(plan, "de", push_n or 0), "en": widening_text(plan, "en", push_n or 0)}}


def _publication_like(cfg: ConsoleConfig, row: Mapping[str, Any], plan: _Plan, thread: str,
                      prev: Mapping[str, Any] | None) -> Publication:
    """What the pipeline's publication of this version will hold (publications.issue keeps the infos)."""
    alert = plan.alert
    urgency = max((i.urgency for i in alert.infos), default=Urgency.UNKNOWN)
    msg_type = alert.msg_type.value if alert.msg_type is MsgType.CANCEL else ("Update" if prev else "Alert")
    expires = alert.expires
    return Publication(0, thread, row["version"], None, None, alert.identifier, cfg.sender, alert.sent, msg_type,
                       alert.status.value, alert.severity.value, urgency.value,
                       publications.ms(expires) if expires else None, "push" in plan.channels,
                       plan.channels, plan.regions, tuple(Notice.of(i, alert.sender) for i in alert.infos),
                       plan.area_lonlat)


def _push_text(pub: Publication, lang: str, base_url: str) -> dict[str, Any]:
    raw = push_payload(pub, "preview", [lang], base_url)
    doc = json.loads(raw)
    return {"title": doc["headline"], "body": doc["body"], "bytes": len(raw), "payload": doc}


def language_states(cfg: ConsoleConfig, content: Mapping[str, Any],
                    sent: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Per language of the nine: whether the version has a text, whether a native speaker reviewed it (who, when)
    and whether it goes out (``[console] languages_require_review`` leaves unreviewed ones out; ``sent``: the
    languages a sent version went out in)."""
    if sent is None:
        sent, _ = sent_languages(cfg, content)
    review = content.get("review") or {}
    return [{"language": lang, "text": lang in content["texts"], "reviewed": lang in review,
             "reviewed_by": (review.get(lang) or {}).get("reviewed_by"),
             "reviewed_on": (review.get(lang) or {}).get("reviewed_on"), "sent": lang in sent}
            for lang in LANGUAGES]


def _notes(cfg: ConsoleConfig, row: Mapping[str, Any], plan: _Plan) -> list[str]:
    notes = []
    missing = [lang for lang in LANGUAGES if lang not in row["content"]["texts"]]
    if missing:
        notes.append(_msg(f"Ohne Text in: {', '.join(missing)}", f"no text in {', '.join(missing)}"))
    _, dropped = sent_languages(cfg, row["content"])
    if dropped:
        notes.append(_msg(f"Nicht gesendet, weil von keiner Muttersprachlerin / keinem Muttersprachler geprüft "
                          f"(languages_require_review): {', '.join(dropped)}",
                          f"not sent, not reviewed by a native speaker (languages_require_review): "
                          f"{', '.join(dropped)}"))
    else:
        unreviewed = [lang for lang in LANGUAGES[1:] if lang in row["content"]["texts"]
                      and lang not in (row["content"].get("review") or {})]
        if unreviewed:
            notes.append(_msg(f"Noch nicht von Muttersprachlern geprüft: {', '.join(unreviewed)}",
                              f"not yet reviewed by a native speaker: {', '.join(unreviewed)}"))
    if plan.outside_share > 0.005:
        names = ", ".join(n for _, n in plan.neighbours) or "–"
        notes.append(_msg(f"{plan.outside_share:.0%} der Fläche liegen außerhalb des Kreises ({names})",
                          f"{plan.outside_share:.0%} of the area lies outside the district"))
    return notes
