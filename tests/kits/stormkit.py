"""A Warntag replay for bench/storm.py and tests/faults/test_storm.py (issue 17 §1): many authorities trigger at
once — DWD, MoWaS, KATWARN and BIWAPP senders, overlapping areas of the district, Updates and Cancels among them,
a copy of one DWD warning through a second source (the NINA replay directory) — and one Extreme that arrives last.

The triggers are CAP 1.2 documents as each sender writes them (the sender decides the provider the rules see:
``opendata@dwd.de``, a MoWaS station code ``DE-NI-...``, ``...@katwarn.de``, ``...@biwapp.de``); the district's
rules (rules/luechow-dannenberg.toml) push DWD and MoWaS from Severe, and show KATWARN and BIWAPP on the web only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# the district's bounding box (lon, lat); polygons inside it overlap in the middle
WEST, SOUTH, EAST, NORTH = 10.76, 52.85, 11.59, 53.24
MID_LON, MID_LAT = (WEST + EAST) / 2, (SOUTH + NORTH) / 2
AREAS = {
    "west": (WEST, SOUTH, MID_LON + 0.08, NORTH), "east": (MID_LON - 0.08, SOUTH, EAST, NORTH),
    "south": (WEST, SOUTH, EAST, MID_LAT + 0.05), "north": (WEST, MID_LAT - 0.05, EAST, NORTH),
    "centre": (MID_LON - 0.2, MID_LAT - 0.12, MID_LON + 0.2, MID_LAT + 0.12), "all": (WEST, SOUTH, EAST, NORTH),
}
DWD_EVENTS = ("STURMBÖEN", "ORKANARTIGE BÖEN", "SCHWERES GEWITTER", "STARKREGEN", "HEFTIGER STARKREGEN",
              "GLATTEIS", "ORKANBÖEN", "SCHNEEVERWEHUNG", "EXTREMER FROST", "DAUERREGEN", "STARKER SCHNEEFALL",
              "GEWITTER mit HAGEL", "SCHWERE STURMBÖEN", "ERGIEBIGER DAUERREGEN")
MOWAS_SENDER = "DE-NI-DAN-S001"


@dataclass(frozen=True)
class Trigger:
    name: str
    data: bytes
    source: str
    """``inbox`` (the CAP directory) or ``nina`` (the second source)."""
    kind: str
    """dwd, mowas, katwarn, biwapp, update, cancel, copy, extreme."""


def _polygon(area: str) -> str:
    w, s, e, n = AREAS[area]
    return " ".join(f"{lat},{lon}" for lon, lat in ((w, s), (e, s), (e, n), (w, n), (w, s)))


def cap(identifier: str, sender: str, sent: datetime, *, event: str, severity: str = "Severe",
        urgency: str = "Immediate", msg_type: str = "Alert", references: str = "", area: str = "all",
        warncell: bool = False, expires_h: float = 6.0) -> bytes:
    refs = f"<references>{references}</references>" if references else ""
    where = ("<geocode><valueName>WARNCELLID</valueName><value>103354000</value></geocode>" if warncell
             else f"<polygon>{_polygon(area)}</polygon>")
    expires = sent + timedelta(hours=expires_h)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>{sender}</sender><sent>{sent.isoformat()}</sent>
  <status>Actual</status><msgType>{msg_type}</msgType><scope>Public</scope>{refs}
  <info>
    <language>de-DE</language><category>Safety</category><event>{event}</event>
    <urgency>{urgency}</urgency><severity>{severity}</severity><certainty>Observed</certainty>
    <expires>{expires.isoformat()}</expires>
    <headline>Warntag: {event}</headline>
    <description>Probewarnung im Sturm-Test ({identifier}).</description>
    <instruction>Informieren Sie sich in den Medien.</instruction>
    <area><areaDesc>Landkreis Lüchow-Dannenberg ({area})</areaDesc>{where}</area>
  </info>
</alert>""".encode()


def replay(*, dwd: int = 14, mowas: int = 12, katwarn: int = 8, biwapp: int = 8, updates: int = 4, cancels: int = 3,
           copies: int = 2, tag: str = "storm") -> list[Trigger]:
    """The triggers in the order they arrive; the Extreme last. Defaults: 52 in all (the Warntag count)."""
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    areas = [a for a in AREAS if a != "all"]
    out: list[Trigger] = []
    originals: dict[str, tuple[str, str, datetime, str]] = {}
    for i in range(max(dwd, mowas, katwarn, biwapp)):
        sent = base + timedelta(seconds=i)
        if i < dwd:
            ident = f"2.49.0.0.276.0.DWD.PVW.{tag}.{i}"
            event = DWD_EVENTS[i % len(DWD_EVENTS)]
            originals[f"dwd{i}"] = ("opendata@dwd.de", ident, sent, event)
            out.append(Trigger(f"dwd-{i}.xml", cap(ident, "opendata@dwd.de", sent, event=event, warncell=True),
                               "inbox", "dwd"))
        if i < mowas:
            ident = f"mow.{MOWAS_SENDER}-{tag}-{i}"
            area = areas[i % len(areas)]
            originals[f"mowas{i}"] = (MOWAS_SENDER, ident, sent, area)
            out.append(Trigger(f"mowas-{i}.xml", cap(ident, MOWAS_SENDER, sent, event="Gefahrendurchsage",
                                                     area=area), "inbox", "mowas"))
        if i < katwarn:
            out.append(Trigger(f"katwarn-{i}.xml", cap(f"katwarn.{tag}.{i}", "warnung@katwarn.de", sent,
                                                       event="Gefahreninformation", area=areas[i % len(areas)]),
                               "inbox", "katwarn"))
        if i < biwapp:
            out.append(Trigger(f"biwapp-{i}.xml", cap(f"biwapp.{tag}.{i}", "lage@biwapp.de", sent,
                                                      event="Unwetter", area=areas[(i + 2) % len(areas)]),
                               "inbox", "biwapp"))
    later = base + timedelta(seconds=30)
    for i in range(copies):  # the same DWD warning again, through the second source: one thread, no second push
        sender, ident, sent, event = originals[f"dwd{i}"]
        out.append(Trigger(f"copy-{i}.xml", cap(ident, sender, sent, event=event, warncell=True), "nina", "copy"))
    for i in range(updates):  # significant: the validity changes
        sender, ident, sent, event = originals[f"dwd{i}"]
        out.append(Trigger(f"update-{i}.xml", cap(f"{ident}.u", sender, later + timedelta(seconds=i), event=event,
                                                  msg_type="Update", references=f"{sender},{ident},{sent.isoformat()}",
                                                  warncell=True, expires_h=9.0), "inbox", "update"))
    for i in range(cancels):
        sender, ident, sent, area = originals[f"mowas{i}"]
        out.append(Trigger(f"cancel-{i}.xml", cap(f"{ident}.c", sender, later + timedelta(seconds=10 + i),
                                                  event="Entwarnung", msg_type="Cancel", area=area,
                                                  references=f"{sender},{ident},{sent.isoformat()}"),
                           "inbox", "cancel"))
    out.append(Trigger("extreme.xml", cap(f"mow.{MOWAS_SENDER}-{tag}-extreme", MOWAS_SENDER,
                                          later + timedelta(seconds=20), event="Gefahrendurchsage",
                                          severity="Extreme", area="all"), "inbox", "extreme"))
    return out


NINA_SOURCE = """
[[sources]]
type = "directory"
name = "nina-replay"
path = "nina-inbox"
interval_s = 0.2
"""
"""The second source: copies of warnings the CAP inbox also gets (as NINA carries DWD's)."""
