"""Approve and send: four eyes, the preview token, and in one durable transaction the CAP alert, stored through the
intake, with its publish decision, the console row and the audit entries.

Sending makes a CAP 1.2 alert, checks it like any document (XSD and semantic checks,
:func:`hub.intake.documents.check_document`; only a fully valid one is sent), stores it through the way in every
source uses (:meth:`hub.intake.documents.Intake.record`, origin ``console``) and records its ``publish`` decision
(:func:`hub.decide.decisions.record`) in **one transaction**, durable before "sent" is shown: a crash leaves
neither the alert nor its decision. The operators decided, so the rules router never decides it (it only decides
versions without a decision). The pipeline then publishes it like any publish decision: after :func:`approve` or
:func:`send` returns, the caller publishes :class:`hub.events.Decided` (hub/web/console_api.py does), else a
running hub's pipeline finds it at its next idle check.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.cap.model import MsgType, Severity, Urgency
from hub.cap.serialize import to_xml
from hub.cap.sign import SignaturePolicy
from hub.cap.validate import Verdict
from hub.console import offers
from hub.console.alert import _previous_sent, _sent_time, build_alert
from hub.console.drafts import _ready
from hub.console.model import (
    ORIGIN,
    ConsoleConfig,
    ConsoleError,
    ConsoleForbidden,
    ConsoleUser,
    FourEyes,
    StalePreview,
    _audited,
    _msg,
    _need,
    _state,
)
from hub.console.tables import _COLS, _event, _require, _row
from hub.console.targeting import _decision, _plan, check_widening, confirmation
from hub.decide import decisions
from hub.intake.documents import Intake, check_document
from hub.store.clock import now_utc, utc_iso
from hub.store.db import Store


@dataclass(frozen=True, slots=True)
class Sent:
    """A version that was sent: its CAP is stored with its publish decision, committed. The caller now publishes
    :class:`hub.events.Decided` (``alert_id``, ``store_thread``, ``publish``) so the pipeline publishes it at once, as
    ``hub/web/console_api.py`` does; without it a running hub's pipeline finds it at its next idle check."""

    warning: dict[str, Any]
    alert_id: int
    store_thread: int
    identifier: str


def approve(store: Store, approver: ConsoleUser, warning_id: int, *, token: str, cfg: ConsoleConfig,
            widen: bool = False, now: datetime | None = None) -> Sent:
    """Approve a submitted version and send it, in one transaction. The approver needs approve permission, the
    area in their scope, must not have written or edited it (four eyes), and must pass the ``token`` of a preview
    of the version as it is."""
    now = now or now_utc()

    def run() -> Sent:
        _need(approver, "approve")
        row = _require(store, warning_id)
        _state(row, "submitted")
        if approver.id in row["editors"] or approver.id == row["author_id"]:
            raise ConsoleForbidden(_msg("Vier-Augen-Prinzip: Wer eine Meldung verfasst oder bearbeitet hat, gibt "
                                        "sie nicht frei", "four eyes: authors and editors cannot approve"))
        _ready(row)
        offers.check_scope(cfg, approver, row["area"])
        with store.transaction(durable=True) as conn:  # on disk before the console shows it as sent
            stamp = utc_iso(now)
            conn.execute("UPDATE console_warnings SET state='approved', approver=?, approver_id=?, approved_at=?,"
                         " updated_at=? WHERE id=?", (approver.name, approver.id, stamp, stamp, row["id"]))
            _event(conn, row, approver.name, "approve", {}, now)
            store.audit(approver.name, "console.approve", row["thread"], {"warning": row["id"]}, now=now,
                        district=row["district"])
            row = _require(store, warning_id)
            return _send(store, cfg, approver, row, token=token, now=now, widen=widen,
                         why=f"console {row['thread']} v{row['version']} by {row['author']}, approved by "
                             f"{approver.name}")

    return _audited(store, approver, "approve", str(warning_id), run, district=cfg.district)


def send(store: Store, user: ConsoleUser, warning_id: int, *, token: str, cfg: ConsoleConfig,
         reason: str | None = None, widen: bool = False, now: datetime | None = None) -> Sent:
    """Send a draft or submitted version without a second person: allowed where the policy does not require four
    eyes for its severity; a Cancel or all-clear by someone with approve permission who gives a ``reason`` (unless
    ``four_eyes_end``; audited as ``console.end_alone``); or, where the admin allows it, an Extreme or Immediate
    warning by someone with approve permission who gives a ``reason`` (audited as ``console.single_person``)."""
    now = now or now_utc()

    def run() -> Sent:
        _need(user, "compose")
        row = _require(store, warning_id)
        _state(row, "draft", "submitted")
        _ready(row)
        offers.check_scope(cfg, user, row["area"])
        mode = _alone(cfg.four_eyes, user, row, reason)
        with store.transaction(durable=True) as conn:  # on disk before the console shows it as sent
            why = f"console {row['thread']} v{row['version']} by {user.name}, "
            c = row["content"]
            if mode is not None:
                text = (reason or "").strip()
                conn.execute("UPDATE console_warnings SET single_person_reason=?, approver=?, approver_id=? WHERE id=?",
                             (text, user.name, user.id, row["id"]))
                _event(conn, row, user.name, mode, {"reason": text}, now)
                store.audit(user.name, f"console.{mode}", row["thread"],
                            {"warning": row["id"], "severity": c["severity"], "urgency": c["urgency"],
                             "msg_type": row["msg_type"], "kind": row["kind"], "reason": text}, now=now,
                            district=row["district"])
                why += f"{'ended' if mode == 'end_alone' else 'sent'} alone: {text}"
            else:
                why += f"no approval needed for {c['severity']}"
            return _send(store, cfg, user, _require(store, warning_id), token=token, now=now, why=why, widen=widen)

    return _audited(store, user, "send", str(warning_id), run, district=cfg.district)


def _alone(policy: FourEyes, user: ConsoleUser, row: Mapping[str, Any], reason: str | None) -> str | None:
    """How ``user`` may send ``row`` without a second person: None (four eyes not required for its severity),
    ``end_alone`` (a Cancel or all-clear by an approver, unless ``four_eyes_end``) or ``single_person`` (an
    Extreme or Immediate warning where the admin allows it); raises where a second person is needed."""
    c = row["content"]
    if c["severity"] not in policy.required_for:
        return None
    urgent = c["severity"] == Severity.EXTREME.value or c["urgency"] == Urgency.IMMEDIATE.value
    if user.can("approve") and policy.ends_alone(row):
        mode = "end_alone"
    elif user.can("approve") and policy.single_person_extreme and urgent:
        mode = "single_person"
    else:
        raise ConsoleForbidden(_msg(f"Vier-Augen-Prinzip: Eine Meldung der Schwere {c['severity']} muss eine zweite "
                                    "Person mit Freigaberecht freigeben.", f"Four eyes: a {c['severity']} warning "
                                    "needs the approval of a second person with approve permission."))
    if len((reason or "").strip()) < policy.min_reason:
        raise ConsoleError(_msg(f"Allein senden geht nur mit einer Begründung von mindestens {policy.min_reason} "
                                "Zeichen.", f"Sending alone needs a reason of at least {policy.min_reason} "
                                "characters."))
    return mode


def _send(store: Store, cfg: ConsoleConfig, user: ConsoleUser, row: Mapping[str, Any], *, token: str,
          now: datetime, why: str, widen: bool = False) -> Sent:
    """Inside the caller's transaction: CAP, validation, stored through the intake, decision, state; all of it
    commits together or not at all (no alert without its decision). ``widen``: the sender confirmed that picked
    regions without a boundary of their own widen the warning to their Kreis (refused without)."""
    newer = store.conn.execute("SELECT version FROM console_warnings WHERE thread=? AND version>? AND state='sent'",
                               (row["thread"], row["version"])).fetchone()
    if newer is not None:
        raise ConsoleError(_msg(f"Fassung {newer[0]} dieser Warnung wurde schon gesendet; diese ältere Fassung kann "
                                "nicht mehr gesendet werden.", f"Version {newer[0]} of this warning was sent already; "
                                "this older version can no longer be sent."))
    prev, prev_alert = _previous_sent(store, row)
    own = offers.own_row(cfg, row)  # the part in another district is offered to it, never sent in its name
    alert = build_alert(cfg, own, previous=prev_alert, sent=_sent_time(now, prev_alert))
    plan = _plan(cfg, own, alert)
    if not hmac.compare_digest(str(token or ""), confirmation(row, plan)):
        raise StalePreview(_msg("Die Meldung, ihre Empfänger oder Kanäle haben sich seit der Vorschau geändert: "
                                "bitte neu prüfen", "the warning, its audience or channels changed since the preview"))
    check_widening(plan, widen)
    if plan.widened:
        store.audit(user.name, "console.widening_confirmed", row["thread"],
                    {"warning": row["id"], "regions": [w.ars for w in plan.widened],
                     "kreise": sorted({w.kreis for w in plan.widened})}, now=now, district=row["district"])
    expires = alert.expires
    if alert.msg_type is not MsgType.CANCEL and (expires is None or expires <= alert.sent):
        raise ConsoleError(_msg("Die Gültigkeit ist abgelaufen", "the warning has expired"))
    raw = to_xml(alert)
    report, rec = check_document(cfg.validator, raw, SignaturePolicy.IGNORE)
    if rec is None or report.verdict is not Verdict.VALID:
        raise ConsoleError(_msg("Die CAP-Nachricht ist nicht gültig", "the CAP message is not valid") + " "
                           + "; ".join(report.errors + report.warnings))
    added = Intake(cfg.validator, store).record(report, rec, raw, origin=ORIGIN, now=now)  # the one way in
    if added.outcome != "new" or added.alert_id is None or added.thread_id is None:
        raise ConsoleError(_msg("Diese Fassung ist schon gespeichert", "this version is stored already"))
    pending = decisions.Pending(added.alert_id, added.thread_id, ORIGIN, alert, prev_alert)
    if not decisions.record(store, pending, _decision(row, plan, why), rules_loaded_at=None, now=now,
                            district=cfg.district):  # the warning's district's decision, published in its name
        raise ConsoleError(_msg("Über diese Fassung wurde schon entschieden", "this version was decided already"))
    store.conn.execute(
        "UPDATE console_warnings SET state='sent', sent_at=?, updated_at=?, cap_identifier=?, cap_sent=?, alert_id=?,"
        " store_thread=? WHERE id=?", (utc_iso(now), utc_iso(now), alert.identifier, alert.sent.isoformat(),
                                      added.alert_id, added.thread_id, row["id"]))
    _event(store.conn, row, user.name, "send", {"identifier": alert.identifier, "alert": added.alert_id}, now)
    _supersede(store, user, row, now)
    offered = offers.offer(store, cfg, row, identifier=alert.identifier, now=now)
    store.audit(user.name, "console.send", row["thread"],
                {"warning": row["id"], "identifier": alert.identifier, "status": alert.status.value,
                 "msg_type": alert.msg_type.value, "severity": alert.severity.value, "audience": row["audience"],
                 "channels": list(row["channels"]), "regions": list(plan.regions),
                 **({"offered": offered} if offered else {})}, now=now, district=row["district"])
    return Sent(_require(store, row["id"]), added.alert_id, added.thread_id, alert.identifier)


def _supersede(store: Store, user: ConsoleUser, row: Mapping[str, Any], now: datetime) -> None:
    """Inside the send's transaction: the thread's other open versions (follow-ups begun from an older state)
    are withdrawn, audited, so none can later be sent over this one."""
    others = [_row(r) for r in store.conn.execute(
        f"SELECT {', '.join(_COLS)} FROM console_warnings WHERE thread=? AND id<>? AND state IN"
        " ('draft', 'submitted', 'rejected')", (row["thread"], row["id"]))]
    for other in others:
        detail = {"superseded_by": row["version"]}
        store.conn.execute("UPDATE console_warnings SET state='withdrawn', updated_at=? WHERE id=?",
                           (utc_iso(now), other["id"]))
        _event(store.conn, other, user.name, "withdraw", detail, now)
        store.audit(user.name, "console.withdraw", other["thread"], {"warning": other["id"], **detail}, now=now,
                    district=other["district"])
