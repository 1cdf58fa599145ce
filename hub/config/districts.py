"""The districts (Kreise) one hub serves: ``[[districts]]``, or the one of ``[hub] district_ars``.

Each district is its own authority (issue 19): its rules decide every external alert for it, its users see and send
only its warnings, its citizens get its pages. A region belongs to the district whose Kreis key it starts with (the
first five digits of an ARS name the Kreis: Land, Regierungsbezirk, Kreis).

A hub without ``[[districts]]`` has exactly one district, built from ``[hub]`` (``district_ars``, ``name``, ``sender``,
``rules``, ``signing_key``) and ``[console]`` — the single-district hub of earlier releases, its paths unchanged::

    ds = loaded.districts                # Districts
    d = ds.first                         # District; ds.multi: more than one
    ds.by_slug("uelzen"), ds.by_ars("033600000000"), ds.of_region("033605305001"), ds.by_host("warnung.uelzen.de")
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.config.load import LoadedConfig

KREIS_DIGITS = 5
"""An ARS's Land (2), Regierungsbezirk (1) and Kreis (2): the part that names its Kreis."""


def kreis_of(ars: str) -> str:
    """The Kreis key (12 digits) a region key lies in; a Land or Regierungsbezirk key is its own."""
    return ars[:KREIS_DIGITS].ljust(12, "0") if len(ars) >= KREIS_DIGITS else ars


@dataclass(frozen=True, slots=True)
class FourEyesSettings:
    """``[console] four_eyes``, ``single_person_extreme``, ``four_eyes_end`` as in force for one district."""

    required_for: tuple[str, ...]
    single_person_extreme: bool
    end_needs_two: bool


@dataclass(frozen=True, slots=True)
class District:
    ars: str
    """The Kreis key (12 digits)."""
    slug: str
    name: str
    sender: str
    """CAP ``sender`` of its warnings."""
    sender_name: str
    rules: tuple[Path, ...]
    """Its rules folders (resolved); empty: it has no rules (every alert unrouted for it)."""
    templates: Path | None
    """Its own compose templates folder, before the shared ones (``shared_templates``)."""
    shared_templates: Path
    host: str
    public_url: str
    signing_key: Path | None
    signing_cert: Path | None
    logo: Path | None
    colour: str | None
    four_eyes: FourEyesSettings
    index: int
    """Its place in ``[[districts]]`` (0: the first, which a single-district store's rows become)."""

    def owns(self, ars: str) -> bool:
        """Whether region ``ars`` lies in this district (a Land key does not: it is wider)."""
        return len(ars) == 12 and ars[:KREIS_DIGITS] == self.ars[:KREIS_DIGITS]


@dataclass(frozen=True, slots=True)
class Districts:
    items: tuple[District, ...]

    def __iter__(self) -> Iterator[District]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def multi(self) -> bool:
        """More than one district: per-district paths (``/{slug}/``) and per-district scoping everywhere."""
        return len(self.items) > 1

    @property
    def first(self) -> District:
        return self.items[0]

    def by_ars(self, ars: str) -> District | None:
        return next((d for d in self.items if d.ars == ars), None)

    def by_slug(self, slug: str) -> District | None:
        return next((d for d in self.items if d.slug == slug), None)

    def by_host(self, host: str) -> District | None:
        name = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else host
        return next((d for d in self.items if d.host and d.host.lower() == name), None)

    def of_region(self, ars: str) -> District | None:
        """The district region ``ars`` lies in (None: in none of them, or wider than a Kreis)."""
        return next((d for d in self.items if d.owns(ars)), None)

    def of_scopes(self, scopes: Iterable[str]) -> District | None:
        """The district a console user belongs to: the one all their scope regions lie in (a Kreis user's scope is
        the Kreis key, a Gemeinde user's a key inside it). None when they lie in none, or in several (a user of
        two authorities is refused: each authority's users are its own)."""
        found = {d.ars: d for a in scopes if (d := self.of_region(a)) is not None}
        keys = list(scopes)
        if len(found) != 1 or any(self.of_region(a) is None for a in keys):
            return None
        return next(iter(found.values()))

    def touched(self, regions: Iterable[str]) -> tuple[District, ...]:
        """The districts any of ``regions`` lies in or covers (a Land key covers each of its districts), in order."""
        keys = list(regions)
        out = []
        for d in self.items:
            if any(d.owns(a) or (a.endswith("0" * 7) and _covers(a, d.ars)) for a in keys):
                out.append(d)
        return tuple(out)


def _covers(wide: str, kreis: str) -> bool:
    """Whether a Land/Regierungsbezirk key (trailing zeros) covers Kreis key ``kreis``."""
    stem = wide.rstrip("0")
    return bool(stem) and kreis.startswith(stem) and len(stem) < KREIS_DIGITS


_SLUG_FROM = re.compile(r"[^a-z0-9]+")


def slug_of(name: str) -> str:
    """A path slug from a district's name (``Landkreis Lüchow-Dannenberg`` -> ``luechow-dannenberg``)."""
    low = name.lower()
    for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        low = low.replace(a, b)
    low = re.sub(r"^(landkreis|kreis|stadt|region)\s+", "", low)
    return _SLUG_FROM.sub("-", low).strip("-")[:40] or "kreis"


def of(loaded: LoadedConfig) -> Districts:
    """The districts of a loaded config (checked by :func:`hub.config.load.load`)."""
    cfg = loaded.cfg
    hub, console = cfg.hub, cfg.console
    shared = loaded.rules_dir / "templates"

    def four(d: object) -> FourEyesSettings:
        fe = getattr(d, "four_eyes", None)
        spe = getattr(d, "single_person_extreme", None)
        end = getattr(d, "four_eyes_end", None)
        return FourEyesSettings(tuple(fe if fe is not None else console.four_eyes),
                                spe if spe is not None else console.single_person_extreme,
                                end if end is not None else console.four_eyes_end)

    def opt(value: str | None) -> Path | None:
        return loaded.path(value) if value else None

    if not cfg.districts:
        ars = hub.district_ars or ""
        return Districts((District(
            ars=ars, slug=slug_of(hub.name), name=hub.name, sender=hub.sender, sender_name=hub.name,
            rules=(loaded.rules_dir,), templates=None, shared_templates=shared, host="",
            public_url=hub.public_url.rstrip("/"), signing_key=opt(hub.signing_key), signing_cert=opt(hub.signing_cert),
            logo=None, colour=None, four_eyes=four(console), index=0),))
    items = []
    base_url = hub.public_url.rstrip("/")
    for i, d in enumerate(cfg.districts):
        rules = tuple(loaded.path(r) for r in d.rules) or ((loaded.rules_dir,) if i == 0 else ())
        key, cert = (d.signing_key, d.signing_cert) if d.signing_key else (hub.signing_key, hub.signing_cert)
        items.append(District(
            ars=d.ars, slug=d.slug, name=d.name, sender=d.sender, sender_name=d.name, rules=rules,
            templates=opt(d.templates), shared_templates=shared, host=d.host.lower(),
            public_url=(d.public_url or (f"{base_url}/{d.slug}" if base_url else "")).rstrip("/"),
            signing_key=opt(key), signing_cert=opt(cert), logo=opt(d.logo), colour=d.colour, four_eyes=four(d),
            index=i))
    return Districts(tuple(items))
