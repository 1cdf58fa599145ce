"""Where the core finds its adapters: Python entry points, so ``hub`` never imports ``adapters``.

Groups (declared in pyproject.toml, ``[project.entry-points."warnhub.<group>"]``):

- ``warnhub.sources``: config ``type`` -> source class (:class:`hub.ports.SourceFactory`);
- ``warnhub.channels``: channel name -> factory building its channels from the config
  (:data:`hub.ports.ChannelFactory`);
- ``warnhub.converters``: kind of saved payload (``atom``, ``dwd-zip``, ``nina``) -> converter
  (:data:`hub.ports.Converter`), for ``warnhub convert`` and rules replay;
- ``warnhub.push``: what the core needs of the Web Push channel: ``public_key`` (the VAPID key browsers subscribe
  with), ``check_endpoint`` and ``check_keys`` (the subscription API's checks).

A district's own source or channel is a package that declares an entry point in one of these groups: every installed
distribution's entries are read (:func:`importlib.metadata.entry_points`). warnhub's own entries come from the
pyproject.toml beside the ``hub`` package when the hub runs from a source checkout (an editable install's metadata is
written at install time and goes stale when pyproject.toml changes), else from the installed ``warnhub``
distribution's metadata. Every entry is loaded (imported) on first use and cached.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import cast

from hub.ports import ChannelFactory, CheckEndpoint, CheckKeys, Converter, PublicKey, SourceFactory

DISTRIBUTION = "warnhub"
CHECKOUT_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
"""pyproject.toml of a source checkout (absent in an installed wheel)."""


class RegistryError(RuntimeError):
    """Two distributions declare the same name in one group, or an entry cannot be loaded."""


def _checkout_entries(group: str) -> list[EntryPoint] | None:
    """warnhub's own entry points of ``group`` from the checkout's pyproject.toml; None outside a checkout."""
    if not CHECKOUT_PYPROJECT.is_file():
        return None
    project = tomllib.loads(CHECKOUT_PYPROJECT.read_text(encoding="utf-8")).get("project", {})
    if project.get("name") != DISTRIBUTION:
        return None
    declared: dict[str, str] = project.get("entry-points", {}).get(f"warnhub.{group}", {})
    return [EntryPoint(name, value, f"warnhub.{group}") for name, value in declared.items()]


def entries(group: str) -> dict[str, EntryPoint]:
    """The entry points of ``warnhub.<group>`` by name, from every distribution (see the module docstring)."""
    own = _checkout_entries(group)
    found: dict[str, EntryPoint] = {}
    origin: dict[str, str] = {}
    for ep in entry_points(group=f"warnhub.{group}"):
        dist = ep.dist.name if ep.dist is not None else "?"
        if own is not None and dist == DISTRIBUTION:
            continue  # the checkout's pyproject.toml describes this code; the installed metadata may be stale
        if ep.name in found and found[ep.name].value != ep.value:
            raise RegistryError(f"warnhub.{group}: {ep.name!r} is declared by {origin[ep.name]} and by {dist}")
        found[ep.name], origin[ep.name] = ep, dist
    for ep in own or ():
        if ep.name in found and found[ep.name].value != ep.value:
            raise RegistryError(f"warnhub.{group}: {ep.name!r} is declared by {origin[ep.name]} and by warnhub")
        found[ep.name], origin[ep.name] = ep, DISTRIBUTION
    return found


@functools.cache
def _loaded(group: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, ep in entries(group).items():  # declaration order (pyproject): push is built first
        try:
            out[name] = ep.load()
        except (ImportError, AttributeError) as err:
            raise RegistryError(f"warnhub.{group}: {name} = {ep.value!r} cannot be loaded: {err}") from err
    return out


def sources() -> dict[str, SourceFactory]:
    """Config ``type`` -> source class. Every entry is documented in README.md (a test checks)."""
    return cast(dict[str, SourceFactory], _loaded("sources"))


def channels() -> dict[str, ChannelFactory]:
    """Channel name -> factory; each builds its channels from the config (none when nothing is configured)."""
    return cast(dict[str, ChannelFactory], _loaded("channels"))


def converters() -> dict[str, Converter]:
    """Kind of saved payload -> converter to the core's alerts."""
    return cast(dict[str, Converter], _loaded("converters"))


@dataclass(frozen=True, slots=True)
class PushHooks:
    public_key: PublicKey
    check_endpoint: CheckEndpoint
    check_keys: CheckKeys


def push() -> PushHooks:
    """The Web Push channel's hooks the core needs; RegistryError when a hook is not registered."""
    hooks = _loaded("push")
    missing = sorted({"public_key", "check_endpoint", "check_keys"} - hooks.keys())
    if missing:
        raise RegistryError(f"warnhub.push: no entry point for {', '.join(missing)}")
    return PushHooks(cast(PublicKey, hooks["public_key"]), cast(CheckEndpoint, hooks["check_endpoint"]),
                     cast(CheckKeys, hooks["check_keys"]))


def clear() -> None:
    """Forget what was loaded (tests that change what is declared)."""
    _loaded.cache_clear()

