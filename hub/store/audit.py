"""Archiving the audit log without breaking its hash chains.

The audit table grows with every action. It is pruned only from its oldest end, and only as a verified segment:
:func:`archive` verifies every chain, writes the entries before a date to a file (JSON lines, each with its
``prev_hash`` and ``hash``, and its ``district`` when it is a district's, so the file verifies on its own), records
an **anchor** per chain (the chain's last archived entry's seq and hash, and the file's SHA-256; issue 19: the hub's
own chain and each district's, ``audit_anchors.district``) and deletes the segment, all in one durable transaction
after the file is on disk. Each chain in the table then continues from its anchor (``Store.verify_audit``), and
:func:`verify_archive` checks a file against its anchors: rows deleted from the middle, an altered table or an
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
class Segment:
    """One chain's part of an archive: its anchor."""

    district: str
    """The chain (a Kreis key; ``''``: the hub's own)."""
    first_seq: int
    last_seq: int
    entries: int
    hash: str


@dataclass(frozen=True, slots=True)
class Archived:
    entries: int
    """Entries written to the file and deleted from the table (0: nothing older than ``before``)."""
    first_seq: int
    last_seq: int
    hash: str
    """Hash of the last archived entry."""
    sha256: str
    """Of the archive file."""
    file: Path | None
    chains: tuple[Segment, ...] = ()
    """Each chain's segment in the file, each with an anchor of its own (issue 19: every district has a chain)."""


def archive(store: Store, before: datetime, out: Path, *, actor: str, now: datetime | None = None) -> Archived:
    """Move the audit entries older than ``before`` to ``out`` (a new file) and anchor each chain after them.

    The entries of every chain (the hub's and each district's) up to one cut go to one file, in order; each chain
    gets an anchor of its own for its last archived entry, and its archiving is audited in that chain. Refuses
    (StoreError, nothing written or deleted) when a chain does not verify or ``out`` exists. Writes no file when
    there is nothing to archive."""
    check = store.verify_audit()
    if not check.ok:
        raise StoreError(f"the audit chain does not verify, nothing archived: {check.reason}")
    # the oldest entries up to the first one at or after ``before``: a segment without gaps even if the clock
    # went back once (a later entry with an earlier time stays in the table)
    rows = store.conn.execute(
        f"SELECT {', '.join(_COLS)}, district FROM audit WHERE seq < coalesce((SELECT min(seq) FROM audit WHERE"
        " ts >= ?), 9223372036854775807) ORDER BY seq", (utc_iso(before),)).fetchall()
    if not rows:
        return Archived(0, 0, 0, store.audit_anchor()[1], "", None)
    last_seq = rows[-1][0]
    entries = [{**dict(zip(_COLS, r[:8], strict=True)), **({"district": r[8]} if r[8] else {})} for r in rows]
    digest = _write(out, entries)
    chains: dict[str, list[tuple[Any, ...]]] = {}
    for r in rows:
        chains.setdefault(str(r[8]), []).append(r)
    segments = tuple(Segment(d, seg[0][0], seg[-1][0], len(seg), seg[-1][7]) for d, seg in sorted(chains.items()))
    stamp = utc_iso(now or now_utc())
    with store.transaction(durable=True) as conn:
        if conn.execute("SELECT seq, hash FROM audit WHERE seq=?", (last_seq,)).fetchone() != (last_seq, rows[-1][7]):
            raise StoreError("the audit log changed while it was archived; nothing deleted")
        for g in segments:
            conn.execute("INSERT INTO audit_anchors (seq, hash, first_seq, entries, file, sha256, archived_at,"
                         " district) VALUES (?,?,?,?,?,?,?,?)", (g.last_seq, g.hash, g.first_seq, g.entries, str(out),
                                                                  digest, stamp, g.district))
        conn.execute("DELETE FROM audit WHERE seq <= ?", (last_seq,))
        for g in segments:
            store.audit(actor, "audit.archive", str(out), {"first_seq": g.first_seq, "last_seq": g.last_seq,
                                                           "hash": g.hash, "sha256": digest}, now=now,
                        district=g.district)
    return Archived(len(rows), rows[0][0], last_seq, rows[-1][7], digest, out, segments)


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
    """Does an archive file hold exactly the segments its anchors recorded? Its SHA-256 must be theirs, its entries
    must follow on from the archive before it without a gap, each chain's entries in it must chain from that
    chain's anchor before (or the genesis) and end at its anchor for this file. Files of one chain (before issue
    19, district ``''``) verify the same way."""
    try:
        data = file.read_bytes()
    except OSError as err:
        return ArchiveCheck(False, 0, f"{file}: cannot read: {err}")
    digest = hashlib.sha256(data).hexdigest()
    anchors = {str(a[4]): a for a in store.conn.execute(
        "SELECT seq, hash, first_seq, entries, district FROM audit_anchors WHERE sha256=? ORDER BY seq", (digest,))}
    if not anchors:
        return ArchiveCheck(False, 0, f"{file}: no anchor records this file (SHA-256 {digest}): altered or unknown")
    first = min(int(a[2]) for a in anchors.values())
    prev_seq = store.conn.execute("SELECT max(seq) FROM audit_anchors WHERE seq < ?", (first,)).fetchone()[0] or 0
    if first != prev_seq + 1:
        return ArchiveCheck(False, 0, f"{file}: starts at entry {first}, the archive before ends at {prev_seq}")
    prev = {d: _chain_start(store, d, first) for d in anchors}
    seen: dict[str, list[int]] = {d: [] for d in anchors}
    n = 0
    for n, line in enumerate(data.splitlines(), start=1):
        try:
            e = json.loads(line)
            want, district = first + n - 1, str(e.get("district", ""))
            if e["seq"] != want or district not in prev or e["prev_hash"] != prev[district]:
                return ArchiveCheck(False, n - 1, f"{file}: entry {want} does not chain to the entry before it "
                                                  "in its chain")
            prev[district] = _audit_hash(prev[district], want, e["ts"], e["actor"], e["action"], e["subject"],
                                         e["detail"], district)
            if prev[district] != e["hash"]:
                return ArchiveCheck(False, n - 1, f"{file}: entry {want} was altered (hash mismatch)")
            seen[district].append(want)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            return ArchiveCheck(False, n - 1, f"{file}: line {n} is not an audit entry: {err}")
    for district, (seq, anchor_hash, first_seq, count, _) in anchors.items():
        got = seen[district]
        if len(got) != count or not got or (got[0], got[-1]) != (first_seq, seq) or prev[district] != anchor_hash:
            chain = f" of district {district}" if district else ""
            return ArchiveCheck(False, n, f"{file}: the chain{chain} does not end at its anchor (entry {seq})")
    return ArchiveCheck(True, n)


def _chain_start(store: Store, district: str, before: int) -> str:
    """The hash a chain's first entry in a file starting at ``before`` carries: its anchor before, or the genesis."""
    row = store.conn.execute("SELECT hash FROM audit_anchors WHERE district=? AND seq < ? ORDER BY seq DESC LIMIT 1",
                             (district, before)).fetchone()
    return str(row[0]) if row else GENESIS
