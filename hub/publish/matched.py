"""The subscriptions a warning reaches, as :meth:`hub.publish.index.SubscriptionIndex.match` answers them: a
read-only sequence of ids kept in the index's own byte array until someone needs them as Python strings.

At 1,000,000 matches, making a million ``str`` objects took 0.27 s and building the fan-out's JSON chunks from them
another few tenths, all before the first push could leave (issue 16: the first push within a second at any size).
The pipeline needs only the first ``FIRST_CHUNK`` ids as strings (their rows are written in the publication's own
transaction) and the rest as JSON arrays for the ``fanout`` table; :meth:`Matched.json_chunks` joins the bytes
directly (ids are ``secrets.token_urlsafe``: letters, digits, ``-`` and ``_``; any other id falls back to
:func:`json.dumps`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import overload

import numpy as np

_SAFE = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class Matched(Sequence[str]):
    """Subscription ids (sorted by id), backed by a numpy ``S`` array."""

    __slots__ = ("_ids",)

    def __init__(self, ids: np.ndarray | Sequence[str] = ()) -> None:
        if isinstance(ids, np.ndarray):
            self._ids = ids if ids.dtype.kind == "S" else ids.astype("S")
        else:
            self._ids = np.array([i.encode() for i in ids], dtype="S") if len(ids) else np.zeros(0, "S1")

    @staticmethod
    def concat(parts: Sequence[np.ndarray]) -> Matched:
        found = [p for p in parts if len(p)]
        if not found:
            return Matched()
        return Matched(found[0] if len(found) == 1 else np.concatenate(found))

    def __len__(self) -> int:
        return len(self._ids)

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> Matched: ...

    def __getitem__(self, i: int | slice) -> str | Matched:
        if isinstance(i, slice):
            return Matched(self._ids[i])
        return bytes(self._ids[i]).decode()

    def __iter__(self) -> Iterator[str]:
        return (b.decode() for b in self._ids.tolist())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Matched):
            return bool(np.array_equal(self._ids, other._ids))
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._ids.tobytes())

    def __repr__(self) -> str:
        shown = ", ".join(repr(s) for s in self[:3])
        return f"Matched({len(self)}: {shown}{', ...' if len(self) > 3 else ''})"

    def json_chunks(self, size: int) -> list[str]:
        """The ids as JSON arrays of ``size`` ids each (the last one shorter), in order."""
        out = []
        for start in range(0, len(self._ids), size):
            part: list[bytes] = self._ids[start:start + size].tolist()
            blob = b'","'.join(part)
            if blob.translate(None, _SAFE) == b'","' * (len(part) - 1):  # nothing but safe ids and separators
                out.append('["' + blob.decode("ascii") + '"]')
            else:
                out.append(json.dumps([p.decode() for p in part]))
        return out
