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
              *, now: datetime | None = None, district: str = "") -> int:
        """Append to the hash chain of ``district`` (a Kreis key; ``''``: the hub's own chain): each entry carries
        the hash of the one before it in its chain. Each district's chain verifies on its own (issue 19: an
        authority's audit is its own)."""
        ts = utc_iso(now or now_utc())
        body = json.dumps(detail or {}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        with self.transaction() as conn:
            seq = conn.execute("SELECT coalesce((SELECT max(seq) FROM audit), (SELECT max(seq) FROM audit_anchors),"
                               " 0)").fetchone()[0] + 1  # every chain's archived entries counted (one per chain)
            prev = self._chain_head(conn, district)
            digest = _audit_hash(prev, seq, ts, actor, action, subject, body, district)
            conn.execute("INSERT INTO audit (seq, ts, actor, action, subject, detail, prev_hash, hash, district)"
                         " VALUES (?,?,?,?,?,?,?,?,?)", (seq, ts, actor, action, subject, body, prev, digest, district))
        return seq

    def _chain_head(self, conn: Any, district: str) -> str:
        last = conn.execute("SELECT hash FROM audit WHERE district=? ORDER BY seq DESC LIMIT 1",
                            (district,)).fetchone()
        return str(last[0]) if last else self.audit_anchor(district)[1]

    def audit_entries(self, district: str | None = None) -> list[dict[str, Any]]:
        """The entries in the table, oldest first: of one chain, or (None) of every chain."""
        cols = ("seq", "ts", "actor", "action", "subject", "detail", "prev_hash", "hash", "district")
        where, args = ("WHERE district=?", (district,)) if district is not None else ("", ())
        return [dict(zip(cols, r, strict=True)) for r in
                self.conn.execute(f"SELECT {','.join(cols)} FROM audit {where} ORDER BY seq", args)]

    def audit_chains(self) -> list[str]:
        """The districts with a chain (``''``, the hub's own, first)."""
        rows = self.conn.execute("SELECT district FROM audit UNION SELECT district FROM audit_anchors").fetchall()
        return sorted({str(r[0]) for r in rows} | {""})

    def audit_anchor(self, district: str = "") -> tuple[int, str]:
        """Seq and hash of the last archived entry of a chain (where it continues in the table), or (0, GENESIS)."""
        row = self.conn.execute("SELECT seq, hash FROM audit_anchors WHERE district=? ORDER BY seq DESC LIMIT 1",
                                (district,)).fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def verify_audit(self, district: str | None = None) -> AuditCheck:
        """Recompute one chain (``district``), or every chain (None: the first that fails, else the total), from
        its anchor: the genesis, or the last entry archived by ``warnhub audit archive`` (whose file
        :func:`hub.store.audit.verify_archive` checks). An entry deleted from the middle breaks the next one's
        ``prev_hash``; an altered entry its own hash."""
        if district is None:
            total = 0
            for chain in self.audit_chains():
                check = self.verify_audit(chain)
                if not check.ok:
                    return check
                total += check.entries
            return AuditCheck(True, total, anchor=self.audit_anchor()[0])
        anchor, prev = self.audit_anchor(district)
        last = anchor
        n = 0
        for n, entry in enumerate(self.audit_entries(district), start=1):
            seq = entry["seq"]
            name = f"entry {seq}" + (f" of district {district}" if district else "")
            if seq <= last:
                return AuditCheck(False, n - 1, seq, f"{name} is out of order", anchor)
            if entry["prev_hash"] != prev:
                gap = self._first_absent(last, seq)
                reason = f"entry {gap} is missing" if gap is not None else \
                    f"{name} does not carry the hash of the entry before it in its chain"
                return AuditCheck(False, n - 1, gap or seq, reason, anchor)
            digest = _audit_hash(prev, seq, entry["ts"], entry["actor"], entry["action"], entry["subject"],
                                 entry["detail"], district)
            if digest != entry["hash"]:
                return AuditCheck(False, n - 1, seq, f"{name} was altered (hash mismatch)", anchor)
            prev, last = digest, seq
        return AuditCheck(True, n, anchor=anchor)

    def _first_absent(self, after: int, before: int) -> int | None:
        """The first seq between two entries of a chain that no chain has: a deleted entry (seqs are dense)."""
        archived = self.conn.execute("SELECT max(seq) FROM audit_anchors WHERE seq < ?", (before,)).fetchone()[0]
        after = max(after, int(archived or 0))  # another chain's archived entries are gone, not missing
        have = {int(r[0]) for r in self.conn.execute("SELECT seq FROM audit WHERE seq > ? AND seq < ?",
                                                         (after, before))}
        return next((s for s in range(after + 1, before) if s not in have), None)


def _audit_hash(prev: str, seq: int, ts: str, actor: str, action: str, subject: str, detail: str,
                district: str = "") -> str:
    """An entry's hash; a district's entry also hashes its district (the hub's own, ``''``, as before migration 8)."""
    fields: list[Any] = [prev, seq, ts, actor, action, subject, detail]
    if district:
        fields.append(district)
    payload = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()

