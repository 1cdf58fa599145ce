"""NINA's references repaired (see :mod:`adapters.sources.nina_convert`, **References**): well-formed
``sender,identifier,sent`` triples pass; malformed ones are rebuilt from their parts, every repair noted.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from adapters.sources.nina_fields import _berlin_offset, _Notes, _str, strip_prefix
from hub.cap.model import Reference

_MOWAS_ID = re.compile(r"^(DE-[A-Z]{2}-[A-Z0-9]+-[A-Z]*[0-9]+)-(\d{8})-\d+(?:-\d+)*$")
_MOWAS_STATION = re.compile(r"^DE-[A-Z]{2}-[A-Z0-9]+-[A-Z]*[0-9]+$")
_TIME_LIKE = re.compile(r"\d{1,4}-.*T.*:|^\d{4}-\d\d-\d\d")


# -- references ---------------------------------------------------------------------------------------------------

def _mowas_parts(identifier: str) -> tuple[str, date] | None:
    m = _MOWAS_ID.match(identifier)
    if not m:
        return None
    try:
        day = datetime.strptime(m.group(2), "%Y%m%d").date()
    except ValueError:
        return None
    return m.group(1), day


def _is_identifier(token: str) -> bool:
    return (token != strip_prefix(token) or token.startswith(("kat.", "lhp.")) or bool(_MOWAS_ID.match(token))
            or token.startswith("2.49.0."))


def repair_references(value: Any, *, sender: str, sent: datetime,
                      notes: _Notes | None = None) -> tuple[Reference, ...]:
    """CAP references from NINA's ``references`` (see the module docstring); every repair is noted."""
    notes = notes if notes is not None else _Notes()
    if isinstance(value, list):
        value = " ".join(str(v) for v in value if v is not None)
    text = _str(value)
    if text is None:
        return ()
    refs: dict[tuple[str, str], Reference] = {}
    rest: list[str] = []
    for token in text.split():
        parts = token.split(",")
        if len(parts) == 3 and parts[0] and parts[1] and _TIME_LIKE.search(parts[2]):
            try:
                when = datetime.fromisoformat(parts[2])
            except ValueError:
                rest.append(token)
                continue
            if when.tzinfo is not None:
                ident = strip_prefix(parts[1])
                ref_sender = parts[0]
                derived = _mowas_parts(ident)
                if derived and ref_sender != derived[0] and derived[0].startswith(ref_sender):
                    notes.add(f"references: truncated sender {ref_sender!r} of {ident} read as {derived[0]!r}")
                    ref_sender = derived[0]
                refs.setdefault((ref_sender, ident), Reference(sender=ref_sender, identifier=ident, sent=when))
                continue
        rest.append(token)
    if rest:
        _rebuild(rest, refs, sender=sender, sent=sent, notes=notes)
    return tuple(refs.values())


def _parts(tokens: list[str]) -> tuple[list[str], list[str], list[datetime], list[str]]:
    """The identifiers, senders, times and unreadable parts among the parts of malformed references."""
    idents: list[str] = []
    senders: list[str] = []
    times: list[datetime] = []
    dropped: list[str] = []
    for item in (p for t in tokens for p in t.split(",") if p):
        if _is_identifier(item):
            ident = strip_prefix(item)
            if ident not in idents:
                idents.append(ident)
        elif _TIME_LIKE.search(item):
            try:
                when = datetime.fromisoformat(item)
            except ValueError:
                dropped.append(item)
                continue
            times.append(when if when.tzinfo else when.replace(tzinfo=_berlin_offset(when.date())))
        elif "@" in item or _MOWAS_STATION.match(item):
            senders.append(item)
        else:
            dropped.append(item)
    return idents, senders, times, dropped


def _times(idents: list[str], times: list[datetime], notes: _Notes) -> dict[str, datetime]:
    """Which identifier each time belongs to: in order when they are as many, else by the MoWaS date."""
    if len(times) == len(idents):
        return dict(zip(idents, times, strict=True))
    given: dict[str, datetime] = {}
    free = list(idents)
    for when in reversed(times):  # a time goes to the last identifier whose MoWaS date matches it
        days = {when.date(), when.astimezone(UTC).date()}
        match = next((i for i in reversed(free) if (p := _mowas_parts(i)) and p[1] in days), None)
        if match is not None:
            given[match] = when
            free.remove(match)
        else:
            notes.add(f"references: time {when.isoformat()} matches no referenced identifier: dropped")
    return given


def _rebuild(tokens: list[str], refs: dict[tuple[str, str], Reference], *, sender: str, sent: datetime,
             notes: _Notes) -> None:
    """Rebuild references from the parts of malformed entries (lists inside the fields, broken times)."""
    idents, senders, times, dropped = _parts(tokens)
    if dropped:
        notes.add(f"references: unreadable part(s) dropped: {', '.join(repr(d) for d in dropped[:5])}")
    if not idents:
        notes.add("references: no identifier found in malformed references: none kept")
        return
    given = _times(idents, times, notes)
    estimated = unknown_sender = 0
    for n, ident in enumerate(idents):
        parts = _mowas_parts(ident)
        if parts:
            ref_sender = parts[0]
        elif len(senders) == len(idents):
            ref_sender = senders[n]
        elif len(set(senders)) == 1:
            ref_sender = senders[0]
        else:
            ref_sender = sender
            unknown_sender += 1
        ref_sent = given.get(ident)
        if ref_sent is None:
            if parts:
                ref_sent = datetime.combine(parts[1], datetime.min.time(), tzinfo=_berlin_offset(parts[1]))
            else:
                ref_sent = sent
            estimated += 1
        refs.setdefault((ref_sender, ident), Reference(sender=ref_sender, identifier=ident, sent=ref_sent))
    notes.add(f"references were malformed ({len(tokens)} part(s) not 'sender,identifier,sent'): rebuilt as "
              f"{len(idents)} reference(s), senders taken from the MoWaS identifiers where possible")
    if estimated:
        notes.add(f"references: sent time estimated for {estimated} reference(s) (the date in the MoWaS "
                  "identifier at 00:00 Europe/Berlin, else this message's sent)")
    if unknown_sender:
        notes.add(f"references: sender unknown for {unknown_sender} reference(s): this message's sender used")
