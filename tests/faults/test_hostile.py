"""Fault 9 (issue 17 §3): hostile XML from every source kind at once while a real warning is being delivered.

Sources: the drop folder, four CAP feeds, two DWD sources and two NINA sources, all served locally. First a real
DWD warning arrives through the drop folder with nothing else going on (the baseline). Then every source turns
hostile at once: external entities (XXE aimed at the replay server and at a local file), billion laughs, a 100 MB
body, bad and unknown encodings, a zip bomb and a zip of hostile documents, NINA lists nested 100,000 deep and not
UTF-8; the drop folder gets the same documents as files; and a second real warning arrives in the middle of it.

Expected: both real warnings reach every subscriber (I1-I4 hold); every hostile input is refused without any entity
resolved (the XXE target on the replay server is never requested, nothing hostile is stored), and each source shows
why (down or degraded with the reason in /healthz; the drop folder's rejected/ file with its reason beside it). The
real warning's accept -> first push is measured with and without the attack and printed; no timing is asserted.
"""

from __future__ import annotations

import io
import sqlite3
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.test_routing import dwd_cap
from tests.kits.faultkit import SourceHub, feed_with
from tests.kits.hubproc import drop, until
from tests.kits.sourcekit import ReplayServer

HUGE = 100 * 1024 * 1024
HOLE = "HOLE"
"""Where each attack puts its payload."""
STAT = "/{name}/COMMUNEUNION_DWD_STAT/Z_CAP_C_EDZW_LATEST_PVW_STATUS_PREMIUMDWD_COMMUNEUNION_MUL.zip"
ALERT = '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>HOLE</identifier><sender>x@y</sender></alert>'


def laughs(root: str) -> bytes:
    """Billion laughs: ten levels of ten references, a gigabyte once expanded."""
    ents = ['<!ENTITY lol0 "lollollollollollollollollollol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    return f'<?xml version="1.0"?>\n<!DOCTYPE lolz [{"".join(ents)}]>\n{root.replace(HOLE, "&lol9;")}'.encode()


def xxe(root: str, target: str) -> bytes:
    return (f'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY net SYSTEM "{target}"><!ENTITY file SYSTEM '
            f'"file:///etc/hostname"><!ENTITY % p SYSTEM "{target}?param"> %p;]>\n'
            f'{root.replace(HOLE, "&net;&file;")}').encode()


def bad_utf8(root: str) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + root.replace(HOLE, "\udcff").encode("utf-8", "surrogateescape")


def unknown_encoding(root: str) -> bytes:
    return f'<?xml version="1.0" encoding="x-klingon"?>\n{root.replace(HOLE, "Qapla")}'.encode()


def huge(root: str) -> bytes:
    head, tail = root.split(HOLE)
    return head.encode() + b"x" * HUGE + tail.encode()


FEED = '<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:hostile</id><title>HOLE</title></feed>'


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def sources(srv: ReplayServer) -> str:
    out = ""
    for name in ("feed-xxe", "feed-laughs", "feed-huge", "feed-encoding"):
        out += f'\n[[sources]]\ntype = "cap-feed"\nname = "{name}"\nurl = "{srv.url(f"/{name}.atom")}"\n' \
               'interval_s = 0.5\ntimeout_s = 10\nbackoff_max_s = 1\n'
    for name in ("dwd-bomb", "dwd-xml"):
        out += f'\n[[sources]]\ntype = "dwd"\nname = "{name}"\nbase_url = "{srv.url(f"/{name}")}"\n' \
               'warncells = ["103354000"]\ninterval_s = 0.5\ntimeout_s = 10\nbackoff_max_s = 1\n'
    for name in ("nina-deep", "nina-encoding"):
        out += f'\n[[sources]]\ntype = "nina"\nname = "{name}"\nbase_url = "{srv.url(f"/{name}")}"\n' \
               'feeds = ["mowas"]\ndashboard_ars = []\ninterval_s = 0.5\ntimeout_s = 10\nbackoff_max_s = 1\n'
    return out


def benign(srv: ReplayServer) -> None:
    for name in ("feed-xxe", "feed-laughs", "feed-huge", "feed-encoding"):
        srv.set(f"/{name}.atom", feed_with(), content_type="application/atom+xml")
    for name in ("dwd-bomb", "dwd-xml"):
        srv.set(STAT.format(name=name), zipped({}), content_type="application/zip")
    for name in ("nina-deep", "nina-encoding"):
        srv.set(f"/{name}/mowas/mapData.json", b"[]", content_type="application/json")


def hostile(srv: ReplayServer, target: str) -> dict[str, bytes]:
    """Turn every served source hostile; returns the files for the drop folder."""
    srv.set("/feed-xxe.atom", xxe(FEED, target), content_type="application/atom+xml")
    srv.set("/feed-laughs.atom", laughs(FEED), content_type="application/atom+xml")
    srv.set("/feed-huge.atom", huge(FEED), content_type="application/atom+xml")
    srv.set("/feed-encoding.atom", bad_utf8(FEED), content_type="application/atom+xml")
    bomb = zipped({"bomb.xml": b"<" + b"\0" * (HUGE * 2)})  # 200 MB of zeros in 200 kB
    srv.set(STAT.format(name="dwd-bomb"), bomb, content_type="application/zip")
    srv.set(STAT.format(name="dwd-xml"), zipped({"xxe.xml": xxe(ALERT, target),
                                                 "laughs.xml": laughs(ALERT),
                                                 "encoding.xml": unknown_encoding(ALERT)}),
            content_type="application/zip")
    srv.set("/nina-deep/mowas/mapData.json", b"[" * 100_000 + b"]" * 100_000, content_type="application/json")
    srv.set("/nina-encoding/mowas/mapData.json", b'[{"id": "mow.\xff\xfe", "version": 1}]',
            content_type="application/json")
    alert = ALERT
    return {"xxe.xml": xxe(alert, target), "laughs.xml": laughs(alert), "huge.xml": huge(alert),
            "encoding.xml": bad_utf8(alert), "klingon.xml": unknown_encoding(alert)}


EXPECTED = {  # source -> (state, words of the reason)
    "feed-xxe": ("down", "DOCTYPE declaration refused"),
    "feed-laughs": ("down", "DOCTYPE declaration refused"),
    "feed-huge": ("down", "exceeds the limit"),
    "feed-encoding": ("down", "Invalid bytes in character encoding"),
    "dwd-bomb": ("down", "over the limit"),
    "dwd-xml": ("degraded", "DOCTYPE declaration refused"),
    "nina-deep": ("down", "not JSON"),
    "nina-encoding": ("down", "not JSON"),
}
REJECTED = {"xxe.xml": "DOCTYPE declaration refused", "laughs.xml": "DOCTYPE declaration refused",
            "huge.xml": "over the limit", "encoding.xml": "Invalid bytes in character encoding",
            "klingon.xml": "Unsupported encoding"}


async def test_hostile_xml_from_every_source_is_refused_while_a_real_warning_is_delivered(tmp_path: Path) -> None:
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    async with ReplayServer() as srv:
        benign(srv)
        target = srv.url("/xxe-target")
        srv.set("/xxe-target", b"<secret>resolved</secret>", content_type="application/xml")
        async with SourceHub(tmp_path, sources=sources(srv)) as hub:
            for name in EXPECTED:
                await hub.source_state(name, "up", timeout=60)
            drop(hub.inbox, "real-before.xml", dwd_cap("hostile-real-before", sent=sent))
            await until(lambda: len(hub.pushes_of("hostile-real-before")) == len(hub.subs), "the baseline pushed", 60)

            files = hostile(srv, target)
            for name, data in files.items():
                drop(hub.inbox, name, data)
            drop(hub.inbox, "real-during.xml", dwd_cap("hostile-real-during", sent=sent, severity="Extreme"))
            await until(lambda: len(hub.pushes_of("hostile-real-during")) == len(hub.subs), "the real one pushed", 90)
            shown = {name: await hub.source_state(name, state, timeout=90) for name, (state, _) in EXPECTED.items()}
            await until(lambda: all((hub.inbox / "rejected" / n).exists() for n in files), "every file rejected", 60)
            before, during = hub.accept_to_first_push("hostile-real-before"), \
                hub.accept_to_first_push("hostile-real-during")
            verdict = hub.verdict()
            with sqlite3.connect(f"{(hub.home / 'hub.db').as_uri()}?mode=ro", uri=True) as db:
                stored = sorted(r[0] for r in db.execute("SELECT identifier FROM alerts"))
                rejections = db.execute("SELECT count(*) FROM rejections").fetchone()[0]
    print(f"\nfault 9: accept -> first push without the attack {before} s, during it {during} s; hostile requests "
          f"{ {k: v for k, v in srv.hits.items() if k != '/xxe-target'} }; rejections stored {rejections}; "
          f"figures {verdict.figures}")
    verdict.assert_holds("I1", "I2", "I3", "I4")
    assert srv.hits["/xxe-target"] == 0  # no entity was ever resolved
    assert stored == ["hostile-real-before", "hostile-real-during"], stored
    for name, (_, words) in EXPECTED.items():
        assert words in shown[name]["last_error"], (name, shown[name])
    for name, words in REJECTED.items():
        reason = (hub.inbox / "rejected" / f"{name}.reason.txt").read_text(encoding="utf-8")
        assert words in reason, (name, reason)
