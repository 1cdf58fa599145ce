"""The DWD source against a local server replaying zips built from real DWD CAP files (tests/data/cap, and the
DERIVED ones in tests/data/dwd): warncell filter, STAT with conditional GET, DIFF in name order, test warnings never
public as Actual, updates of held warnings always arrive, per-municipality repeats merged, DWD's codes kept, and
broken or hostile zips marking the source down without storing anything."""

from __future__ import annotations

import copy
import io
import json
import logging
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from adapters.sources.dwd import DwdSource, convert_payload, diff_zips
from adapters.sources.polling import Http
from hub.cap.model import Status, from_json
from hub.cap.serialize import to_xml
from hub.cap.validate import Validator, Verdict
from hub.config.sections import DwdSourceConfig
from hub.errors import ParseError
from tests.kits import paths
from tests.kits.sourcekit import HubKit, ReplayServer

DATA = paths.DATA
CAP = DATA / "cap"
DERIVED = DATA / "dwd"
GLAETTE = CAP / "de_dwd_wdr-unwetter_alert1_glaette.xml"
UPDATE1 = CAP / "de_dwd_wdr-unwetter_alert1_update1.xml"
UPDATE2 = CAP / "de_dwd_wdr-unwetter_alert1_update2.xml"
UPDATE3 = CAP / "de_dwd_wdr-unwetter_alert1_update3.xml"
UPDATE2_PARTIAL = DERIVED / "de_dwd_wdr-unwetter_alert1_update2_partial-clear.xml"
BRIGHTSKY = CAP / "de_dwd_brightsky_MUL_1687511640000_0d1a4fb5.xml"
KWEATHER = CAP / "de_dwd_kweathercore_update-MUL.xml"
KWEATHER_II98 = DERIVED / "de_dwd_kweathercore_update-MUL_II98.xml"
KWEATHER_SILENT = DERIVED / "de_dwd_kweathercore_update-MUL_silent-update.xml"

# warncells looked up in the files (names from the corpus' geo/dwd_warncells_dwdwfsapi.json)
IBBENBUEREN = "805566028"  # Stadt Ibbenbüren: in the GLÄTTE alert and all three updates
LADBERGEN = "805566032"  # Gemeinde Ladbergen: in the alert and update 1, no longer in updates 2 and 3
HOHENDUBRAU = "814626190"  # Gemeinde Hohendubrau: the kweathercore update
ELSEWHERE = "803354001"  # in none of the files

STAT_PATH = "/COMMUNEUNION_DWD_STAT/Z_CAP_C_EDZW_LATEST_PVW_STATUS_PREMIUMDWD_COMMUNEUNION_MUL.zip"
DIFF_PATH = "/COMMUNEUNION_DWD_DIFF/"
KWEATHER_ID = "2.49.0.0.276.0.DWD.PVW.1661544180000.6ffa85ac-a5ed-4e69-977c-e767a423ecd6.MUL"


def subdir(tmp: Path, name: str) -> Path:
    path = tmp / name
    path.mkdir()
    return path


def make_zip(*members: Path | tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for m in members:
            name, body = (m.name, m.read_bytes()) if isinstance(m, Path) else m
            zf.writestr(name, body)
    return buf.getvalue()


def diff_name(stamp: str, language: str = "MUL") -> str:
    return f"Z_CAP_C_EDZW_{stamp}_PVW_DIFFERENCE_PREMIUMDWD_COMMUNEUNION_{language}.zip"


def apache_index(names: list[str]) -> bytes:
    """An Apache-style folder index, with the sort links, parent link and LATEST alias such pages carry."""
    rows = "".join(f'<a href="{n}">{n}</a>  23-Jan-2019 08:16  2.1K\n' for n in names)
    return ('<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<html><head><title>Index of '
            '/weather/alerts/cap/COMMUNEUNION_DWD_DIFF</title></head><body><h1>Index of /COMMUNEUNION_DWD_DIFF</h1>'
            '<pre><a href="?C=N;O=D">Name</a> <a href="?C=M;O=A">Last modified</a>\n<a href="../">Parent</a>\n'
            + rows + '<a href="Z_CAP_C_EDZW_LATEST_PVW_DIFFERENCE_PREMIUMDWD_COMMUNEUNION_MUL.zip">LATEST</a>\n'
            + "</pre></body></html>").encode()


def source(kit: HubKit, srv: ReplayServer, cells: list[str], **kw: object) -> DwdSource:
    cfg = DwdSourceConfig(name="dwd", warncells=cells, base_url=srv.url(""), **kw)  # type: ignore[arg-type]
    return DwdSource(cfg, kit.loaded)


async def poll(src: DwdSource, kit: HubKit) -> list[str] | None:
    assert kit.session is not None
    if src.http is None:
        src.http = Http(kit.session, timeout_s=src.settings.timeout_s, max_bytes=src.settings.max_bytes)
    return await src.poll_once(kit.context(src.name, "dwd"))


def stored(kit: HubKit) -> list[tuple[str, str, str]]:
    """(sender, identifier, status) of every stored version, in the order stored."""
    return [tuple(r) for r in kit.store.conn.execute("SELECT sender, identifier, status FROM alerts ORDER BY id")]


def ident(path: Path) -> str:
    return etree.fromstring(path.read_bytes()).findtext("{urn:oasis:names:tc:emergency:cap:1.2}identifier")


async def test_stat_keeps_documents_naming_our_warncell_and_an_unchanged_zip_is_a_304(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        srv.set(STAT_PATH, make_zip(GLAETTE, UPDATE1, UPDATE2, UPDATE3, BRIGHTSKY, KWEATHER))
        src = source(kit, srv, [IBBENBUEREN])
        assert await poll(src, kit) == []
        assert kit.hub.health.state("dwd") == "up"
        assert [i for _, i, _ in stored(kit)] == [ident(p) for p in (GLAETTE, UPDATE1, UPDATE2, UPDATE3)]
        assert {s for s, _, _ in stored(kit)} == {"CAP@dwd.de"}  # brightsky and kweathercore name other cells
        threads = kit.store.threads(include_ended=True)
        assert len(threads) == 1 and threads[0].versions == 4 and threads[0].current_identifier == ident(UPDATE3)
        # unchanged: a 304, nothing stored, nothing validated
        assert await poll(src, kit) == []
        assert srv.hits[STAT_PATH] == 2 and srv.not_modified[STAT_PATH] == 1
        assert kit.store.counts()["alerts"] == 4
        # the complete poll was recorded as a snapshot of what it kept
        assert set(kit.store.presence("dwd")) == {f"CAP@dwd.de/{ident(p)}" for p in (GLAETTE, UPDATE1, UPDATE2,
                                                                                      UPDATE3)}


async def test_stat_without_our_cells_stores_nothing(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        srv.set(STAT_PATH, make_zip(GLAETTE, BRIGHTSKY, KWEATHER))
        src = source(kit, srv, [ELSEWHERE])
        assert await poll(src, kit) == []
        assert stored(kit) == [] and kit.hub.health.state("dwd") == "up"


async def test_diff_zips_in_name_order_and_later_only_the_new_one(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        z1, z2, z3 = diff_name("20190122192600"), diff_name("20190123040900"), diff_name("20190123050100")
        other_language = diff_name("20190123040900", "DE")
        srv.set(f"{DIFF_PATH}{z2}", make_zip(UPDATE1))
        srv.set(f"{DIFF_PATH}{z1}", make_zip(GLAETTE))
        srv.set(f"{DIFF_PATH}{other_language}", make_zip(BRIGHTSKY))
        srv.set(DIFF_PATH, apache_index([z2, other_language, z1]), content_type="text/html")  # listed out of order
        src = source(kit, srv, [LADBERGEN], mode="DIFF")
        assert await poll(src, kit) == []
        fetched = [p for p, _ in srv.requests if p.endswith(".zip")]
        assert fetched == [f"{DIFF_PATH}{z1}", f"{DIFF_PATH}{z2}"]
        assert [i for _, i, _ in stored(kit)] == [ident(GLAETTE), ident(UPDATE1)]
        assert src.last_zip == z2
        # a third zip appears: only it is fetched. Its update no longer names Ladbergen, but it updates a warning
        # the hub holds, so it passes the filter (and it is a PARTIAL_CLEAR).
        srv.set(f"{DIFF_PATH}{z3}", make_zip(UPDATE2_PARTIAL))
        srv.set(DIFF_PATH, apache_index([z1, z2, z3, other_language]), content_type="text/html")
        assert await poll(src, kit) == []
        fetched = [p for p, _ in srv.requests if p.endswith(".zip")]
        assert fetched == [f"{DIFF_PATH}{z1}", f"{DIFF_PATH}{z2}", f"{DIFF_PATH}{z3}"]
        assert [i for _, i, _ in stored(kit)][-1] == ident(UPDATE2)
        assert srv.hits[f"{DIFF_PATH}{other_language}"] == 0
        # nothing new: the index is a 304 and no zip is fetched
        assert await poll(src, kit) == []
        assert srv.not_modified[DIFF_PATH] == 1 and len([p for p, _ in srv.requests if p.endswith(".zip")]) == 3


async def test_diff_first_start_takes_only_the_newest_zips(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        names = [diff_name(f"2019012{d}000000") for d in range(1, 6)]
        for name in names:
            srv.set(f"{DIFF_PATH}{name}", make_zip(KWEATHER))
        srv.set(DIFF_PATH, apache_index(names), content_type="text/html")
        src = source(kit, srv, [HOHENDUBRAU], mode="DIFF")
        src.first_start_zips = 2
        assert await poll(src, kit) == []
        assert [srv.hits[f"{DIFF_PATH}{n}"] for n in names] == [0, 0, 0, 1, 1]
        assert kit.store.counts()["alerts"] == 1  # the same document twice is stored once


async def test_test_warning_sent_as_actual_is_stored_as_test(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        srv.set(STAT_PATH, make_zip(KWEATHER_II98))
        src = source(kit, srv, [HOHENDUBRAU])
        assert await poll(src, kit) == []
        assert stored(kit) == [("opendata@dwd.de", KWEATHER_ID, "Test")]
        row = kit.store.conn.execute("SELECT json, flags, verdict FROM alerts").fetchone()
        assert from_json(row[0]).status is Status.TEST
        assert "eventCode II 98" in row[1] and "re-issued with status Test" in row[1]
        assert row[2] == "accepted"


async def test_status_test_stays_test_and_other_ii_stays_actual(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        as_test = KWEATHER.read_bytes().replace(b"<status>Actual</status>", b"<status>Test</status>")
        srv.set(STAT_PATH, make_zip(("test.xml", as_test)))
        src = source(kit, srv, [HOHENDUBRAU])
        assert await poll(src, kit) == []
        assert stored(kit) == [("opendata@dwd.de", KWEATHER_ID, "Test")]
        # the document went in as it came (no note): same bytes as served
        assert kit.store.conn.execute("SELECT raw FROM alerts").fetchone()[0] == as_test
    async with ReplayServer() as srv, HubKit(subdir(tmp_path, "b")) as kit:
        srv.set(STAT_PATH, make_zip(KWEATHER))  # II 34: a real thunderstorm warning
        src = source(kit, srv, [HOHENDUBRAU])
        assert await poll(src, kit) == []
        assert stored(kit) == [("opendata@dwd.de", KWEATHER_ID, "Actual")]


async def test_update_of_a_held_warning_passes_without_our_cells(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        srv.set(STAT_PATH, make_zip(GLAETTE, UPDATE1))
        src = source(kit, srv, [LADBERGEN])
        assert await poll(src, kit) == []
        assert len(stored(kit)) == 2
        # neither update names Ladbergen: update 2 updates update 1 (held), update 3 updates update 2 (kept from
        # this very zip); brightsky is an update of a warning the hub does not hold
        srv.set(STAT_PATH, make_zip(UPDATE3, UPDATE2_PARTIAL, BRIGHTSKY))
        assert await poll(src, kit) == []
        assert [i for _, i, _ in stored(kit)] == [ident(p) for p in (GLAETTE, UPDATE1, UPDATE2, UPDATE3)]
        threads = kit.store.threads(include_ended=True)
        assert len(threads) == 1 and threads[0].versions == 4


def _cancel_of_kweather(cell: str) -> bytes:
    """DERIVED in memory: the kweathercore update turned into a Cancel of itself that names another cell."""
    raw = KWEATHER.read_bytes()
    return (raw.replace(f"<identifier>{KWEATHER_ID}</identifier>".encode(),
                        f"<identifier>{KWEATHER_ID[:-4]}.CANCEL.MUL</identifier>".encode())
            .replace(b"<sent>2022-08-26T22:03:00+02:00</sent>", b"<sent>2022-08-26T22:30:00+02:00</sent>")
            .replace(b"<msgType>Update</msgType>", b"<msgType>Cancel</msgType>")
            .replace(b"<references>opendata@dwd.de,2.49.0.0.276.0.DWD.PVW.1661542140000.7462e657-ce54-473f-91c8-"
                     b"abe408afe703.MUL,2022-08-26T21:29:00+02:00</references>",
                     f"<references>opendata@dwd.de,{KWEATHER_ID},2022-08-26T22:03:00+02:00</references>".encode())
            .replace(f"<value>{HOHENDUBRAU}</value>".encode(), f"<value>{cell}</value>".encode()))


async def test_cancel_of_a_held_warning_passes_and_of_an_unknown_one_does_not(tmp_path: Path) -> None:
    cancel = _cancel_of_kweather(ELSEWHERE)
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        srv.set(STAT_PATH, make_zip(KWEATHER))
        src = source(kit, srv, [HOHENDUBRAU])
        assert await poll(src, kit) == []
        srv.set(STAT_PATH, make_zip(("cancel.xml", cancel)))
        assert await poll(src, kit) == []
        assert [t for _, _, t in stored(kit)] == ["Actual", "Actual"]
        (thread,) = kit.store.threads(include_ended=True)
        assert thread.state == "cancelled" and thread.current_msg_type == "Cancel"
    async with ReplayServer() as srv, HubKit(subdir(tmp_path, "fresh")) as kit:
        srv.set(STAT_PATH, make_zip(("cancel.xml", cancel)))
        src = source(kit, srv, [HOHENDUBRAU])
        assert await poll(src, kit) == []
        assert stored(kit) == []


def _split_areas(path: Path, parts: int) -> list[bytes]:
    """DERIVED in memory: one document as ``parts`` documents, each with every parts-th area (what DWD does when
    it repeats one warning per municipality)."""
    root = etree.fromstring(path.read_bytes())
    out = []
    for k in range(parts):
        doc = copy.deepcopy(root)
        info = doc.find("{urn:oasis:names:tc:emergency:cap:1.2}info")
        for j, area in enumerate(info.findall("{urn:oasis:names:tc:emergency:cap:1.2}area")):
            if j % parts != k:
                info.remove(area)
        out.append(etree.tostring(doc, xml_declaration=True, encoding="UTF-8"))
    return out


async def test_repeats_per_municipality_become_one_alert_with_all_areas(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        parts = _split_areas(GLAETTE, 3)
        srv.set(STAT_PATH, make_zip(*[(f"part{k}.xml", p) for k, p in enumerate(parts)], ("again.xml", parts[1])))
        src = source(kit, srv, [IBBENBUEREN])
        assert await poll(src, kit) == []
        assert stored(kit) == [("CAP@dwd.de", ident(GLAETTE), "Actual")]
        row = kit.store.conn.execute("SELECT json, flags FROM alerts").fetchone()
        merged = from_json(row[0])
        original = Validator().check(GLAETTE.read_bytes()).alert
        assert original is not None
        assert set(merged.infos[0].areas) == set(original.infos[0].areas)
        assert len(merged.infos[0].areas) == len(set(original.infos[0].areas)) == 820
        assert "merged 3 documents repeated per municipality" in row[1]


async def test_same_identity_differing_beyond_areas_is_not_merged_and_is_reported(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        # same sender, identifier and sent, but one carries SILENT_UPDATE: not a per-municipality repeat
        srv.set(STAT_PATH, make_zip(KWEATHER, KWEATHER_SILENT))
        src = source(kit, srv, [HOHENDUBRAU])
        problems = await poll(src, kit)
        assert problems is not None and len(problems) == 1 and "differ beyond their areas" in problems[0]
        assert kit.hub.health.state("dwd") == "degraded"
        assert kit.store.conn.execute("SELECT raw FROM alerts").fetchall() == [(KWEATHER.read_bytes(),)]


async def test_silent_update_and_partial_clear_survive_store_and_json(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="warnhub")
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        srv.set(STAT_PATH, make_zip(UPDATE1, UPDATE2_PARTIAL, KWEATHER_SILENT))
        src = source(kit, srv, [IBBENBUEREN, HOHENDUBRAU])
        assert await poll(src, kit) == []
        rows = {r[0]: r for r in kit.store.conn.execute("SELECT identifier, json, id, thread_id FROM alerts")}
        partial, silent = rows[ident(UPDATE2)], rows[KWEATHER_ID]
        assert from_json(partial[1]).partial_clear and not from_json(partial[1]).silent_update
        assert from_json(silent[1]).silent_update and not from_json(silent[1]).partial_clear
        assert "PARTIAL_CLEAR" in json.loads(partial[1])["code"] and "SILENT_UPDATE" in json.loads(silent[1])["code"]
        # the store's current version carries them too
        current = kit.store.current_alert(partial[3])
        assert current is not None and current.partial_clear
        assert kit.store.alert(silent[2]).silent_update  # type: ignore[union-attr]
        logged = " ".join(r.getMessage() for r in caplog.records)
        assert f"alert=CAP@dwd.de/{ident(UPDATE2)} PARTIAL_CLEAR" in logged
        assert f"alert=opendata@dwd.de/{KWEATHER_ID} SILENT_UPDATE" in logged


def _bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.xml", b"<" + b"\0" * (40 * 1024 * 1024))  # 40 MiB that packs into ~40 KiB
    return buf.getvalue()


@pytest.mark.parametrize("case", ["500", "timeout", "truncated_http", "truncated_zip", "zip_bomb", "not_a_zip",
                                  "path_trick"])
async def test_broken_fetches_mark_the_source_down_and_the_next_good_poll_recovers(tmp_path: Path, case: str) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        good = make_zip(KWEATHER)
        settings: dict[str, object] = {"timeout_s": 0.5} if case == "timeout" else {}
        if case == "500":
            srv.set(STAT_PATH, status=500)
        elif case == "timeout":
            srv.set(STAT_PATH, good, delay_s=3)
        elif case == "truncated_http":
            srv.set(STAT_PATH, good, truncate_to=len(good) // 2)
        elif case == "truncated_zip":
            srv.set(STAT_PATH, good[: len(good) // 2])
        elif case == "zip_bomb":
            srv.set(STAT_PATH, _bomb())
        elif case == "not_a_zip":
            srv.set(STAT_PATH, KWEATHER.read_bytes())
        elif case == "path_trick":
            srv.set(STAT_PATH, make_zip(("../../etc/cron.d/x.xml", KWEATHER.read_bytes())))
        src = source(kit, srv, [HOHENDUBRAU], **settings)
        assert await poll(src, kit) is None
        health = kit.hub.health.sources["dwd"]
        expect = {"500": "HTTP 500", "timeout": "within 0.5 s", "truncated_http": "truncated",
                  "truncated_zip": "broken zip", "zip_bomb": "over the limit", "not_a_zip": "broken zip",
                  "path_trick": "path refused"}[case]
        assert health.state == "down" and expect in health.last_error, health.last_error
        assert kit.store.counts()["alerts"] == 0
        srv.set(STAT_PATH, good)
        assert await poll(src, kit) == []
        assert kit.hub.health.state("dwd") == "up" and kit.store.counts()["alerts"] == 1


async def test_a_broken_diff_zip_is_skipped_and_the_rest_is_read(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        z1, z2 = diff_name("20220826200000"), diff_name("20220826210000")
        srv.set(f"{DIFF_PATH}{z1}", b"PK\x03\x04 not really a zip")
        srv.set(f"{DIFF_PATH}{z2}", make_zip(KWEATHER))
        srv.set(DIFF_PATH, apache_index([z1, z2]), content_type="text/html")
        src = source(kit, srv, [HOHENDUBRAU], mode="DIFF")
        problems = await poll(src, kit)
        assert problems is not None and len(problems) == 1 and z1 in problems[0] and "broken zip" in problems[0]
        assert kit.hub.health.state("dwd") == "degraded" and kit.store.counts()["alerts"] == 1
        assert src.last_zip == z2
        assert await poll(src, kit) == [] and srv.hits[f"{DIFF_PATH}{z1}"] == 1  # not fetched again


def test_diff_index_yields_the_language_zips_without_latest() -> None:
    names = [diff_name("20190123050100"), diff_name("20190122192600"), diff_name("20190122192600", "EN")]
    zips = diff_zips(apache_index(names), "https://opendata.dwd.de/weather/alerts/cap/COMMUNEUNION_DWD_DIFF/", "MUL")
    assert list(zips) == [diff_name("20190122192600"), diff_name("20190123050100")]
    assert zips[diff_name("20190122192600")] == ("https://opendata.dwd.de/weather/alerts/cap/COMMUNEUNION_DWD_DIFF/"
                                                 + diff_name("20190122192600"))


def test_convert_payload_gives_valid_cap_12_with_test_warnings_as_test() -> None:
    converted = convert_payload(make_zip(GLAETTE, UPDATE1, BRIGHTSKY, KWEATHER_II98))
    assert [c.alert.identifier for c in converted] == [ident(GLAETTE), ident(UPDATE1), KWEATHER_ID,
                                                       ident(BRIGHTSKY)]  # in sent order
    by_id = {c.alert.identifier: c for c in converted}
    assert by_id[KWEATHER_ID].alert.status is Status.TEST and by_id[KWEATHER_ID].notes
    validator = Validator()
    for c in converted:
        report = validator.check(to_xml(c.alert))
        assert report.verdict is not Verdict.REJECTED
        assert not [e for e in report.errors if e.startswith("schema")], report.errors
    with pytest.raises(ParseError, match="broken zip"):
        convert_payload(b"not a zip")
