"""What the console's pages show, computed without HTTP: labels (German, English), which buttons a user gets for a
version in its state, summaries of versions, delivery counts per channel, the readings chart of a sensor draft.

The buttons shown are a convenience; hub.console refuses on the server whatever a page offers. They follow the
same rules, so a person never sees a button that can only fail (an author never sees "approve" on their own
warning, nobody sees "send alone" unless the admin allows it for this severity).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from hub.cap import labels
from hub.console.model import FourEyes

BERLIN = ZoneInfo("Europe/Berlin")

SEVERITY = labels.pairs(labels.SEVERITY)
URGENCY = labels.pairs(labels.URGENCY)
CERTAINTY = labels.pairs(labels.CERTAINTY)
"""(German, English) by CAP value, from the one table (hub.cap.labels)."""
CATEGORY = {"Geo": ("Geologisch", "geophysical"), "Met": ("Wetter", "meteorological"),
            "Safety": ("Sicherheit", "safety"), "Security": ("Öffentliche Sicherheit", "security"),
            "Rescue": ("Rettung", "rescue"), "Fire": ("Feuer", "fire"), "Health": ("Gesundheit", "health"),
            "Env": ("Umwelt", "environment"), "Transport": ("Verkehr", "transport"),
            "Infra": ("Infrastruktur", "infrastructure"), "CBRNE": ("CBRN-Gefahr", "CBRNE"),
            "Other": ("Sonstiges", "other")}
STATE = {"draft": ("Entwurf", "draft"), "submitted": ("Wartet auf Freigabe", "awaiting approval"),
         "approved": ("Freigegeben", "approved"), "sent": ("Gesendet", "sent"), "rejected": ("Abgelehnt", "rejected"),
         "withdrawn": ("Zurückgezogen", "withdrawn")}
MSG_TYPE = {"Alert": ("Erstmeldung", "alert"), "Update": ("Aktualisierung", "update"),
            "Cancel": ("Aufhebung", "cancel")}
KIND = {"warning": ("Warnung", "warning"), "all-clear": ("Entwarnung", "all-clear")}
CHANNEL = {"push": ("Push (Apps, Browser)", "push"), "web": ("Web, Feeds, Kiosk", "web"),
           "boards": ("Anzeigetafeln", "display boards"), "webhook": ("Webhooks (Medien, Dienste)", "webhooks")}
LANGUAGE = {"de-DE": ("Deutsch", "German"), "de-DE-x-ls": ("Leichte Sprache", "Easy German"),
            "en": ("Englisch", "English"), "ar": ("Arabisch", "Arabic"), "es-ES": ("Spanisch", "Spanish"),
            "fr-FR": ("Französisch", "French"), "pl-PL": ("Polnisch", "Polish"), "ru-RU": ("Russisch", "Russian"),
            "tr-TR": ("Türkisch", "Turkish")}
"""The nine languages of a warning's texts (hub.console.model.LANGUAGES), as the console names them."""
HTML_LANG = {"de-DE-x-ls": "de"}
"""The ``lang`` attribute of a text (Leichte Sprache is German to a browser); others as tagged."""
ACTION = {"create": ("angelegt", "created"), "edit": ("bearbeitet", "edited"), "submit": ("zur Freigabe gegeben",
          "submitted"), "approve": ("freigegeben", "approved"), "send": ("gesendet", "sent"),
          "single_person": ("allein gesendet", "sent alone"), "reject": ("abgelehnt", "rejected"),
          "withdraw": ("zurückgezogen", "withdrawn"), "update": ("Aktualisierung begonnen", "update started"),
          "cancel": ("Aufhebung begonnen", "cancel started"), "all-clear": ("Entwarnung begonnen",
                                                                          "all-clear started"),
          "end_alone": ("allein beendet", "ended alone")}
DELIVERY = (("queued", "wartend", "queued"), ("delivered", "zugestellt", "delivered"),
            ("failed", "fehlgeschlagen", "failed"), ("gone", "abgemeldet", "gone"),
            ("ended", "ersetzt/abgelaufen", "superseded/expired"))
"""Delivery states as the console counts them (hub.deliver.outbox states folded: inflight and retry wait too)."""
_FOLD = {"queued": "queued", "inflight": "queued", "retry": "queued", "done": "delivered", "failed": "failed",
         "gone": "gone", "expired": "ended", "superseded": "ended", "withdrawn": "ended"}
OUTBOX_CHANNEL = {"push": ("Push", "push"), "boards-mqtt": ("Tafeln (MQTT)", "boards, MQTT"),
                  "boards-http": ("Tafeln (HTTP)", "boards, HTTP"), "webhooks": ("Webhooks", "webhooks")}
OPEN = ("draft", "submitted", "rejected")


_KIND_SUFFIX = re.compile(r",\s*(?:Stadt|Hansestadt|Flecken|Marktflecken|Landeshauptstadt|Kreisstadt|Gemeinde)$")


def place_name(name: str) -> str:
    """A region's name as a warning text says it: ``Hitzacker (Elbe)``, not Destatis' ``Hitzacker (Elbe), Stadt``."""
    return _KIND_SUFFIX.sub("", name).strip() or name


def label(table: Mapping[str, tuple[str, str]], key: str | None) -> tuple[str, str]:
    return table.get(key or "", (key or "–", key or "–"))


def local(iso: str | None, fmt: str = "%d.%m.%Y %H:%M") -> str:
    """A stored UTC time as German local time (``–`` for none)."""
    if not iso:
        return "–"
    try:
        at = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(BERLIN).strftime(fmt)


def local_input(iso: str | None) -> str:
    """A stored time as the value of an ``<input type="datetime-local">`` (German local time)."""
    return local(iso, "%Y-%m-%dT%H:%M") if iso else ""


def headline(row: Mapping[str, Any], lang: str = "de-DE") -> str:
    texts = row["content"]["texts"]
    return str((texts.get(lang) or texts.get("de-DE") or {}).get("headline") or row["content"]["event"])


def summary(row: Mapping[str, Any]) -> dict[str, Any]:
    """A version as lists show it (JSON-safe)."""
    c = row["content"]
    return {"id": row["id"], "thread": row["thread"], "version": row["version"], "state": row["state"],
            "status": row["status"], "exercise": row["status"] == "Exercise", "msg_type": row["msg_type"],
            "kind": row["kind"], "audience": row["audience"], "topic": row["topic"], "channels": row["channels"],
            "headline": headline(row), "event": c["event"], "severity": c["severity"], "urgency": c["urgency"],
            "author": row["author"], "approver": row["approver"], "updated_at": row["updated_at"],
            "sent_at": row["sent_at"], "reject_reason": row["reject_reason"], "template": row["template"]}


def actions(user: Any, row: Mapping[str, Any], policy: FourEyes, *, live: bool) -> dict[str, bool]:
    """The buttons ``user`` gets for this version (mirrors hub.console's checks). ``live``: the thread's newest
    sent version is not a Cancel, so the warning can be updated or ended from any of its versions' pages."""
    state, c = row["state"], row["content"]
    compose, approve = user.can("compose"), user.can("approve")
    wrote = user.id == row["author_id"] or user.id in row["editors"]
    needs_second = c["severity"] in policy.required_for
    urgent = c["severity"] == "Extreme" or c["urgency"] == "Immediate"
    sendable = state in ("draft", "submitted")
    ending = policy.ends_alone(row)
    alone = needs_second and sendable and compose and approve and (ending or (policy.single_person_extreme and urgent))
    return {
        "edit": compose and state in OPEN,
        "submit": compose and state == "draft",
        "approve": approve and state == "submitted" and not wrote,
        "reject": approve and state == "submitted" and user.id not in row["editors"],
        "send": compose and sendable and not needs_second,
        "send_alone": alone,
        "end_alone": alone and ending,
        "withdraw": compose and state in OPEN and (user.id in row["editors"] or approve),
        "follow_up": compose and live,
        "wrote": wrote,
    }


def why_not(user: Any, row: Mapping[str, Any], policy: FourEyes, acts: Mapping[str, bool]) -> str | None:
    """Why this user cannot send or approve an open version (German / English), or None."""
    if row["state"] not in ("draft", "submitted") or acts["approve"] or acts["send"] or not user.can("compose"):
        return None
    severity = label(SEVERITY, row["content"]["severity"])[0]
    if row["state"] == "submitted" and acts["wrote"]:
        text = ("Vier-Augen-Prinzip: Sie haben diese Fassung verfasst oder bearbeitet, darum gibt sie eine zweite "
                "Person mit Freigaberecht frei. / Four eyes: you wrote or edited this version, so a second person "
                "with approve permission approves it.")
    elif row["state"] == "draft":
        text = (f"Eine Meldung der Stufe „{severity}“ braucht die Freigabe einer zweiten Person: zuerst „Zur "
                "Freigabe geben“. / This severity needs a second person's approval: submit it first.")
    else:
        return None
    if acts["end_alone"]:
        text += (" Eine Aufhebung oder Entwarnung dürfen Sie mit Begründung allein senden (unten). / You may send a "
                 "cancel or all-clear alone with a reason (below).")
    elif policy.ends_alone(row) and not user.can("approve"):
        text += (" Eine Aufhebung oder Entwarnung kann jede Person mit Freigaberecht allein senden. / Anyone with "
                 "approve permission can send a cancel or all-clear alone.")
    return text


def identity(row: Mapping[str, Any], status: Mapping[str, Any], sent: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The names one warning has, and how they relate: the console's thread (``c…``, all versions), the stored
    incident (``/console/incidents/N``), the hub's publication thread (``w…``, the public page
    ``/warnungen/w…`` when it is a public web warning) and this version's CAP identifier."""
    pub = next((v["publication"] for v in reversed(status["versions"]) if v["publication"]), None)
    base = sent[-1] if sent else None
    public = pub is not None and base is not None and base["status"] == "Actual" and \
        base["audience"] == "public" and "web" in base["channels"]
    return {"console": row["thread"], "incident": row["store_thread"] or (base or {}).get("store_thread"),
            "publication": pub["thread"] if pub else None,
            "public_url": f"/warnungen/{pub['thread']}" if public and pub else None,
            "identifier": row["cap_identifier"]}


def deliveries(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per version of a thread (hub.console.overview.status): per outbox channel, counts by folded state."""
    out = []
    for v in status["versions"]:
        channels = {}
        for channel, states in sorted((v.get("channels") or {}).items()):
            counts = dict.fromkeys(k for k, _, _ in DELIVERY)
            for state, n in states.items():
                key = _FOLD.get(state, "ended")
                counts[key] = (counts[key] or 0) + n
            channels[channel] = {k: n or 0 for k, n in counts.items()}
        out.append({"id": v["id"], "version": v["version"], "state": v["state"], "msg_type": v["msg_type"],
                    "kind": v["kind"], "published": v["publication"] is not None, "channels": channels})
    return out


def sparkline(points: Sequence[Sequence[Any]], *, width: int = 220, height: int = 48) -> dict[str, Any] | None:
    """An inline SVG polyline of ``(iso time, value)`` readings, oldest first; None without two readings."""
    data = []
    for at, value in points:
        try:
            data.append((datetime.fromisoformat(str(at)).timestamp(), float(value)))
        except (TypeError, ValueError):
            continue
    if len(data) < 2:
        return None
    t0, t1 = data[0][0], data[-1][0]
    lo, hi = min(v for _, v in data), max(v for _, v in data)
    span_t, span_v = (t1 - t0) or 1.0, (hi - lo) or 1.0
    pad = 3
    coords = " ".join(f"{pad + (t - t0) / span_t * (width - 2 * pad):.1f},"
                      f"{height - pad - (v - lo) / span_v * (height - 2 * pad):.1f}" for t, v in data)
    return {"points": coords, "width": width, "height": height, "min": lo, "max": hi, "last": data[-1][1],
            "first": data[0][1], "count": len(data), "since": local(str(points[0][0]), "%H:%M"),
            "until": local(str(points[-1][0]), "%H:%M")}
