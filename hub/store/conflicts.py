"""CAP identity conflicts: the same (sender, identifier, sent) arriving again with other content.

CAP says a message's identity is its sender, identifier and sent time; a second copy with the same identity but
other content is either a relay that changed it or a forgery. Whichever came first, neither is dropped silently:

- Content is compared as bytes and as the canonical JSON of the parsed alert (times as instants, whatever their
  offset; polygon rings that enclose nothing left out, as relays drop them); equal is a plain duplicate.
- The store keeps one version per identity (``alerts``); the other copy goes to ``conflicts`` with its raw bytes,
  origin, signature status and verdict, and ``replaced`` = 1 when it is the earlier copy that was displaced.
- The copy with the better signature wins (:data:`SIGNATURE_RANK`: valid > weak/expired/untrusted > absent or
  unchecked > invalid); on a tie the first one stays. A later, better-signed copy replaces the stored version's
  content (same row, same id: threads and thread keys follow its references, the thread's state is recomputed).
- Decisions: a replaced version loses the rules decision of every district that made no publication from it yet
  (and those districts' drafts still pending, rendered from the displaced content), so the router decides and drafts
  again on the winning content; drafts a person already took stay. A district that published it keeps its decision
  (a publication is never made twice from one version); ``published`` = 1 on the conflict says so, and the operator
  acts from the console.
- The stored version's flags name the conflict (a warning), the console inbox lists conflicts, and the daemon
  counts them in ``warnhub_identity_conflicts_total``.

Copies an adapter converted from another format (NINA JSON, ``relay`` on intake, ``"relay": true`` in the
version's flags) differ from the CAP original by form (HTML as text, ARS geocodes added), so a relay copy and any
other copy of its identity are a plain duplicate, as before: first arrival wins. A forgery that only reaches the hub
through such a relay is not caught here.

Thread keys of a displaced copy stay (a thread it joined stays joined): keys are only ever added.
Functions here take the writer's connection inside the store's transaction (:meth:`hub.store.db.Store.add_record`),
or a (read-only) store for the console.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

SIGNATURE_RANK = {"valid": 3, "weak": 2, "expired": 2, "untrusted": 2, "absent": 1, "unchecked": 1, "invalid": 0}
"""Which copy of one identity the store keeps: the higher rank; equal ranks keep the first."""

_COLS = ("id", "alert_id", "sender", "identifier", "sent", "received_at", "origin", "signature", "verdict",
         "sha256", "replaced", "published", "kept_origin", "kept_signature")


_TIMES = frozenset({"sent", "effective", "onset", "expires"})


def same_content(a_json: str, b_json: str) -> bool:
    """Whether two copies say the same: equal canonical JSON, times compared as instants (a relay that writes
    ``sent`` in UTC instead of +01:00 changed no content)."""
    if a_json == b_json:
        return True
    try:
        return bool(_instants(json.loads(a_json)) == _instants(json.loads(b_json)))
    except ValueError:
        return False


def _instants(node: Any) -> Any:
    """Times as UTC instants; polygon rings of fewer than three distinct points (they enclose nothing, and relays
    such as NINA drop them) left out."""
    if isinstance(node, dict):
        out = {k: _utc(v) if k in _TIMES and isinstance(v, str) else _instants(v) for k, v in node.items()}
        if isinstance(out.get("polygon"), list):
            out["polygon"] = [r for r in out["polygon"] if not isinstance(r, list) or len({repr(p) for p in r}) >= 3]
            if not out["polygon"]:
                del out["polygon"]
        return out
    if isinstance(node, list):
        return [_instants(v) for v in node]
    return node


def _utc(text: str) -> str:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return text
    return when.astimezone(UTC).isoformat() if when.tzinfo is not None else text


def mark_relay(flags: str) -> str:
    """The flags of a version an adapter converted from another format, marked as such (``"relay": true``)."""
    doc = _flags(flags)
    doc["relay"] = True
    return json.dumps(doc, ensure_ascii=False)


def relayed(conn: sqlite3.Connection, alert_id: int, incoming_flags: str) -> bool:
    """Whether either copy is a relay's conversion (NINA JSON rendered as CAP): it differs from the CAP original
    by form (HTML turned to text, ARS geocodes added), so the two are not compared."""
    if _flags(incoming_flags).get("relay"):
        return True
    row = conn.execute("SELECT flags FROM alerts WHERE id=?", (alert_id,)).fetchone()
    return bool(row and _flags(row[0]).get("relay"))


def _flags(flags: str | None) -> dict[str, Any]:
    try:
        doc = json.loads(flags) if flags else {}
    except ValueError:
        doc = {}
    return doc if isinstance(doc, dict) else {}


def better(new: str, old: str) -> bool:
    """Whether a copy signed ``new`` should replace a stored one signed ``old``."""
    return SIGNATURE_RANK.get(new, 1) > SIGNATURE_RANK.get(old, 1)


def record(conn: sqlite3.Connection, *, alert_id: int, aside: dict[str, Any], kept: Mapping[str, object],
           replaced: bool, received: str) -> bool:
    """Keep the copy that is not the stored version (``aside``: sender, identifier, sent, origin, signature, verdict,
    raw, json) and flag the stored one. ``replaced``: the aside copy is the earlier one, displaced. Returns whether
    a publication was already made from the version (its decision then stays)."""
    published = replaced and _published(conn, alert_id)
    if replaced:
        # each district that published nothing of it yet decides again on the winning content; a draft still
        # pending was rendered from the displaced content: drafted again
        issued = "(SELECT p.district FROM publications p WHERE p.source_alert=?)"
        conn.execute(f"DELETE FROM decisions WHERE alert_id=? AND district NOT IN {issued}", (alert_id, alert_id))
        conn.execute(f"DELETE FROM drafts WHERE alert_id=? AND state='pending' AND district NOT IN {issued}",
                     (alert_id, alert_id))
    raw = bytes(aside["raw"] or b"")  # the stored copy's bytes may have gone with [retention] raw_days
    conn.execute(
        "INSERT INTO conflicts (alert_id, sender, identifier, sent, received_at, origin, signature, verdict, sha256,"
        " raw, json, replaced, published, kept_origin, kept_signature) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (alert_id, aside["sender"], aside["identifier"], aside["sent"], received, aside["origin"],
         aside["signature"], aside["verdict"], hashlib.sha256(raw).hexdigest(), raw, aside["json"], int(replaced),
         int(published), kept["origin"], kept["signature"]))
    return published


def flag(flags: str, note: str) -> str:
    """The version's flags JSON with one more warning."""
    doc = _flags(flags)
    doc.setdefault("errors", [])
    doc.setdefault("warnings", []).append(note)
    return json.dumps(doc, ensure_ascii=False)


def note(origin: str, signature: str, *, replaced: bool) -> str:
    if replaced:
        return (f"identity conflict: this content (signature {signature}) replaced an earlier copy from {origin} "
                "with other content; the earlier copy is kept in conflicts")
    return (f"identity conflict: a copy from {origin} with other content (signature {signature}) arrived later; "
            "kept in conflicts, this version stays")


def recent(store: Any, *, limit: int = 20) -> dict[str, Any]:
    """For the console inbox: how many conflicts there are and the latest ``limit`` (without the raw bytes), each
    with the stored version's thread."""
    count = store.conn.execute("SELECT count(*) FROM conflicts").fetchone()[0]
    rows = store.conn.execute(
        f"SELECT {', '.join('c.' + c for c in _COLS)}, a.thread_id FROM conflicts c"
        " LEFT JOIN alerts a ON a.id = c.alert_id ORDER BY c.id DESC LIMIT ?", (limit,)).fetchall()
    return {"count": count, "items": [dict(zip((*_COLS, "thread_id"), r, strict=True)) for r in rows]}


def of_alert(store: Any, alert_id: int) -> list[dict[str, Any]]:
    """The conflicting copies of one stored version, oldest first, with their raw bytes."""
    rows = store.conn.execute(f"SELECT {', '.join(_COLS)}, raw FROM conflicts WHERE alert_id=? ORDER BY id",
                              (alert_id,)).fetchall()
    return [dict(zip((*_COLS, "raw"), r, strict=True)) for r in rows]


def _published(conn: sqlite3.Connection, alert_id: int) -> bool:
    return conn.execute(
        "SELECT 1 FROM publications WHERE source_alert=?", (alert_id,)).fetchone() is not None
