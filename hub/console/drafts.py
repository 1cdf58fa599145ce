"""Operations on unsent versions: create, edit, submit, reject, withdraw, and follow-ups (update, cancel,
all-clear) that start the next version of a sent warning as a draft."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from hub.cap.model import Certainty, MsgType, ResponseType, Severity, Urgency
from hub.console import offers
from hub.console.alert import _values, all_clear_template, template_content, template_review
from hub.console.forms import _area, _content, _settings, _time
from hub.console.model import (
    ALL_CLEAR_VALIDITY,
    MAX_VALIDITY,
    ConsoleConfig,
    ConsoleError,
    ConsoleForbidden,
    ConsoleUser,
    _audited,
    _msg,
    _need,
    _state,
)
from hub.console.tables import _dumps, _event, _require, versions
from hub.store.clock import now_utc, utc_iso
from hub.store.db import Store

_UNFILLED = re.compile(r"\{[a-z_]+\}")


def create_draft(store: Store, user: ConsoleUser, form: Mapping[str, Any], *, cfg: ConsoleConfig,
                 now: datetime | None = None) -> dict[str, Any]:
    """A new warning (version 1 of a new thread) as a draft. ``form``: status, template, content (event, category,
    severity, urgency, certainty, response_types, texts per language, event_code, instruction_codes, onset,
    expires, web, contact), area (ars, features as GeoJSON lon/lat, a Point with properties.radius_m is a circle),
    channels, audience (public | topic) and topic."""
    now = now or now_utc()

    def run() -> dict[str, Any]:
        _need(user, "compose")
        name = form.get("template") or None
        tpl = cfg.templates.get(name) if isinstance(name, str) else None
        if name is not None and tpl is None:
            raise ConsoleError(_msg(f"Vorlage {name!r} gibt es nicht", f"no template {name!r}"))
        area = _area(form.get("area"), cfg.geo)
        given = form.get("content")
        raw: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
        hours = getattr(tpl, "default_hours", None)
        expires = _time(raw.get("expires"), "expires") or (utc_iso(now + timedelta(hours=hours)) if hours else None)
        base = {**template_content(tpl, _values(cfg, area, expires, now)), "expires": expires} if tpl else {}
        content = _content(form.get("content"), base)
        if tpl is not None:  # the form sends the texts as the template filled them (times as each language writes)
            content["review"] = template_review(tpl, content["texts"])
        _future(content, now)
        defaults = {"channels": list(getattr(tpl, "default_channels", ()) or ()) or None,
                    "audience": getattr(tpl, "audience", None)}
        status, channels, audience, topic = _settings(
            {**{k: v for k, v in defaults.items() if v}, **form}, None)
        offers.check_scope(cfg, user, area)
        row = {"thread": f"c{uuid.uuid4().hex}", "version": 1, "parent_id": None, "state": "draft",
               "status": status, "msg_type": MsgType.ALERT.value, "kind": "warning", "template": name,
               "content": content, "area": area, "channels": channels, "audience": audience, "topic": topic,
               "district": cfg.district}
        return _insert(store, user, row, "create", now)

    return _audited(store, user, "create", "", run, district=cfg.district)


def _future(content: Mapping[str, Any], now: datetime) -> None:
    expires = content.get("expires")
    if expires is not None and expires <= utc_iso(now):
        raise ConsoleError(_msg("Das Ende der Gültigkeit liegt in der Vergangenheit", "expires is in the past"))
    if expires is not None and expires > utc_iso(now + MAX_VALIDITY):
        raise ConsoleError(_msg("Höchstens 7 Tage gültig", "valid for at most 7 days"))


def _insert(store: Store, user: ConsoleUser, row: dict[str, Any], action: str, now: datetime) -> dict[str, Any]:
    stamp = utc_iso(now)
    with store.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO console_warnings (thread, version, parent_id, state, status, msg_type, kind, template,"
            " content, area, channels, audience, topic, author, author_id, editors, created_at, updated_at, district)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (row["thread"], row["version"], row["parent_id"], row["state"], row["status"], row["msg_type"],
             row["kind"], row["template"], _dumps(row["content"]), _dumps(row["area"]), _dumps(row["channels"]),
             row["audience"], row["topic"], user.name, user.id, _dumps([user.id]), stamp, stamp, row["district"]))
        row = {**row, "id": int(cur.lastrowid or 0)}
        _event(conn, row, user.name, action, {"version": row["version"]}, now)
        store.audit(user.name, f"console.{action}", row["thread"],
                    {"warning": row["id"], "version": row["version"], "status": row["status"],
                     "msg_type": row["msg_type"], "kind": row["kind"]}, now=now, district=row["district"])
    return _require(store, row["id"])


def edit_draft(store: Store, user: ConsoleUser, warning_id: int, form: Mapping[str, Any], *, cfg: ConsoleConfig,
               now: datetime | None = None) -> dict[str, Any]:
    """Change a draft (a submitted or rejected version becomes a draft again and must be submitted anew). Whoever
    edits counts as an author for four eyes. Status and audience cannot change."""
    now = now or now_utc()

    def run() -> dict[str, Any]:
        _need(user, "compose")
        row = _require(store, warning_id)
        _state(row, "draft", "submitted", "rejected")
        content = _content(form.get("content"), row["content"], cancel=row["msg_type"] == MsgType.CANCEL.value)
        _future(content, now)
        status, channels, audience, topic = _settings(form, row)
        area = _area(form["area"], cfg.geo) if "area" in form else row["area"]
        if row["msg_type"] == MsgType.CANCEL.value and area != row["area"]:
            raise ConsoleError(_msg("Eine Aufhebung gilt dem ganzen Gebiet", "a cancel covers the whole area"))
        offers.check_scope(cfg, user, area)
        editors = list(dict.fromkeys([*row["editors"], user.id]))
        with store.transaction() as conn:
            conn.execute("UPDATE console_warnings SET state='draft', content=?, area=?, channels=?, editors=?,"
                         " revision=revision+1, reject_reason=NULL, updated_at=? WHERE id=?",
                         (_dumps(content), _dumps(area), _dumps(channels), _dumps(editors), utc_iso(now), row["id"]))
            _event(conn, row, user.name, "edit", {"revision": row["revision"] + 1}, now)
            store.audit(user.name, "console.edit", row["thread"], {"warning": row["id"]}, now=now,
                        district=row["district"])
        return _require(store, row["id"])

    return _audited(store, user, "edit", str(warning_id), run, district=cfg.district)


def _ready(row: Mapping[str, Any]) -> None:
    """What a version must be before anyone may approve or send it."""
    for lang, text in row["content"]["texts"].items():
        for key, value in text.items():
            if found := _UNFILLED.search(value):
                raise ConsoleError(_msg(f"texts.{lang}.{key}: Platzhalter {found.group()} ist nicht ausgefüllt",
                                        f"texts.{lang}.{key}: placeholder {found.group()} not filled in"))


def submit(store: Store, user: ConsoleUser, warning_id: int, *, cfg: ConsoleConfig,
           now: datetime | None = None) -> dict[str, Any]:
    """Hand a draft over for approval."""
    now = now or now_utc()

    def run() -> dict[str, Any]:
        _need(user, "compose")
        row = _require(store, warning_id)
        _state(row, "draft")
        _ready(row)
        offers.check_scope(cfg, user, row["area"])
        return _transition(store, user, row, "submit", "submitted", now, submitted_at=utc_iso(now))

    return _audited(store, user, "submit", str(warning_id), run, district=cfg.district)


def _transition(store: Store, user: ConsoleUser, row: Mapping[str, Any], action: str, state: str, now: datetime,
                detail: Mapping[str, Any] | None = None, **cols: Any) -> dict[str, Any]:
    sets = "".join(f", {c}=?" for c in cols)
    with store.transaction() as conn:
        conn.execute(f"UPDATE console_warnings SET state=?, updated_at=?{sets} WHERE id=?",
                     (state, utc_iso(now), *cols.values(), row["id"]))
        _event(conn, row, user.name, action, detail or {}, now)
        store.audit(user.name, f"console.{action}", row["thread"], {"warning": row["id"], **(detail or {})}, now=now,
                    district=row["district"])
    return _require(store, row["id"])


def reject(store: Store, approver: ConsoleUser, warning_id: int, reason: str, *, cfg: ConsoleConfig,
           now: datetime | None = None) -> dict[str, Any]:
    """Send a submitted version back with a reason (its authors may edit it again)."""
    now = now or now_utc()

    def run() -> dict[str, Any]:
        _need(approver, "approve")
        row = _require(store, warning_id)
        _state(row, "submitted")
        if approver.id in row["editors"]:
            raise ConsoleForbidden(_msg("Eigene Meldungen zurückziehen statt ablehnen", "withdraw your own warning"))
        if len((reason or "").strip()) < 5:
            raise ConsoleError(_msg("Begründung fehlt", "a reason is required"))
        return _transition(store, approver, row, "reject", "rejected", now, {"reason": reason.strip()},
                           reject_reason=reason.strip())

    return _audited(store, approver, "reject", str(warning_id), run, district=cfg.district)


def withdraw(store: Store, user: ConsoleUser, warning_id: int, *, cfg: ConsoleConfig,
             now: datetime | None = None) -> dict[str, Any]:
    """Drop a version that was not sent (its authors, or anyone who may approve)."""
    now = now or now_utc()

    def run() -> dict[str, Any]:
        _need(user, "compose")
        row = _require(store, warning_id)
        _state(row, "draft", "submitted", "rejected")
        if user.id not in row["editors"] and not user.can("approve"):
            raise ConsoleForbidden(_msg("Nur die Verfasser ziehen zurück", "only its authors may withdraw it"))
        return _transition(store, user, row, "withdraw", "withdrawn", now)

    return _audited(store, user, "withdraw", str(warning_id), run, district=cfg.district)


def follow_up(store: Store, user: ConsoleUser, warning_id: int, action: str, *, cfg: ConsoleConfig,
              form: Mapping[str, Any] | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Start the next version of a sent warning as a draft: ``update`` (msgType Update; ``form`` may change
    content, area and channels), ``cancel`` (msgType Cancel) or ``all-clear`` (an Update with severity Minor,
    responseType AllClear and the all-clear template's texts). ``warning_id`` may be any version of the thread:
    the new one follows its newest *sent* version, whatever happened to follow-ups begun since (withdrawn,
    rejected, or still open: sending one version withdraws the thread's other open ones, hub.console.release), so
    a public warning can always be updated or ended. It references the sent version when sent."""
    now = now or now_utc()

    def run() -> dict[str, Any]:
        _need(user, "compose")
        row = _base(store, _require(store, warning_id))
        later = versions(store, row["thread"])
        form_ = dict(form or {})
        settings = _settings({k: v for k, v in form_.items() if k in ("status", "audience", "topic")}, row)
        new = {"thread": row["thread"], "version": later[-1]["version"] + 1, "parent_id": row["id"], "state": "draft",
               "status": settings[0], "template": row["template"], "area": row["area"],
               "channels": row["channels"], "audience": row["audience"], "topic": row["topic"],
               "district": row["district"]}
        if action == "update":
            new.update(msg_type=MsgType.UPDATE.value, kind="warning",
                       content=_content(form_.get("content"), row["content"]))
            _future(new["content"], now)
            if "area" in form_:
                new["area"] = _area(form_["area"], cfg.geo)
            if "channels" in form_:
                new["channels"] = _settings({"channels": form_["channels"]}, row)[1]
        elif action == "cancel":
            new.update(msg_type=MsgType.CANCEL.value, kind="warning", content=_cancel_content(row["content"]))
        elif action == "all-clear":
            new.update(msg_type=MsgType.UPDATE.value, kind="all-clear",
                       content=_all_clear_content(cfg, row, now))
        else:
            raise ConsoleError(_msg(f"Unbekannte Folgemeldung {action!r}", f"unknown follow-up {action!r}"))
        offers.check_scope(cfg, user, new["area"])
        return _insert(store, user, new, action, now)

    return _audited(store, user, action, str(warning_id), run, district=cfg.district)


def _base(store: Store, row: Mapping[str, Any]) -> dict[str, Any]:
    """The version a follow-up of ``row``'s thread continues: the newest sent one, unless that ended the warning."""
    sent = [v for v in versions(store, row["thread"]) if v["state"] == "sent"]
    if not sent:
        raise ConsoleError(_msg("Diese Meldung wurde noch nicht gesendet; eine Folgemeldung ist erst danach möglich.",
                                "This warning has not been sent yet; a follow-up is possible only after that."))
    if sent[-1]["msg_type"] == MsgType.CANCEL.value:
        raise ConsoleError(_msg("Diese Warnung ist bereits aufgehoben.", "This warning has already been cancelled."))
    return sent[-1]


_CANCELLED = {"en": ("Cancelled: ", "This message has been withdrawn."), "ar": ("أُلغي: ", "تم سحب هذه الرسالة."),
              "es-ES": ("Anulado: ", "Este mensaje ha sido retirado."),
              "fr-FR": ("Annulé : ", "Ce message a été retiré."),
              "pl-PL": ("Odwołano: ", "Ten komunikat został wycofany."),
              "ru-RU": ("Отменено: ", "Это сообщение отозвано."), "tr-TR": ("İptal edildi: ", "Bu mesaj geri çekildi.")}
"""A cancel's words per language (German and Leichte Sprache: "Aufgehoben"); not reviewed by native speakers."""


def _cancel_content(prev: Mapping[str, Any]) -> dict[str, Any]:
    texts = {}
    for lang, t in prev["texts"].items():
        prefix, said = _CANCELLED.get(lang, ("Aufgehoben: ", "Diese Meldung wurde zurückgenommen."))
        texts[lang] = {"headline": prefix + t["headline"], "description": said, "instruction": ""}
    return _content({}, {**prev, "texts": texts, "onset": None, "expires": None}, cancel=True)


def _all_clear_content(cfg: ConsoleConfig, row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    prev = row["content"]
    headline = prev["texts"]["de-DE"]["headline"][:120]
    tpl = all_clear_template(cfg.templates, row["template"])
    hours = getattr(tpl, "default_hours", None)
    expires = utc_iso(now + (timedelta(hours=hours) if hours else ALL_CLEAR_VALIDITY))
    values = {**_values(cfg, row["area"], expires, now), "headline": headline, "event": prev["event"],
              "severity": prev["severity"]}
    if tpl is not None and tpl.uses <= {k for k, v in values.items() if v is not None}:
        made = template_content(tpl, values)
        texts, codes = made["texts"], made["instruction_codes"]
        event_code = made["event_code"] or prev["event_code"]
    else:  # no template, or one for sensors ({value}, {unit} ...): the built-in words
        texts = {"de-DE": {"headline": f"Entwarnung: {headline}", "instruction": "",
                           "description": f"Die Gefahr ist vorüber. Die Warnung „{headline}“ ist aufgehoben."},
                 "de-DE-x-ls": {"headline": "Entwarnung", "description": "Die Gefahr ist vorbei.", "instruction": ""},
                 "en": {"headline": f"All clear: {prev['texts'].get('en', {}).get('headline') or prev['event']}",
                        "description": "The danger is over. The warning has ended.", "instruction": ""}}
        codes, event_code = [], prev["event_code"]
    base = {**prev, "severity": Severity.MINOR.value, "urgency": Urgency.PAST.value,
            "certainty": Certainty.OBSERVED.value, "response_types": [ResponseType.ALL_CLEAR.value],
            "texts": texts, "instruction_codes": codes, "event_code": event_code, "onset": None,
            "expires": expires}
    return _content({}, base)


# -- offers from another district (hub.console.offers) ----------------------------------------------------------------

NOT_YOURS = "Kein Zugriff / forbidden"
"""The refusal of another district's offer: it says nothing about the offer."""


def _pending_offer(store: Store, cfg: ConsoleConfig, key: str) -> dict[str, Any]:
    found = offers.load(store, key)
    if found is None:  # not an offer: another district's draft is refused like its offers, else it is nowhere
        other = store.conn.execute("SELECT district FROM drafts WHERE key=?", (key,)).fetchone()
        if other is not None and other[0] != cfg.district:
            raise ConsoleForbidden(NOT_YOURS)
        raise LookupError(key)
    if found["district"] != cfg.district:
        raise ConsoleForbidden(NOT_YOURS)
    if found["state"] != "pending":
        raise ConsoleError(_msg("Dieses Angebot wurde schon übernommen oder abgelehnt",
                                "this offer was taken over or declined already"))
    return found


def _made_from(store: Store, earlier: list[str]) -> dict[str, Any] | None:
    """The newest sent version of the district's own warning made from an earlier offer of the same thread."""
    for key in reversed(earlier):
        before = offers.load(store, key)
        taken = (before or {}).get("draft", {}).get("taken")
        if taken:
            sent = [v for v in versions(store, taken["thread"]) if v["state"] == "sent"]
            if sent:
                return sent[-1]
    return None


def from_offer(store: Store, user: ConsoleUser, key: str, *, cfg: ConsoleConfig,
               now: datetime | None = None) -> dict[str, Any]:
    """A warning of the user's own district from an offer in its inbox: a new draft with the offer's content and
    area (the part in this district), or, when the offer updates, cancels or ends a warning this district already
    sent from an earlier offer of the same thread, that follow-up of its own warning. Either way it is this
    district's version: its authors edit and submit it, its approvers approve it, it goes out with its sender.
    A Cancel with nothing of this district's to cancel is refused (decline it). Audited as ``console.from_offer``."""
    now = now or now_utc()

    def run() -> dict[str, Any]:
        found = _pending_offer(store, cfg, key)  # another district's: refused before anything else is said
        _need(user, "compose")
        doc = found["draft"]
        o = doc["offer"]
        content = {k: v for k, v in doc.items() if k not in ("area", "offer", "template", "kind", "taken")}
        mine = _made_from(store, o.get("earlier") or [])
        with store.transaction():
            if mine is not None and (o["msg_type"] != MsgType.ALERT.value or o["kind"] == "all-clear"):
                action = ("cancel" if o["msg_type"] == MsgType.CANCEL.value else
                          "all-clear" if o["kind"] == "all-clear" else "update")
                form = {"content": content, "area": doc["area"]} if action == "update" else None
                row = follow_up(store, user, mine["id"], action, cfg=cfg, form=form, now=now)
            elif o["msg_type"] == MsgType.CANCEL.value:
                raise ConsoleError(_msg("Hier gibt es keine eigene Warnung aufzuheben: Angebot ablehnen",
                                        "there is no warning of yours to cancel: decline the offer"))
            else:
                form = {"status": o["status"], "audience": o["audience"], "topic": o["topic"],
                        "channels": o["channels"], "area": doc["area"], "content": content}
                row = create_draft(store, user, form, cfg=cfg, now=now)
            store.conn.execute("UPDATE drafts SET state='taken', draft=? WHERE key=? AND state='pending'",
                               (_dumps({**doc, "taken": {"warning": row["id"], "thread": row["thread"]}}), key))
            store.audit(user.name, "console.from_offer", row["thread"],
                        {"warning": row["id"], "offer": key, "from": o["from"]["district"],
                         "from_thread": o["thread"], "from_version": o["version"]}, now=now, district=cfg.district)
        return row

    return _audited(store, user, "from_offer", key, run)


def decline_offer(store: Store, user: ConsoleUser, key: str, reason: str, *, cfg: ConsoleConfig,
                  now: datetime | None = None) -> None:
    """This district does not take the offer up (it leaves the inbox); audited as ``console.offer_declined``."""
    now = now or now_utc()

    def run() -> None:
        _pending_offer(store, cfg, key)
        _need(user, "compose")
        with store.transaction() as conn:
            conn.execute("UPDATE drafts SET state='declined' WHERE key=? AND state='pending'", (key,))
            store.audit(user.name, "console.offer_declined", key, {"reason": (reason or "").strip()[:500]}, now=now,
                        district=cfg.district)

    _audited(store, user, "decline_offer", key, run)
