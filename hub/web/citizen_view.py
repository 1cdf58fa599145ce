"""What the citizen pages show, computed without HTTP: severity in words and shapes, local times (Europe/Berlin) in
the page's language (one of hub.i18n's nine; fixed texts from the ``pages`` catalogue), a publication as a list entry
or as a whole warning with its history, texts made safe to show, map features (GeoJSON, lon/lat) and the names of
regions a citizen can search for.

The pages show the hub's own publications to the web (hub.publish.publications), never raw stored incidents. A warning
that ended (cancelled, expired) must never look current: :func:`state_of` decides, the templates follow it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import shapely
from babel.dates import format_skeleton, format_time
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from hub.cap import event_names
from hub.cap.labels import severity_word
from hub.cap.model import Alert, Info
from hub.geo.geography import Geography
from hub.geo.projection import GERMANY
from hub.geo.registry import Level
from hub.i18n.catalogs import N_, Translator, translator
from hub.i18n.languages import BY_CODE, LANGUAGES, SOURCE, code_of, language, reading_order
from hub.publish.publications import Notice, Publication

BERLIN = ZoneInfo("Europe/Berlin")
DOMAIN = "pages"

SHAPE = {"Extreme": "octagon", "Severe": "triangle", "Moderate": "diamond", "Minor": "circle", "Unknown": "diamond"}
"""Each severity has its own shape beside its colour and word (never colour alone)."""
COLOUR = {"extreme": "#5b0a6e", "severe": "#b00020", "moderate": "#b35300", "minor": "#fde047", "unknown": "#b35300",
          "allclear": "#14622b", "ended": "#555555"}
"""Map colours by badge class (the same as citizen.css)."""
STATE: dict[str, str] = {
    "current": N_("aktuell"),
    "allclear": N_("Entwarnung"),
    "cancelled": N_("Beendet – aufgehoben"),
    "expired": N_("Beendet – abgelaufen"),
}
KIND: dict[str, str] = {
    "Alert": N_("Erstmeldung"),
    "Update": N_("Aktualisierung"),
    "Cancel": N_("Aufhebung"),
    "allclear": N_("Entwarnung"),
}
LANGUAGE_NAMES = {**{lang.code: lang.own_name for lang in LANGUAGES}, "uk": "Українська", "it": "Italiano",
                  "nl": "Nederlands", "cs": "Čeština", "da": "Dansk", "fa": "فارسی"}
"""Languages by their own names: the hub's nine and others a warning may carry."""
RTL = frozenset({"ar", "fa", "he", "ur"})
_WEEKDAYS = {"de": ("Mo.", "Di.", "Mi.", "Do.", "Fr.", "Sa.", "So."), "en": ("Mon", "Tue", "Wed", "Thu", "Fri",
                                                                            "Sat", "Sun")}
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SIMPLIFY_M = 40.0
"""Map outlines are simplified to this many metres: a phone loads kilobytes, not the boundary's megabytes."""


def tr(lang: str | None) -> Translator:
    """The ``pages`` catalogue of a language (a hub code or tag; German when the hub lacks it)."""
    return translator(language(lang).code, DOMAIN)


def t(lang: str, de: str, en: str) -> str:
    """Deprecated: the two-language pick of templates not yet on the catalogues (English for ``en``, else German)."""
    return en if lang == "en" else de


# -- times ------------------------------------------------------------------------------------------------------------


def local(at: datetime | None, lang: str = "de", *, now: datetime | None = None, date: bool = True) -> str:
    """``heute, 18:30 Uhr`` / ``Mi. 15.01.2031, 18:30 Uhr`` (``today 18:30`` / ``Wed 15 Jan 2031, 18:30``); the
    other languages with their words for today and tomorrow and Babel's clock and date of their locale."""
    t_ = tr(lang)
    if at is None:
        return t_.gettext("bis auf Weiteres")
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    here = at.astimezone(BERLIN)
    code = language(lang).code
    own = code in ("de", "de-x-ls", "en")
    clock = here.strftime("%H:%M") if own else format_time(here, "short", tzinfo=BERLIN, locale=BY_CODE[code].babel)
    if not date:
        return t_.format(N_("%(time)s Uhr"), time=clock)
    today = (now or datetime.now(UTC)).astimezone(BERLIN).date()
    if here.date() == today:
        return t_.format(N_("heute, %(time)s Uhr"), time=clock)
    if here.date() == today + timedelta(days=1):
        return t_.format(N_("morgen, %(time)s Uhr"), time=clock)
    return t_.format(N_("%(day)s, %(time)s Uhr"), day=_day(here, code), time=clock)


def _day(here: datetime, code: str) -> str:
    if code == "en":
        return f"{_WEEKDAYS['en'][here.weekday()]} {here.day} {_MONTHS_EN[here.month - 1]} {here.year}"
    if code in ("de", "de-x-ls"):
        return f"{_WEEKDAYS['de'][here.weekday()]} {here:%d.%m.%Y}"
    return format_skeleton("yMMMEd", here, tzinfo=BERLIN, locale=BY_CODE[code].babel)


def iso(at: datetime | None) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds") if at is not None else ""


# -- texts ------------------------------------------------------------------------------------------------------------

_BREAK = re.compile(r"<\s*br\s*/?\s*>|<\s*/?\s*p\s*>", re.I)
_TAG = re.compile(r"<[^>]{0,500}>")


def paragraphs(text: str | None) -> list[list[str]]:
    """A CAP text as paragraphs of lines: ``<br/>`` (NINA sends HTML) and newlines kept, other markup dropped,
    entities decoded; the template escapes what is left."""
    if not text:
        return []
    plain = html.unescape(_TAG.sub("", _BREAK.sub("\n", text))).replace("\r\n", "\n")
    out = []
    for block in re.split(r"\n\s*\n", plain):
        lines = [line.strip() for line in block.split("\n") if line.strip()]
        if lines:
            out.append(lines)
    return out


def language_key(tag: str) -> str:
    """``de-DE`` -> ``de``; ``de-DE-x-ls`` -> ``de-x-ls``; ``EN`` -> ``en``."""
    low = tag.lower()
    head, sep, private = low.partition("-x-")
    primary = head.split("-")[0]
    return f"{primary}-x-{private}" if sep else primary


def language_name(tag: str) -> str:
    key = language_key(tag)
    return LANGUAGE_NAMES.get(key) or LANGUAGE_NAMES.get(key.split("-")[0]) or tag


def text_dir(tag: str) -> str:
    return "rtl" if language_key(tag).split("-")[0] in RTL else "ltr"


def url(path: str, lang: str, **params: str | None) -> str:
    """A link on the citizen site that keeps the page's language: German without a parameter, the others with
    ``lang=`` (``lang=tr``, ``lang=de-x-ls``)."""
    code = language(lang).code
    query = {k: v for k, v in {**params, "lang": code if code != SOURCE.code else None}.items() if v}
    return path + ("?" + urlencode(query) if query else "")


def warning_url(thread: str, lang: str, **params: str | None) -> str:
    return url(f"/warnungen/{quote(thread, safe='')}", lang, **params)


# -- publications -----------------------------------------------------------------------------------------------------


ISSUERS = {"opendata@dwd.de": "Deutscher Wetterdienst (DWD)", "cap@dwd.de": "Deutscher Wetterdienst (DWD)",
           "cap@katwarn.de": "KATWARN", "cap@biwapp.de": "BIWAPP",
           "cap@hochwasserzentralen.de": "Länderübergreifendes Hochwasserportal"}
_SOURCE = re.compile(r"Quelle / source: (\S+)")


def issuer(pub: Publication, alert: Alert | None, notice: Notice, fallback: str) -> str:
    """Who issued the warning: its ``senderName``; else the source the hub republished (named where known, from the
    publication's note); else ``fallback`` (the district)."""
    if notice.sender_name and notice.sender_name != pub.sender:
        return notice.sender_name
    found = _SOURCE.search(alert.note or "") if alert is not None else None
    if found:
        return ISSUERS.get(found.group(1).lower(), found.group(1))
    return fallback


def state_of(latest: Publication, now: datetime) -> str:
    """``cancelled``, ``expired``, ``allclear`` or ``current`` (the latest version decides)."""
    if latest.msg_type == "Cancel":
        return "cancelled"
    if latest.expires is not None and latest.expires <= now:
        return "expired"
    if latest.all_clear:
        return "allclear"
    return "current"


def readable(lang: str) -> tuple[str, ...]:
    """The languages a reader of ``lang`` reads a warning in, best first (:func:`hub.i18n.languages.reading_order`,
    the same for pushes, boards and the widget)."""
    return reading_order(lang)


def notice_of(pub: Publication, lang: str, text: str | None = None) -> Notice:
    """The notice in ``text`` (a language tag the warning carries) or the best one for the page's language."""
    if not pub.notices:
        return Notice("de-DE", "", "", "", "", "", pub.sender, None)
    if text:
        for n in pub.notices:
            if n.language.lower() == text.lower():
                return n
    return pub.notice(readable(lang))


def event_local(notice: Notice, lang: str) -> str:
    """The event's name in the reader's language from its codes (hub.cap.event_names) where the text shown is in
    another language; "" where the text is the reader's or the table has no name."""
    if translated(notice.language, lang):
        return ""
    found = event_names.of_event(notice.event, notice.event_codes, lang)
    return found[0] if found and found[0] != notice.event else ""


def translated(notice_language: str, lang: str) -> bool:
    """Whether a warning's text in ``notice_language`` is in the page's language (else the page says so)."""
    return code_of(notice_language) == language(lang).code


def info_of(alert: Alert | None, language: str) -> Info | None:
    if alert is None or not alert.infos:
        return None
    return next((i for i in alert.infos if i.lang.lower() == language.lower()), alert.infos[0])


def badge(pub: Publication, state: str, lang: str) -> dict[str, str]:
    """Colour class, shape and word of a warning in its state."""
    if state in ("cancelled", "expired"):
        return {"css": "ended", "shape": "ended", "word": tr(lang).gettext(STATE[state]),
                "was": severity_word(pub.severity, lang)}
    if state == "allclear":
        return {"css": "allclear", "shape": "check", "word": tr(lang).gettext(STATE["allclear"]), "was": ""}
    sev = pub.severity if pub.severity in SHAPE else "Unknown"
    return {"css": sev.lower(), "shape": SHAPE[sev], "word": severity_word(sev, lang), "was": ""}


def card(pub: Publication, alert: Alert | None, lang: str, now: datetime, fallback: str = "") -> dict[str, Any]:
    """A publication as the start page and the widget list it (``fallback``: the issuer when none is known)."""
    n = notice_of(pub, lang)
    info = info_of(alert, n.language)
    state = state_of(pub, now)
    begins = (info.onset or info.effective) if info is not None else None
    return {"thread": pub.thread, "url": warning_url(pub.thread, lang), "state": state,
            "badge": badge(pub, state, lang), "severity": pub.severity, "headline": n.headline or n.event,
            "event": n.event, "area": n.area_desc, "sender": issuer(pub, alert, n, fallback), "lang": n.language,
            "dir": text_dir(n.language), "translated": translated(n.language, lang),
            "event_local": event_local(n, lang), "sent": local(pub.sent, lang, now=now), "sent_iso": iso(pub.sent),
            "onset": local(begins, lang, now=now) if begins is not None and begins > now else "",
            "onset_iso": iso(begins), "expires": local(pub.expires, lang, now=now), "expires_iso": iso(pub.expires),
            "instruction": paragraphs(n.instruction)}


def content_version(versions: Sequence[Publication]) -> Publication:
    """The version whose texts a warning page shows: the newest that is not a bare Cancel."""
    return next((p for p in reversed(versions) if p.msg_type != "Cancel"), versions[-1])


def history(versions: Sequence[Publication], lang: str, now: datetime) -> list[dict[str, Any]]:
    """Every version, oldest first, as the warning page's "Verlauf" lists it."""
    out = []
    for p in versions:
        n = notice_of(p, lang)
        kind = "allclear" if p.all_clear else p.msg_type
        out.append({"version": p.version, "kind": tr(lang).gettext(KIND.get(kind, kind)), "cancel":
                    p.msg_type == "Cancel", "allclear": p.all_clear, "sent": local(p.sent, lang, now=now),
                    "sent_iso": iso(p.sent), "severity": severity_word(p.severity, lang),
                    "headline": n.headline or n.event, "lang": n.language, "description": paragraphs(n.description),
                    "instruction": paragraphs(n.instruction), "expires": local(p.expires, lang, now=now)})
    return out


def languages_of(pub: Publication) -> list[dict[str, str]]:
    seen: dict[str, dict[str, str]] = {}
    for n in pub.notices:
        key = language_key(n.language)
        if key not in seen:
            seen[key] = {"tag": n.language, "key": key, "name": language_name(n.language), "dir": text_dir(n.language),
                         "lang": n.language if key != "de-x-ls" else "de"}
    order = {"de": 0, "de-x-ls": 1, "en": 2}
    return sorted(seen.values(), key=lambda d: (order.get(d["key"], 9), d["name"]))


# -- maps -------------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Shapes:
    """Outlines (lon/lat GeoJSON geometries) for the maps, computed once per publication or region."""

    geo: Geography
    _cache: dict[tuple[str, Any], dict[str, Any] | None]

    @classmethod
    def of(cls, geo: Geography) -> Shapes:
        return cls(geo, {})

    def _remember(self, key: tuple[str, Any], value: dict[str, Any] | None) -> dict[str, Any] | None:
        if len(self._cache) > 2000:
            self._cache.clear()
        self._cache[key] = value
        return value

    def region(self, ars: str) -> dict[str, Any] | None:
        key = ("region", ars)
        if key not in self._cache:
            geom = self.geo.geometry(ars)
            self._remember(key, _geojson(geom) if geom is not None else None)
        return self._cache[key]

    def publication(self, pub: Publication) -> dict[str, Any] | None:
        key = ("pub", (pub.id, pub.identifier))
        if key not in self._cache:
            geom: BaseGeometry | None = GERMANY.project(pub.area) if pub.area is not None else None
            if geom is None:
                parts = [g for r in pub.regions if (g := self.geo.geometry(r)) is not None]
                geom = shapely.union_all(parts) if parts else None
            self._remember(key, _geojson(geom) if geom is not None and not geom.is_empty else None)
        return self._cache[key]


def _geojson(projected: BaseGeometry) -> dict[str, Any]:
    simple = projected.simplify(SIMPLIFY_M, preserve_topology=True)
    lonlat = shapely.set_precision(GERMANY.unproject(simple), 1e-5)
    return dict(mapping(lonlat))


def feature(geometry: Mapping[str, Any], card_: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry,
            "properties": {"thread": card_["thread"], "url": card_["url"], "headline": card_["headline"],
                           "expires": card_["expires_iso"], "word": card_["badge"]["word"],
                           "css": card_["badge"]["css"],
                           "colour": COLOUR.get(card_["badge"]["css"], COLOUR["unknown"])}}


# -- regions a citizen can pick -----------------------------------------------------------------------------------


_SUFFIX = re.compile(r",\s*(?:Stadt|Hansestadt|Flecken|Marktflecken|Landeshauptstadt|Kreisstadt|Gemeinde)$")


def place_name(name: str) -> str:
    return _SUFFIX.sub("", name).strip() or name


def regions(geo: Geography, district: str) -> list[dict[str, str]]:
    """The district, its Gemeindeverbände ("Samtgemeinde Elbtalaue", as the registry and the console name them;
    found also by any of their Gemeinden) and its Gemeinden, named for a citizen."""
    reg = geo.registry
    out = [{"ars": district, "name": reg.name(district) or district, "level": "kreis", "members": ""}]
    for r in reg.descendants(district):
        if r.level is Level.VERBAND:
            members = sorted(place_name(n) for g in reg.gemeinden(r.ars) if (n := reg.name(g)))
            name = r.name or "Samtgemeinde (" + ", ".join(members[:3]) + (", …)" if len(members) > 3 else ")")
            out.append({"ars": r.ars, "name": name, "level": "verband", "members": " ".join(members)})
        elif r.level is Level.GEMEINDE and r.name:
            out.append({"ars": r.ars, "name": place_name(r.name), "level": "gemeinde", "members": ""})
    return out


def search(candidates: Iterable[Mapping[str, str]], query: str, limit: int = 20) -> list[dict[str, str]]:
    """Candidates whose name contains the query (case and umlauts folded), those starting with it first."""
    needle = _fold(query)
    found = []
    for c in candidates:
        hay = _fold(c["name"])
        if not needle or needle in hay or needle in _fold(c.get("members", "")) or c["ars"].startswith(needle):
            found.append((not hay.startswith(needle), {"kreis": 0, "gemeinde": 1, "verband": 2}.get(c["level"], 3),
                          hay, {k: c[k] for k in ("ars", "name", "level")}))
    found.sort(key=lambda f: f[:3])
    return [f[3] for f in found[:limit]]


def _fold(text: str) -> str:
    low = text.casefold().strip()
    for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        low = low.replace(a, b)
    return low
