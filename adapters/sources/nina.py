"""The NINA source: the BBK's warning API (warnung.bund.de), polled, filtered to the district, converted to CAP.

Each poll reads every configured list with conditional GET: ``{base}/{feed}/mapData.json`` (Germany-wide),
``{base}/dashboard/{ARS}.json`` (one Kreis, filtered by the server) and legacy ``bbk.*`` lists (whole warnings
inline). A 304 reuses what that list named at the last complete poll. For each listed warning the detail
``{base}/warnings/{id}.json`` (and, for warnings without polygons, ``.geojson``) is fetched only when the id is new
or its version changed; the decision (in the district or not, its CAP key) is remembered per (id, version), so an
unchanged list costs one 304 and nothing else.

In the district means: listed by one of our dashboards (by default every district's); or one ARS of the warning's
``warnVerwaltungsbereiche`` covers one of the hub's districts or lies in it (each district's rules then decide it for
itself); or the warning (or one it references) is already held by the hub, so updates and cancels of what we hold
always arrive. Warnings from Germany-wide lists without any ARS are skipped and counted.

Only a poll in which every list and every needed detail worked reports the complete set of current warnings to the
store (``ctx.snapshot``), which ends warnings without ``expires`` after they have been missing from
``missing_fetches_to_end`` such polls in a row. A poll where some lists or details failed is *degraded* (what came is
stored, nothing ends); one where no list could be read raises SourceError (*down*). A broken detail is a problem for
that warning only. A warning whose GeoJSON cannot be had is stored without polygons (flagged) rather than delayed.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec

from adapters.sources.nina_convert import NinaFormatError, convert_warning, decode_json, warning_ars
from adapters.sources.polling import Http, PollingSource
from hub.cap.model import Alert
from hub.errors import FetchError, SourceError
from hub.geo.registry import ars_related

if TYPE_CHECKING:
    from hub.config.load import LoadedConfig
    from hub.config.sections import NinaSourceConfig
    from hub.ports import SourceContext

DETAIL_CONCURRENCY = 8
"""Detail (and GeoJSON) requests in flight at once."""
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+=@/-]{0,299}$")


@dataclass(frozen=True, slots=True)
class Listed:
    """One warning as a list names it."""

    id: str
    version: str
    """``<kind>:<version>``: mapData ``version``, dashboard ``payload.version`` + ``hash``, else a hash of the item."""
    filtered: bool
    """The server filtered the list to a district we asked for (dashboard)."""
    warning: dict[str, Any] | None = None
    """A legacy list's whole warning."""


def parse_list(kind: str, data: bytes) -> list[Listed]:
    """The warnings a list names. ``kind``: ``map``, ``dashboard`` or ``legacy``. Raises NinaFormatError for
    anything but a JSON array of items of that kind (a list read in part could end warnings that are current)."""
    obj = decode_json(data)
    if not isinstance(obj, list):
        raise NinaFormatError(f"expected a JSON array, got a JSON {type(obj).__name__}")
    out: list[Listed] = []
    for n, item in enumerate(obj):
        if not isinstance(item, dict):
            raise NinaFormatError(f"item {n} is not an object")
        digest = hashlib.sha256(msgspec.json.encode(item)).hexdigest()[:16]
        if kind == "legacy":
            wid = item.get("identifier")
            if not isinstance(wid, str) or not wid.strip() or not isinstance(item.get("info"), list):
                raise NinaFormatError(f"item {n} is not a whole warning (identifier, info)")
            out.append(Listed(wid.strip(), f"legacy:{digest}", False, item))
            continue
        wid = item.get("id")
        if not isinstance(wid, str) or not _ID.match(wid) or ".." in wid:
            raise NinaFormatError(f"item {n}: id {str(wid)[:60]!r} is not a NINA warning id")
        if kind == "dashboard":
            payload = item.get("payload") if isinstance(item.get("payload"), dict) else {}
            assert isinstance(payload, dict)
            marks = (payload.get("version"), payload.get("hash"))
            version = f"{marks[0]}:{marks[1]}" if marks != (None, None) else digest
        else:
            version = str(item["version"]) if item.get("version") is not None else digest
        out.append(Listed(wid, f"{kind}:{version}", kind == "dashboard"))
    return out


@dataclass(frozen=True, slots=True)
class Decision:
    """What was decided about one version of a listed warning."""

    version: tuple[str, ...]
    key: tuple[str, str]
    """CAP sender and identifier."""
    in_district: bool
    """By ARS, or held by the hub already (a dashboard listing is judged per poll)."""
    has_ars: bool


def _has_polygons(alert: Alert) -> bool:
    return any(area.polygons for info in alert.infos for area in info.areas)


class NinaSource(PollingSource):
    """Polls NINA's lists and details; see the module docstring."""

    settings: NinaSourceConfig

    def __init__(self, settings: NinaSourceConfig, loaded: LoadedConfig, **_: Any) -> None:
        super().__init__(settings, loaded)
        self.districts = [d.ars for d in loaded.districts if d.ars] or [loaded.cfg.hub.district_ars]
        """Every district's Kreis key: a warning is ours if it touches any of them (fetched once for the hub)."""
        self.district = self.districts[0]
        self.dashboards = settings.dashboard_ars if settings.dashboard_ars is not None else list(self.districts)
        self.base = settings.base_url.rstrip("/")
        self._listings: dict[str, list[Listed]] = {}
        self._pending: dict[str, list[Listed]] = {}
        self._decisions: dict[str, Decision] = {}
        self.skipped_without_ars = 0
        """Listed by the last poll, not in the district and naming no ARS."""

    def list_urls(self) -> list[tuple[str, str]]:
        """(url, kind) of every list this source reads."""
        urls = [(f"{self.base}/{feed}/mapData.json", "map") for feed in self.settings.feeds]
        urls += [(f"{self.base}/dashboard/{ars}.json", "dashboard") for ars in self.dashboards]
        return urls + [(url, "legacy") for url in self.settings.legacy_urls]

    def detail_url(self, wid: str, suffix: str = "json") -> str:
        return f"{self.base}/warnings/{quote(wid, safe='.-_~+=:@')}.{suffix}"

    async def poll(self, ctx: SourceContext, http: Http) -> list[str]:
        if ctx.ingest_alert is None:
            raise SourceError("the NINA source needs ctx.ingest_alert")
        self._pending.clear()
        problems: list[str] = []
        urls = self.list_urls()
        if not urls:  # an empty "complete" list would end every warning this source ever listed
            raise SourceError("nothing to poll: no feeds, dashboards or legacy lists configured")
        results = await asyncio.gather(*(self._read_list(http, url, kind) for url, kind in urls))
        listed: dict[str, list[Listed]] = {}
        for result in results:
            if isinstance(result, str):
                problems.append(result)
                continue
            for item in result:
                listed.setdefault(item.id, []).append(item)
        if len(problems) == len(urls):
            raise SourceError("no NINA list could be read: " + "; ".join(problems[:3]))
        lists_complete = not problems

        sem = asyncio.Semaphore(DETAIL_CONCURRENCY)
        todo = []
        for wid, items in listed.items():
            version = tuple(sorted({i.version for i in items}))
            known = self._decisions.get(wid)
            if known is None or known.version != version:
                todo.append(self._item(ctx, http, sem, wid, items, version))
        problems += [p for p in await asyncio.gather(*todo) if p]

        keys: set[tuple[str, str]] = set()
        self.skipped_without_ars = 0
        for wid, items in listed.items():
            decision = self._decisions.get(wid)
            if decision is None:
                continue  # failed in this poll: already a problem
            if decision.in_district or any(i.filtered for i in items):
                keys.add(decision.key)
            elif not decision.has_ars:
                self.skipped_without_ars += 1
        if self.skipped_without_ars:
            ctx.log.debug("%d listed warning(s) without ARS skipped", self.skipped_without_ars,
                          extra={"source": self.name})
        if lists_complete:  # forget what no list names any more (a failed list's warnings are kept)
            for wid in set(self._decisions) - set(listed):
                del self._decisions[wid]
        if not problems:
            self._listings.update(self._pending)
            if ctx.snapshot is not None:
                await ctx.snapshot(self.name, sorted(keys), misses_to_end=self.settings.missing_fetches_to_end)
        self._pending.clear()
        return problems

    async def _read_list(self, http: Http, url: str, kind: str) -> list[Listed] | str:
        """The list's warnings, or the problem that kept it from being read."""
        try:
            fetched = await http.get(url)
        except FetchError as err:
            return str(err)
        if fetched is None:
            kept = self._listings.get(url)
            if kept is None:  # cannot happen while validators and listings are kept together; be safe
                http.forget(url)
                return f"{url}: 304 Not Modified but no earlier listing is kept"
            return kept
        try:
            items = parse_list(kind, fetched.body)
        except NinaFormatError as err:
            return f"{url}: {err}"
        self._pending[url] = items
        return items

    async def _item(self, ctx: SourceContext, http: Http, sem: asyncio.Semaphore, wid: str, items: list[Listed],
                    version: tuple[str, ...]) -> str | None:
        """Fetch, judge and (if in the district) store one warning; returns a problem or None."""
        async with sem:
            try:
                return await self._process(ctx, http, wid, items, version)
            except (SourceError, ValueError, TypeError, KeyError, AttributeError) as err:
                return f"{wid}: {err}"

    async def _process(self, ctx: SourceContext, http: Http, wid: str, items: list[Listed],
                       version: tuple[str, ...]) -> str | None:
        inline = next((i.warning for i in items if i.warning is not None), None)
        if inline is not None:
            obj: Any = inline
        else:
            obj = decode_json(await self._body(http, self.detail_url(wid)))
        conv = convert_warning(obj)
        ars = warning_ars(obj)
        in_district = any(ars_related(a, d) for a in ars for d in self.districts) or await self._held(ctx, conv.alert)
        problem = None
        if in_district or any(i.filtered for i in items):
            if self.settings.geojson and inline is None and not _has_polygons(conv.alert):
                try:
                    shapes = decode_json(await self._body(http, self.detail_url(wid, "geojson")))
                    conv = convert_warning(obj, geojson=shapes)
                except SourceError as err:
                    problem = f"{wid}: stored without polygons: {err}"
                    conv = type(conv)(conv.alert, conv.notes + (f"NINA: polygons missing: GeoJSON unusable: {err}",))
            assert ctx.ingest_alert is not None
            result = await ctx.ingest_alert(conv.alert, origin=self.name, notes=conv.notes,
                                            path=self.detail_url(wid) if inline is None else None)
            if result.outcome == "rejected":
                problem = f"{wid}: rejected by validation: {result.reason}"
        self._decisions[wid] = Decision(version, (conv.alert.sender, conv.alert.identifier), in_district, bool(ars))
        return problem

    @staticmethod
    async def _body(http: Http, url: str) -> bytes:
        fetched = await http.get(url, conditional=False)
        if fetched is None:  # a 304 to a request that asked for none
            raise FetchError(f"{url}: 304 Not Modified to an unconditional request")
        return fetched.body

    async def _held(self, ctx: SourceContext, alert: Alert) -> bool:
        """Does the hub hold this warning, or one it references?"""
        if ctx.known is None:
            return False
        for key in [(alert.sender, alert.identifier), *(r.key() for r in alert.references)]:
            if await ctx.known(*key):
                return True
        return False
