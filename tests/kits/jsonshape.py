"""The structure of JSON values, for contract tests against real samples: keys and value types, recursively.

``shape(value)`` reduces a decoded JSON value to its structure: an object to ``{key: shape}``, a list to a one-element
list holding the merged structure of all its elements (``[]`` for an empty list), a scalar to its type name (``str``,
``int``, ``float``, ``bool``, ``null``). Merging unites the keys of objects (a key any element has is in the merged
shape) and the type names of scalars (``int|str``). ``differences(ours, sample)`` lists, by JSON path, every key the
sample has and ours lacks (``missing``), every key ours adds (``extra``) and every value whose type differs
(``type``); an empty list on either side says nothing about its elements and is not compared.
"""

from __future__ import annotations

from typing import Any

Shape = Any


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def merge(a: Shape, b: Shape) -> Shape:
    """The structure of values of shape ``a`` or ``b``."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: merge(a[k], b[k]) if k in a and k in b else a.get(k, b.get(k)) for k in {**a, **b}}
    if isinstance(a, list) and isinstance(b, list):
        if not a or not b:
            return a or b
        return [merge(a[0], b[0])]
    if isinstance(a, str) and isinstance(b, str):
        return "|".join(sorted(set(a.split("|")) | set(b.split("|"))))
    return "|".join(sorted({_name(a), _name(b)}))


def _name(s: Shape) -> str:
    return "object" if isinstance(s, dict) else "list" if isinstance(s, list) else str(s)


def shape(value: Any) -> Shape:
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        out: Shape = []
        for item in value:
            out = merge(out, [shape(item)]) if out else [shape(item)]
        return out
    return _scalar(value)


def differences(ours: Shape, sample: Shape, path: str = "$") -> list[str]:
    """Where structure ``ours`` departs from ``sample`` (see the module docstring), one line per finding."""
    if isinstance(ours, dict) and isinstance(sample, dict):
        out = [f"missing {path}.{k}" for k in sample if k not in ours]
        out += [f"extra {path}.{k}" for k in ours if k not in sample]
        for k in ours:
            if k in sample:
                out += differences(ours[k], sample[k], f"{path}.{k}")
        return out
    if isinstance(ours, list) and isinstance(sample, list):
        if not ours or not sample:
            return []
        return differences(ours[0], sample[0], f"{path}[]")
    if isinstance(ours, str) and isinstance(sample, str):
        if set(ours.split("|")) <= set(sample.split("|")):
            return []
    return [f"type {path}: ours {_name(ours)}, sample {_name(sample)}"]
