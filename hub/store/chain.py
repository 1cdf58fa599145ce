"""The audit log: a hash chain, each entry carrying the hash of the one before it (table ``audit``), continued from
the last archived entry (``audit_anchors``, written by :mod:`hub.store.audit`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.store.clock import now_utc, utc_iso
from hub.store.connection import Connection

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditCheck:
    ok: bool
    entries: int
    first_bad: int | None = None
    reason: str = ""
    anchor: int = 0
    """Seq of the last archived entry the chain starts from (0: from the genesis)."""


class AuditChain(Connection):
    """The audit methods of :class:`hub.store.db.Store`."""

    def audit(self, actor: str, action: str, subject: str = "", detail: dict[str, Any] | None = None,
              *, now: datetime | None = None) -> int:
        """Append to the hash chain: each entry carries the hash of the one before it."""
        ts = utc_iso(now or now_utc())
        body = json.dumps(detail or {}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        with self.transaction() as conn:
            last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone() \
                or self.audit_anchor()
            seq, prev = last[0] + 1, last[1]
            digest = _audit_hash(prev, seq, ts, actor, action, subject, body)
            conn.execute("INSERT INTO audit (seq, ts, actor, action, subject, detail, prev_hash, hash)"
                         " VALUES (?,?,?,?,?,?,?,?)", (seq, ts, actor, action, subject, body, prev, digest))
        return seq

    def audit_entries(self) -> list[dict[str, Any]]:
        cols = ("seq", "ts", "actor", "action", "subject", "detail", "prev_hash", "hash")
        return [dict(zip(cols, r, strict=True)) for r in
                self.conn.execute("SELECT " + ",".join(cols) + " FROM audit ORDER BY seq")]

    def audit_anchor(self) -> tuple[int, str]:
        """Seq and hash of the last archived entry (where the chain in the table continues), or (0, GENESIS)."""
        row = self.conn.execute("SELECT seq, hash FROM audit_anchors ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def verify_audit(self) -> AuditCheck:
        """Recompute the chain from its anchor: the genesis, or the last entry archived by ``warnhub audit
        archive`` (whose file :func:`hub.store.audit.verify_archive` checks)."""
        anchor, prev = self.audit_anchor()
        n = 0
        for n, entry in enumerate(self.audit_entries(), start=1):
            seq = anchor + n
            if entry["seq"] != seq:
                return AuditCheck(False, n - 1, entry["seq"], f"entry {seq} is missing (found {entry['seq']})",
                                  anchor)
            if entry["prev_hash"] != prev:
                return AuditCheck(False, n - 1, seq, f"entry {seq} does not carry the hash of entry {seq - 1}",
                                  anchor)
            digest = _audit_hash(prev, seq, entry["ts"], entry["actor"], entry["action"], entry["subject"],
                                 entry["detail"])
            if digest != entry["hash"]:
                return AuditCheck(False, n - 1, seq, f"entry {seq} was altered (hash mismatch)", anchor)
            prev = digest
        return AuditCheck(True, n, anchor=anchor)


def _audit_hash(prev: str, seq: int, ts: str, actor: str, action: str, subject: str, detail: str) -> str:
    payload = json.dumps([prev, seq, ts, actor, action, subject, detail], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()

