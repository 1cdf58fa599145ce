"""The index's answer kept as bytes (hub.publish.matched) and the fan-out's preparation of it (hub.deliver.fanout):
the JSON chunks written for the fan-out are exactly what json.dumps gives, for any id."""

from __future__ import annotations

import json
import secrets

import numpy as np

from hub.deliver import fanout
from hub.publish.matched import Matched


def test_a_sequence_of_str() -> None:
    ids = [secrets.token_urlsafe(16) for _ in range(7)]
    m = Matched(np.array([i.encode() for i in ids], dtype="S"))
    assert len(m) == 7 and list(m) == ids and m[0] == ids[0] and m[-1] == ids[-1]
    assert list(m[2:5]) == ids[2:5] and isinstance(m[2:5], Matched)
    assert m == ids and set(m) == set(ids) and ids[3] in m
    assert Matched.concat([np.array([b"a"], "S"), np.zeros(0, "S1"), np.array([b"bb"], "S")]) == ["a", "bb"]
    assert len(Matched()) == 0 and list(Matched.concat([])) == []


def test_json_chunks_are_json_dumps_of_the_ids() -> None:
    ids = [secrets.token_urlsafe(16) for _ in range(23)]
    m = Matched(ids)
    chunks = m.json_chunks(5)
    assert [json.loads(c) for c in chunks] == [ids[i:i + 5] for i in range(0, 23, 5)]
    assert chunks == [json.dumps(ids[i:i + 5], separators=(",", ":")) for i in range(0, 23, 5)]


def test_an_id_json_must_escape_falls_back_to_json_dumps() -> None:
    ids = ["plain", 'quo"te', "comma,inside", "back\\slash", "ümlaut", "x"]
    chunks = Matched(ids).json_chunks(4)
    assert [json.loads(c) for c in chunks] == [ids[:4], ids[4:]]


def test_prepare_splits_the_same_for_the_index_answer_and_a_list() -> None:
    ids = [secrets.token_urlsafe(16) for _ in range(12_345)]
    from_list, from_index = fanout.prepare(ids), fanout.prepare(Matched(ids))
    assert from_index.first == from_list.first == ids[:fanout.FIRST_CHUNK]
    assert [json.loads(c) for c in from_index.chunks] == [json.loads(c) for c in from_list.chunks]
    assert from_index.total == from_list.total == len(ids)
    rest = [i for c in from_index.chunks for i in json.loads(c)]
    assert rest == ids[fanout.FIRST_CHUNK:] and all(len(json.loads(c)) <= fanout.CHUNK for c in from_index.chunks)
