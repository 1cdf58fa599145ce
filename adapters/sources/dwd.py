"""DWD's opendata CAP zips, filtered to the district's warncells (FACTS.md 5.2).

STAT: ``{base}/{region}_{product}_STAT/Z_CAP_C_EDZW_LATEST_PVW_STATUS_PREMIUM{product}_{region}_{language}.zip``
holds every current warning; it is fetched with a conditional GET, and a poll that read it completely is a
snapshot (DWD alerts state ``expires``, so the snapshot only matters for the store's age rule). DIFF: the folder
``{base}/{region}_{product}_DIFF/`` is an Apache index of zips of changes whose names sort by time; each zip
after the last one processed is fetched once, in name order (on first start only the newest few).

A zip is read in memory within :class:`ZipLimits` (members, total and per-member size; no absolute or ``..``
names, no encryption); a broken one is a :class:`~hub.errors.ParseError`. Each member is one CAP document, kept
when an area names a configured WARNCELLID, or when it is an Update/Cancel whose identifier or a reference the hub
already holds (so a PARTIAL_CLEAR or Cancel of our warning arrives even when it no longer names our cells).
Documents of one zip with the same sender, identifier and sent that differ only in their areas (a warning
repeated per municipality) become one alert with all areas. A document with status Actual and eventCode II 98 or
99 (Test-Warnung, Test-Unwetterwarnung) is re-issued with status Test. Those two go to ``ingest_alert`` with a
note; every other document goes to ``ingest`` as it came.
"""

from __future__ import annotations

import asyncio
import collections
import io
import logging
import re
import zipfile
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin

import msgspec

from adapters.sources.polling import Http, PollingSource
from hub.cap import parse as cap_parse
from hub.cap.model import Alert, MsgType, Status
from hub.cap.serialize import to_xml
from hub.cap.sign import SignaturePolicy
from hub.errors import FetchError, ParseError, SourceError
from hub.ports import Converted

if TYPE_CHECKING:
    from hub.config.load import LoadedConfig
    from hub.config.sections import DwdSourceConfig
    from hub.intake.documents import IntakeResult
    from hub.ports import SourceContext

log = logging.getLogger("warnhub.source.dwd")

STAT_FILE = "Z_CAP_C_EDZW_LATEST_PVW_STATUS_PREMIUM{product}_{region}_{language}.zip"
TEST_II = frozenset({"98", "99"})
"""eventCode II of DWD's test warnings: 98 Test-Warnung, 99 Test-Unwetterwarnung."""
DIFF_FIRST_START = 3
"""DIFF zips taken on first start (the newest); later polls take every zip after the last one processed."""
SNAPSHOT_MISSES = 3
"""Complete STAT polls a listed warning without ``expires`` may be missing from before it ends."""
DONE_MEMORY = 50_000
"""Versions remembered as stored, so an unchanged document in a changed STAT zip is not validated again."""

_HREF = re.compile(rb"""href\s*=\s*["']([^"'<>]+)["']""", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ZipLimits:
    """What one zip may unpack to; nothing is ever written to disk."""

    max_members: int = 20_000
    max_total: int = 256 * 1024 * 1024
    max_member: int = cap_parse.DEFAULT_MAX_BYTES


@dataclass(frozen=True, slots=True)
class Doc:
    """One CAP document of a zip (or several merged), ready for the filter."""

    name: str
    raw: bytes | None
    """The member's bytes; None when the hub must write the (changed) alert itself."""
    alert: Alert
    notes: tuple[str, ...] = ()


# -- reading zips (pure; runs in a thread) ------------------------------------------------------------------------


def read_zip(data: bytes, limits: ZipLimits) -> list[tuple[str, bytes]]:
    """The ``.xml`` members of a zip as (name, bytes); ParseError for a broken or oversized zip."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            if len(infos) > limits.max_members:
                raise ParseError(f"zip has {len(infos)} members, over the limit of {limits.max_members}")
            members: list[tuple[str, bytes]] = []
            total = 0
            for info in infos:
                name = info.filename
                if info.is_dir():
                    continue
                parts = re.split(r"[/\\]", name)
                if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
                    raise ParseError(f"zip member {name!r}: path refused")
                if info.flag_bits & 0x1:
                    raise ParseError(f"zip member {name!r} is encrypted")
                if not name.lower().endswith(".xml"):
                    log.debug("zip member %r is not .xml: skipped", name)
                    continue
                if info.file_size > limits.max_member:
                    raise ParseError(f"zip member {name!r} unpacks to {info.file_size} bytes, over the limit of "
                                     f"{limits.max_member}")
                with zf.open(info) as fh:
                    body = fh.read(limits.max_member + 1)  # never more than the limit, whatever the header says
                if len(body) > limits.max_member:
                    raise ParseError(f"zip member {name!r} unpacks to more than {limits.max_member} bytes")
                total += len(body)
                if total > limits.max_total:
                    raise ParseError(f"zip unpacks to more than {limits.max_total} bytes")
                members.append((name, body))
            return members
    except ParseError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, ValueError) as err:
        raise ParseError(f"broken zip: {type(err).__name__}: {err}") from err


def read_documents(data: bytes, limits: ZipLimits) -> tuple[list[Doc], list[str]]:
    """A zip's documents, repeats merged and test warnings marked, in ``sent`` order; and per-member problems."""
    docs: list[Doc] = []
    problems: list[str] = []
    for name, raw in read_zip(data, limits):
        try:
            parsed = cap_parse.parse(raw, max_bytes=limits.max_member)
        except ParseError as err:
            problems.append(f"{name}: {err}")
            continue
        docs.append(Doc(name, raw, parsed.alert))
    docs, more = merge_repeats(docs)
    docs = [mark_test(d) for d in docs]
    docs.sort(key=lambda d: d.alert.sent)  # an update after what it references, also within one zip
    return docs, problems + more


def _without_areas(alert: Alert) -> Alert:
    return msgspec.structs.replace(alert, infos=tuple(msgspec.structs.replace(i, areas=()) for i in alert.infos))


def merge_repeats(docs: list[Doc]) -> tuple[list[Doc], list[str]]:
    """Documents with one (sender, identifier, sent) that differ only in their areas become one with all areas."""
    groups: dict[tuple[Any, ...], list[Doc]] = {}
    for doc in docs:
        groups.setdefault(doc.alert.key(), []).append(doc)
    out: list[Doc] = []
    problems: list[str] = []
    for copies in groups.values():
        unique: dict[bytes | None, Doc] = {}
        for doc in copies:  # identical copies count once
            unique.setdefault(doc.raw, doc)
        group = list(unique.values())
        first = group[0]
        if len(group) == 1:
            out.append(first)
            continue
        names = ", ".join(d.name for d in group)
        bare = _without_areas(first.alert)
        if any(_without_areas(d.alert) != bare for d in group[1:]):
            problems.append(f"{len(group)} documents share {first.alert.sender}/{first.alert.identifier} sent "
                            f"{first.alert.sent.isoformat()} but differ beyond their areas ({names}): only "
                            f"{first.name} is used")
            out.append(first)
            continue
        infos = tuple(
            msgspec.structs.replace(info, areas=tuple(dict.fromkeys(a for d in group for a in d.alert.infos[i].areas)))
            for i, info in enumerate(first.alert.infos))
        count = sum(len(i.areas) for i in infos)
        note = f"merged {len(group)} documents repeated per municipality ({names}) into one alert with {count} areas"
        out.append(Doc(names, None, msgspec.structs.replace(first.alert, infos=infos), (note,)))
    return out, problems


def ii_test_codes(alert: Alert) -> set[str]:
    """The alert's eventCode II values that mark a DWD test warning."""
    return {e.value.strip() for i in alert.infos for e in i.event_codes if e.value_name == "II"} & TEST_II


def mark_test(doc: Doc) -> Doc:
    """A test warning (II 98/99) sent as Actual is re-issued as Test: a test must never pass as a warning."""
    codes = ii_test_codes(doc.alert)
    if doc.alert.status is not Status.ACTUAL or not codes:
        return doc
    note = (f"DWD test warning (eventCode II {', '.join(sorted(codes))}) sent with status Actual: "
            "re-issued with status Test")
    return Doc(doc.name, None, msgspec.structs.replace(doc.alert, status=Status.TEST), (*doc.notes, note))


def names_cells(alert: Alert, cells: frozenset[str]) -> bool:
    return any(g.value_name == "WARNCELLID" and g.value.strip() in cells
               for info in alert.infos for area in info.areas for g in area.geocodes)


def diff_zips(index: bytes, index_url: str, language: str) -> dict[str, str]:
    """Zip name -> URL of the DIFF folder's zips for one language, from an Apache-style HTML index."""
    found: dict[str, str] = {}
    suffix = f"_{language}.zip".lower()
    for match in _HREF.finditer(index):
        href = match.group(1).decode("utf-8", "replace").strip()
        path = href.split("?", 1)[0].split("#", 1)[0]
        name = unquote(path.rsplit("/", 1)[-1])
        if name.lower().endswith(suffix) and "LATEST" not in name.upper():
            found[name] = urljoin(index_url, path)
    return dict(sorted(found.items()))


def convert_payload(data: bytes) -> list[Converted]:
    """Every CAP document of a DWD zip as an alert (no warncell filter; repeats merged, II 98/99 made Test).

    Unreadable members are logged and skipped; a zip with none readable, or a broken zip, raises ParseError.
    """
    docs, problems = read_documents(data, ZipLimits())
    for problem in problems:
        log.warning("skipped %s", problem)
    if not docs:
        raise ParseError("zip holds no readable CAP document" + (f": {problems[0]}" if problems else ""))
    return [Converted(d.alert, d.notes) for d in docs]


# -- the source ---------------------------------------------------------------------------------------------------


class DwdSource(PollingSource):
    """Polls DWD's STAT zip or DIFF folder and ingests the documents that concern the configured warncells."""

    settings: DwdSourceConfig
    first_start_zips = DIFF_FIRST_START

    def __init__(self, settings: DwdSourceConfig, loaded: LoadedConfig, **kw: Any) -> None:
        super().__init__(settings, loaded, **kw)
        self.cells = frozenset(settings.warncells)
        self.limits = ZipLimits(max_member=loaded.cfg.validation.max_bytes)
        self.last_zip: str | None = None
        """DIFF: the name of the last zip processed (in memory: a restart takes the newest few again)."""
        self._listed: frozenset[tuple[str, str]] | None = None
        self._done: collections.OrderedDict[tuple[str, str, str], None] = collections.OrderedDict()

    @property
    def folder(self) -> str:
        s = self.settings
        return f"{s.base_url.rstrip('/')}/{s.region}_{s.product}_{s.mode}/"

    @property
    def stat_url(self) -> str:
        s = self.settings
        return self.folder + STAT_FILE.format(product=s.product, region=s.region, language=s.language)

    async def poll(self, ctx: SourceContext, http: Http) -> list[str]:
        if self.settings.mode == "STAT":
            return await self._poll_stat(ctx, http)
        return await self._poll_diff(ctx, http)

    async def _poll_stat(self, ctx: SourceContext, http: Http) -> list[str]:
        fetched = await http.get(self.stat_url)
        if fetched is None:  # unchanged: the last complete list still holds
            if self._listed is not None:
                await self._snapshot(ctx, self._listed)
            return []
        problems, listed = await self._process(ctx, fetched.body, self.stat_url)
        self._listed = None
        if not problems:
            self._listed = frozenset(listed)
            await self._snapshot(ctx, self._listed)
        return problems

    async def _snapshot(self, ctx: SourceContext, listed: frozenset[tuple[str, str]]) -> None:
        if ctx.snapshot is not None:
            await ctx.snapshot(self.name, listed, misses_to_end=SNAPSHOT_MISSES)

    async def _poll_diff(self, ctx: SourceContext, http: Http) -> list[str]:
        fetched = await http.get(self.folder)
        if fetched is None:
            return []
        zips = diff_zips(fetched.body, self.folder, self.settings.language)
        names = list(zips)
        if self.last_zip is None:
            todo = names[-self.first_start_zips:]
        else:
            todo = [n for n in names if n > self.last_zip]
            if names and todo and todo[0] == names[0]:
                ctx.log.warning("DIFF folder no longer lists zips right after %s: changes between may be missed",
                                self.last_zip, extra={"source": self.name})
        problems: list[str] = []
        read_any = False
        for name in todo:
            try:
                got = await http.get(zips[name], conditional=False)
                assert got is not None  # unconditional: never a 304
                more, _ = await self._process(ctx, got.body, name)
            except FetchError as err:  # the network failed: this zip is fetched again next poll
                if not read_any and not problems:
                    raise
                problems.append(str(err))
                break
            except ParseError as err:  # a broken zip stays broken: skip it, say so
                ctx.log.warning("DIFF zip skipped: %s", err, extra={"source": self.name})
                problems.append(str(err))
                self.last_zip = name
                continue
            problems += more
            self.last_zip = name
            read_any = True
        if todo and not read_any:
            raise SourceError("; ".join(problems))  # every new zip failed: nothing usable came
        return problems

    async def _process(self, ctx: SourceContext, body: bytes, label: str) -> tuple[list[str], set[tuple[str, str]]]:
        """Filter and ingest one zip. Returns problems and the (sender, identifier) kept; ParseError if broken."""
        try:
            docs, problems = await asyncio.to_thread(read_documents, body, self.limits)
        except ParseError as err:
            raise ParseError(f"{label}: {err}") from err
        problems = [f"{label}: {p}" for p in problems]
        kept: set[tuple[str, str]] = set()
        skipped = 0
        for doc in docs:
            alert = doc.alert
            if not names_cells(alert, self.cells) and not await self._follows_known(ctx, alert, kept):
                skipped += 1
                continue
            ident = (alert.sender, alert.identifier)
            stamp = (alert.sender, alert.identifier, alert.sent.isoformat())
            if stamp in self._done:
                kept.add(ident)
                continue
            result = await self._ingest(ctx, doc)
            if result.outcome == "rejected":
                problems.append(f"{label}: {doc.name}: rejected: {result.reason}")
                continue
            kept.add(ident)
            self._done[stamp] = None
            if len(self._done) > DONE_MEMORY:
                self._done.popitem(last=False)
            self._log_codes(ctx, alert)
        ctx.log.debug("%s: %d document(s), %d kept, %d for other warncells", label, len(docs), len(kept), skipped,
                      extra={"source": self.name})
        return problems, kept

    async def _follows_known(self, ctx: SourceContext, alert: Alert, kept: set[tuple[str, str]]) -> bool:
        """An Update/Cancel of a warning the hub holds (or this zip just kept), whatever cells it names."""
        if alert.msg_type not in (MsgType.UPDATE, MsgType.CANCEL):
            return False
        keys = [(alert.sender, alert.identifier), *(r.key() for r in alert.references)]
        if any(k in kept for k in keys):
            return True
        if ctx.known is not None:
            for sender, identifier in keys:
                if await ctx.known(sender, identifier):
                    return True
        return False

    async def _ingest(self, ctx: SourceContext, doc: Doc) -> IntakeResult:
        if doc.raw is not None:
            return await ctx.ingest(doc.raw, origin=self.name, policy=self.policy, path=doc.name)
        for note in doc.notes:
            ctx.log.info("alert=%s/%s %s", doc.alert.sender, doc.alert.identifier, note,
                         extra={"alert": f"{doc.alert.sender}/{doc.alert.identifier}", "source": self.name})
        if ctx.ingest_alert is not None:
            return await ctx.ingest_alert(doc.alert, origin=self.name, notes=doc.notes, path=doc.name)
        return await ctx.ingest(to_xml(doc.alert), origin=self.name, policy=SignaturePolicy.IGNORE, path=doc.name,
                                notes=doc.notes)

    def _log_codes(self, ctx: SourceContext, alert: Alert) -> None:
        who = f"{alert.sender}/{alert.identifier}"
        if alert.silent_update:
            ctx.log.info("alert=%s SILENT_UPDATE: replaces the current version, nothing new to tell", who,
                         extra={"alert": who, "source": self.name})
        if alert.partial_clear:
            ctx.log.info("alert=%s PARTIAL_CLEAR: the areas it no longer names are cleared", who,
                         extra={"alert": who, "source": self.name})
