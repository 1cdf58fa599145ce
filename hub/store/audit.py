"""Archiving the audit log without breaking its hash chain.

The audit table grows with every action. It is pruned only from its oldest end, and only as a verified segment:
:func:`archive` verifies the whole chain, writes the entries before a date to a file (JSON lines, each with its
``prev_hash`` and ``hash``, so the file verifies on its own), records an **anchor** (the last archived entry's seq
and hash, and the file's SHA-256) and deletes the segment, all in one durable transaction after the file is
on disk. The chain in the table then continues from the anchor (``Store.verify_audit``), and
:func:`verify_archive` checks a file against its anchor: rows deleted from the middle, an altered table or an
altered file are all detected.

Functions take the :class:`~hub.store.db.Store` and run on its writer thread.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hub.errors import StoreError
from hub.store.chain import GENESIS, _audit_hash
from hub.store.clock import now_utc, utc_iso
from hub.store.db import Store

_COLS = ("seq", "ts", "actor", "action", "subject", "detail", "prev_hash", "hash")


@dataclass(frozen=True, slots=True)
class Archived:
    entries: int
    """Entries written to the file and deleted from the table (0: nothing older than ``before``)."""
    first_seq: int
    last_seq: int
    hash: str
    """The anchor: hash of the last archived entry."""
    sha256: str
    """Of the archive file."""
    file: Path | None


def archive(store: Store, before: datetime, out: Path, *, actor: str, now: datetime | None = None) -> Archived:
    """Move the audit entries older than ``before`` to ``out`` (a new file) and anchor the chain after them.

    Refuses (StoreError, nothing written or deleted) when the chain does not verify or ``out`` exists. Writes no
    file when there is nothing to archive. The archiving itself is audited (in the continuing chain)."""
    check = store.verify_audit()
    if not check.ok:
        raise StoreError(f"the audit chain does not verify, nothing archived: {check.reason}")
    # the oldest entries up to the first one at or after ``before``: a segment without gaps even if the clock
    # went back once (a later entry with an earlier time stays in the table)
    rows = store.conn.execute(
        f"SELECT {', '.join(_COLS)} FROM audit WHERE seq < coalesce((SELECT min(seq) FROM audit WHERE ts >= ?),"
        " 9223372036854775807) ORDER BY seq", (utc_iso(before),)).fetchall()
    if not rows:
        return Archived(0, 0, 0, store.audit_anchor()[1], "", None)
    last_seq = rows[-1][0]
    digest = _write(out, [dict(zip(_COLS, r, strict=True)) for r in rows])
    stamp = utc_iso(now or now_utc())
    with store.transaction(durable=True) as conn:
        if conn.execute("SELECT seq, hash FROM audit WHERE seq=?", (last_seq,)).fetchone() != (last_seq, rows[-1][7]):
            raise StoreError("the audit log changed while it was archived; nothing deleted")
        conn.execute("INSERT INTO audit_anchors (seq, hash, first_seq, entries, file, sha256, archived_at)"
                     " VALUES (?,?,?,?,?,?,?)", (last_seq, rows[-1][7], rows[0][0], len(rows), str(out), digest,
                                                 stamp))
        conn.execute("DELETE FROM audit WHERE seq <= ?", (last_seq,))
        store.audit(actor, "audit.archive", str(out), {"first_seq": rows[0][0], "last_seq": last_seq,
                                                       "hash": rows[-1][7], "sha256": digest}, now=now)
    return Archived(len(rows), rows[0][0], last_seq, rows[-1][7], digest, out)


def _write(out: Path, entries: list[dict[str, Any]]) -> str:
    """Write the entries as JSON lines to a new file, on disk before it returns; its SHA-256."""
    data = b"".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for e in entries)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    except FileExistsError:
        raise StoreError(f"{out}: exists already; choose a new file for the archive") from None
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    folder = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the new file's name is on disk too
    finally:
        os.close(folder)
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class ArchiveCheck:
    ok: bool
    entries: int
    reason: str = ""


def verify_archive(store: Store, file: Path) -> ArchiveCheck:
    """Does an archive file hold exactly the segment its anchor recorded? Its SHA-256 must be the anchor's, its
    chain must verify from the genesis or from the anchor before it, and its last hash must be the anchor's."""
    try:
        data = file.read_bytes()
    except OSError as err:
        return ArchiveCheck(False, 0, f"{file}: cannot read: {err}")
    digest = hashlib.sha256(data).hexdigest()
    anchor = store.conn.execute("SELECT seq, hash, first_seq, entries FROM audit_anchors WHERE sha256=?",
                                (digest,)).fetchone()
    if anchor is None:
        return ArchiveCheck(False, 0, f"{file}: no anchor records this file (SHA-256 {digest}): altered or unknown")
    seq, anchor_hash, first_seq, count = anchor
    before = store.conn.execute("SELECT seq, hash FROM audit_anchors WHERE seq < ? ORDER BY seq DESC LIMIT 1",
                                (seq,)).fetchone()
    prev_seq, prev = before if before else (0, GENESIS)
    if first_seq != prev_seq + 1:
        return ArchiveCheck(False, 0, f"{file}: starts at entry {first_seq}, the chain before ends at {prev_seq}")
    n = 0
    for n, line in enumerate(data.splitlines(), start=1):
        try:
            e = json.loads(line)
            want = prev_seq + n
            if e["seq"] != want or e["prev_hash"] != prev:
                return ArchiveCheck(False, n - 1, f"{file}: entry {want} does not chain to entry {want - 1}")
            prev = _audit_hash(prev, want, e["ts"], e["actor"], e["action"], e["subject"], e["detail"])
            if prev != e["hash"]:
                return ArchiveCheck(False, n - 1, f"{file}: entry {want} was altered (hash mismatch)")
        except (ValueError, KeyError, TypeError) as err:
            return ArchiveCheck(False, n - 1, f"{file}: line {n} is not an audit entry: {err}")
    if n != count or prev != anchor_hash:
        return ArchiveCheck(False, n, f"{file}: does not end at the anchor (entry {seq})")
    return ArchiveCheck(True, n)
