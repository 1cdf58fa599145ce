"""hub.cap.parse: every corpus alert reads, versions and encodings are recognised, hostile input is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from lxml import etree

from hub.cap.model import Alert, MsgType, Reference, Severity, Value
from hub.cap.parse import parse
from hub.cap.validate import Validator, Verdict
from hub.errors import ParseError
from tests.kits import paths

DATA = paths.DATA
REPO = paths.REPO
READABLE = sorted((DATA / "cap").glob("*.xml")) + sorted((DATA / "cap_legacy").glob("*.xml"))
CAP12_NS = "urn:oasis:names:tc:emergency:cap:1.2"


def _ids(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in paths]


def _times(alert: Alert) -> Iterator[tuple[str, datetime]]:
    yield "sent", alert.sent
    for ref in alert.references:
        yield f"references {ref.identifier}", ref.sent
    for i, info in enumerate(alert.infos):
        for name in ("effective", "onset", "expires"):
            value = getattr(info, name)
            if value is not None:
                yield f"info[{i}].{name}", value


def _refused(data: bytes, **kw: int) -> str:
    """Parse, expect ParseError, and return its message after checking it is one line."""
    with pytest.raises(ParseError) as caught:
        parse(data, **kw)
    message = str(caught.value)
    assert message.strip(), "ParseError without a reason"
    assert "\n" not in message and "\r" not in message, f"reason is not one line: {message!r}"
    return message


# -- every corpus file reads -------------------------------------------------------------------------------


def test_corpus_is_present() -> None:
    assert len(list((DATA / "cap").glob("*.xml"))) == 22
    assert len(list((DATA / "cap_legacy").glob("*.xml"))) == 8


@pytest.mark.parametrize("path", READABLE, ids=_ids(READABLE))
def test_every_corpus_alert_parses(path: Path) -> None:
    parsed = parse(path.read_bytes())
    alert = parsed.alert
    assert alert.identifier and alert.sender
    assert parsed.version in ("1.0", "1.1", "1.2")
    assert etree.QName(parsed.root).localname == "alert"
    if alert.msg_type in (MsgType.ALERT, MsgType.UPDATE):
        assert alert.infos, "an Alert/Update in the corpus always has an info"
    for info in alert.infos:
        assert info.event


@pytest.mark.parametrize("path", READABLE, ids=_ids(READABLE))
def test_times_are_timezone_aware(path: Path) -> None:
    alert = parse(path.read_bytes()).alert
    times = list(_times(alert))
    assert times
    for where, value in times:
        assert value.tzinfo is not None and value.utcoffset() is not None, where


def _expected_version(path: Path) -> str:
    if path.parent.name == "cap":
        return "1.2"
    return {"cap10": "1.0", "cap11": "1.1"}[path.name.split("_")[1]]


@pytest.mark.parametrize("path", READABLE, ids=_ids(READABLE))
def test_version_detection(path: Path) -> None:
    assert parse(path.read_bytes()).version == _expected_version(path)


def test_version_detection_covers_all_three() -> None:
    assert {_expected_version(p) for p in READABLE} == {"1.0", "1.1", "1.2"}
    assert parse((DATA / "cap_legacy/oasis-spec_cap10_appendix_A1.xml").read_bytes()).version == "1.0"
    assert parse((DATA / "cap_legacy/oasis-spec_cap11_appendix_A1.xml").read_bytes()).version == "1.1"
    assert parse((DATA / "cap/oasis-spec_cap12_appendix_A1.xml").read_bytes()).version == "1.2"


# -- encodings and spellings -------------------------------------------------------------------------------


def test_iso_8859_1_file_decodes(corpus: Path) -> None:
    data = (corpus / "cap/us_usgs_google-testdata_earthquake-iso8859-1.xml").read_bytes()
    assert data.startswith(b'<?xml version="1.0" encoding="ISO-8859-1"?>')
    assert "Usulután".encode("latin-1") in data and "Usulután".encode() not in data
    info = parse(data).alert.infos[0]
    assert "Usulután" in (info.headline or "")
    assert "Usulután" in (info.description or "")
    assert "á" in info.areas[0].area_desc


@pytest.mark.parametrize(
    "name",
    ["oasis-spec_cap12_appendix_A2.xml", "us_wcatwc_oasiscap_tsunami-update-multiref.xml"],
    ids=["with-xml-declaration", "without-xml-declaration"],
)
def test_utf8_bom_parses(corpus: Path, name: str) -> None:
    data = (corpus / "cap" / name).read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf")
    with_bom = parse(b"\xef\xbb\xbf" + data)
    assert with_bom.alert == parse(data).alert
    assert with_bom.version == "1.2"


def test_bom_with_non_ascii_text(corpus: Path) -> None:
    data = (corpus / "cap/mo_smg_kweathercore_monsoon-update.xml").read_bytes()
    alert = parse(b"\xef\xbb\xbf" + data).alert
    assert alert == parse(data).alert
    assert alert.infos[0].headline is not None and alert.infos[0].headline.startswith("強烈季候風")
    assert alert.infos[1].headline is not None and "monção" in alert.infos[1].headline


def test_cap_prefix_reads_like_default_namespace(corpus: Path) -> None:
    prefixed = (corpus / "cap/au_nsw-rfs_google-testdata_australia.xml").read_bytes()
    assert b"<cap:alert xmlns:cap=" in prefixed and b"<identifier>" not in prefixed
    plain = prefixed.replace(b"<cap:", b"<").replace(b"</cap:", b"</").replace(b"xmlns:cap=", b"xmlns=")
    assert b"<cap:" not in plain and b"<alert xmlns=" in plain

    a, b = parse(prefixed), parse(plain)
    assert a.alert == b.alert
    assert a.errors == b.errors == []
    assert a.version == b.version == "1.2"
    alert = a.alert
    assert alert.identifier == "tag:www.rfs.nsw.gov.au2011-10-06:40184"
    assert alert.sender == "webmaster@rfs.nsw.gov.au"
    assert alert.codes == ("urn:oasis:names:tc:emergency:cap:1.2:profile:CAP-AU:1.0",)
    assert len(alert.infos) == 2
    assert alert.infos[0].language == "en-AU"
    assert alert.infos[0].event_codes[0] == Value(value_name="https://govshare.gov.au/xmlui/handle/10772/6495",
                                                 value="fire")
    assert all(area.circles for info in alert.infos for area in info.areas)


def test_offsets_are_kept_as_written(corpus: Path) -> None:
    alert = parse((corpus / "cap/oasis-spec_cap12_appendix_A2.xml").read_bytes()).alert
    assert alert.sent == datetime(2003, 6, 17, 14, 57, tzinfo=timezone(timedelta(hours=-7)))
    assert alert.sent.utcoffset() == timedelta(hours=-7)
    assert alert.infos[0].expires is not None and alert.infos[0].expires.utcoffset() == timedelta(hours=-7)
    au = parse((corpus / "cap/au_nsw-rfs_google-testdata_australia.xml").read_bytes()).alert
    assert au.sent.utcoffset() == timedelta(hours=10)


# -- references ----------------------------------------------------------------------------------------------


def test_references_canada(corpus: Path) -> None:
    alert = parse((corpus / "cap/ca_ec_google-testdata_canada.xml").read_bytes()).alert
    assert alert.msg_type is MsgType.UPDATE
    assert alert.references == (
        Reference(sender="cap@ec.gc.ca", identifier="2.49.0.1.124.a3f342a4.2012",
                  sent=datetime(2012, 5, 2, 21, 45, 5, tzinfo=UTC)),
        Reference(sender="cap@ec.gc.ca", identifier="2.49.0.1.124.60f31a3a.2012",
                  sent=datetime(2012, 5, 2, 21, 55, 21, tzinfo=UTC)),
    )
    assert [r.key() for r in alert.references] == [
        ("cap@ec.gc.ca", "2.49.0.1.124.a3f342a4.2012"),
        ("cap@ec.gc.ca", "2.49.0.1.124.60f31a3a.2012"),
    ]
    assert all(r.sent.utcoffset() == timedelta(0) for r in alert.references)  # written as -00:00


def test_references_tsunami_multiref(corpus: Path) -> None:
    alert = parse((corpus / "cap/us_wcatwc_oasiscap_tsunami-update-multiref.xml").read_bytes()).alert
    assert [(r.sender, r.identifier, r.sent) for r in alert.references] == [
        ("wcatwc@noaa.gov", "PAAQ-1-mg5a94", datetime(2013, 1, 5, 9, 1, 16, tzinfo=UTC)),
        ("wcatwc@noaa.gov", "PAAQ-2-mg5a94", datetime(2013, 1, 5, 9, 30, 16, tzinfo=UTC)),
        ("wcatwc@noaa.gov", "PAAQ-3-mg5a94", datetime(2013, 1, 5, 10, 17, 31, tzinfo=UTC)),
    ]


def test_references_with_offset(corpus: Path) -> None:
    alert = parse((corpus / "cap/oasis-spec_cap12_appendix_A3.xml").read_bytes()).alert
    (ref,) = alert.references
    assert ref == Reference(sender="trinet@caltech.edu", identifier="TRI13970876.1",
                            sent=datetime(2003, 6, 11, 20, 30, tzinfo=timezone(timedelta(hours=-7))))
    assert ref.sent.utcoffset() == timedelta(hours=-7)


def test_alert_without_references(corpus: Path) -> None:
    assert parse((corpus / "cap/oasis-spec_cap12_appendix_A2.xml").read_bytes()).alert.references == ()


# -- CAP 1.0 ---------------------------------------------------------------------------------------------------


def test_cap10_name_value_pairs(corpus: Path) -> None:
    data = (corpus / "cap_legacy/oasis-spec_cap10_appendix_A2.xml").read_bytes()
    assert b"<eventCode>same=SVR</eventCode>" in data and b"<geocode>fips6=006109</geocode>" in data
    parsed = parse(data)
    assert parsed.version == "1.0"
    info = parsed.alert.infos[0]
    assert info.event_codes == (Value(value_name="same", value="SVR"),)
    assert info.areas[0].geocodes == (
        Value(value_name="fips6", value="006109"),
        Value(value_name="fips6", value="006009"),
        Value(value_name="fips6", value="006003"),
    )
    assert not any("valueName" in e for e in parsed.errors)


def test_cap10_pairs_equal_cap12_structure(corpus: Path) -> None:
    """The same spec example in 1.0 (name=value) and 1.2 (valueName/value) gives the same pairs, bar the names."""
    old = parse((corpus / "cap_legacy/oasis-spec_cap10_appendix_A4.xml").read_bytes()).alert.infos[0]
    new = parse((corpus / "cap/oasis-spec_cap12_appendix_A4.xml").read_bytes()).alert.infos[0]
    assert [v.value for v in old.event_codes] == [v.value for v in new.event_codes] == ["CAE"]
    assert old.areas[0].geocodes == (Value(value_name="fips6", value="006037"),)


def test_cap10_very_likely(corpus: Path) -> None:
    parsed = parse((corpus / "cap_legacy/oasis-spec_cap10_appendix_A3.xml").read_bytes())
    assert parsed.alert.infos[0].certainty.value == "Likely"
    assert any("Very Likely" in w for w in parsed.warnings)


def test_severity_is_read(corpus: Path) -> None:
    assert parse((corpus / "cap/oasis-spec_cap12_appendix_A2.xml").read_bytes()).alert.severity is Severity.SEVERE


# -- hostile and unusable input ------------------------------------------------------------------------------


def test_xxe_corpus_file_refused(corpus: Path) -> None:
    message = _refused((corpus / "cap_invalid/google_xxe_attack.xml").read_bytes())
    assert "passwd" not in message


def test_xxe_atom_feed_refused(corpus: Path) -> None:
    _refused((corpus / "feeds/invalid/google_xee.atom").read_bytes())


def _billion_laughs() -> bytes:
    lines = [b'<?xml version="1.0"?>', b"<!DOCTYPE alert [", b'  <!ENTITY lol0 "lol">']
    for level in range(1, 10):
        lines.append(b'  <!ENTITY lol%d "%s">' % (level, (b"&lol%d;" % (level - 1)) * 10))
    lines += [b"]>", b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">', b"  <identifier>&lol9;</identifier>",
              b"  <sender>a@example.org</sender>", b"  <sent>2024-01-01T00:00:00+00:00</sent>",
              b"  <status>Actual</status>", b"  <msgType>Alert</msgType>", b"  <scope>Public</scope>", b"</alert>"]
    return b"\n".join(lines)


def _quadratic_blowup() -> bytes:
    """One 100 kB entity referenced 50,000 times: 5 GB if expanded, from a document of about 250 kB."""
    return (
        b'<?xml version="1.0"?>\n<!DOCTYPE alert [<!ENTITY big "' + b"A" * 100_000 + b'">]>\n'
        b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>x</identifier>'
        b"<note>" + b"&big;" * 50_000 + b"</note></alert>"
    )


def test_billion_laughs_refused() -> None:
    data = _billion_laughs()
    assert len(data) < 2000
    _refused(data)


def test_quadratic_blowup_refused() -> None:
    data = _quadratic_blowup()
    assert len(data) < 400_000
    _refused(data)


_CHILD = """
import json, resource, sys
limit = 2 * 1024 ** 3  # a runaway parse dies with MemoryError here instead of eating the machine
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from hub.cap.parse import parse
from hub.errors import ParseError
data = open(sys.argv[1], "rb").read()
try:
    parse(data)
    outcome = "parsed"
except ParseError as err:
    outcome = "ParseError: " + str(err)
# VmHWM is this program's own peak: ru_maxrss would also count the forked test runner before exec
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"outcome": outcome, "maxrss_kb": peak}))
"""

_MAX_RSS_MB = 200


@pytest.mark.parametrize("make", [_billion_laughs, _quadratic_blowup], ids=["billion-laughs", "quadratic-blowup"])
def test_entity_attacks_stay_in_bounded_memory(make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Each attack is parsed in a fresh interpreter, which reports its own peak RSS (Linux: kB)."""
    doc = tmp_path / "attack.xml"
    doc.write_bytes(make())
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(doc)], cwd=REPO, env=env, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["outcome"].startswith("ParseError: "), report
    assert "\n" not in report["outcome"]
    assert 0 < report["maxrss_kb"] < _MAX_RSS_MB * 1024, f"child peaked at {report['maxrss_kb'] // 1024} MB"


def test_oversized_body_refused(corpus: Path) -> None:
    data = (corpus / "cap/oasis-spec_cap12_appendix_A2.xml").read_bytes()
    assert len(data) > 1000
    assert parse(data).alert.identifier  # fine under the default limit
    message = _refused(data, max_bytes=1000)
    assert "1000" in message
    assert parse(data, max_bytes=len(data)).alert.identifier  # the limit is inclusive


@pytest.mark.parametrize("data", [b"hello", b"", b'{"json":1}', b"   \n\t", b"<alert", b"\x00\x01\x02"],
                         ids=["text", "empty", "json", "blank", "truncated", "binary"])
def test_not_xml_refused(data: bytes) -> None:
    _refused(data)


def test_str_input_refused(corpus: Path) -> None:
    text = (corpus / "cap/oasis-spec_cap12_appendix_A2.xml").read_text(encoding="utf-8")
    with pytest.raises(ParseError) as caught:
        parse(text)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)


def test_wrong_root_refused(corpus: Path) -> None:
    message = _refused((corpus / "cap_invalid/wmo_sc_invalid_schema_not_an_alert.xml").read_bytes())
    assert "schema" in message and "not a CAP alert" in message


def test_feed_root_refused(corpus: Path) -> None:
    _refused((corpus / "feeds/invalid/google_no_id.atom").read_bytes())


def test_wrong_namespace_refused(corpus: Path) -> None:
    message = _refused(b'<alert xmlns="urn:example"><identifier>x</identifier></alert>')
    assert "urn:example" in message
    # The same full alert under a foreign namespace is refused too.
    data = (corpus / "cap/oasis-spec_cap12_appendix_A2.xml").read_bytes().replace(CAP12_NS.encode(), b"urn:example")
    _refused(data)


def test_missing_identity_refused(corpus: Path) -> None:
    message = _refused((corpus / "cap_invalid/google_invalid_missing-scope.xml").read_bytes())
    assert "scope" in message


@pytest.mark.parametrize(
    "doctype",
    [
        b"<!DOCTYPE alert>",
        b'<!DOCTYPE alert [ <!ENTITY greeting "hello"> ]>',
        b"<!DOCTYPE alert [ <!ELEMENT alert ANY> ]>",
    ],
    ids=["bare", "internal-entity", "internal-element-decl"],
)
def test_harmless_doctype_still_refused(corpus: Path, doctype: bytes) -> None:
    data = (corpus / "cap/oasis-spec_cap12_appendix_A2.xml").read_bytes()
    head, sep, rest = data.partition(b"?>")
    assert sep
    message = _refused(head + sep + b"\n" + doctype + rest)
    assert "DOCTYPE" in message


def test_local_file_entity_not_read(tmp_path: Path) -> None:
    """An external parameter entity naming a local file is never loaded (no_network does not cover file:).

    The file holds a broken DTD: had libxml2 read it, parsing would fail on that file instead of refusing the
    DOCTYPE. (With lxml's collect_ids=False, libxml2 2.14 did load it, and file:///dev/zero hung the parser.)
    """
    broken = tmp_path / "broken.dtd"
    broken.write_text('<!ENTITY % oops "never closed')
    data = (
        f'<?xml version="1.0"?>\n<!DOCTYPE alert [\n  <!ENTITY % ext SYSTEM "{broken.as_uri()}">\n  %ext;\n]>\n'
        f'<alert xmlns="{CAP12_NS}"><identifier>x</identifier></alert>'
    ).encode()
    message = _refused(data)
    assert "DOCTYPE" in message
    assert "broken.dtd" not in message


def test_general_file_entity_not_expanded() -> None:
    data = (
        b'<?xml version="1.0"?>\n<!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier>'
        b"<sender>a@example.org</sender><sent>2024-01-01T00:00:00+00:00</sent><status>Actual</status>"
        b"<msgType>Alert</msgType><scope>Public</scope></alert>"
    )
    message = _refused(data)
    assert "root:" not in message


# -- no external fetch ---------------------------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        body = b'<!ENTITY % send "<!ENTITY leaked \'yes\'>">' if self.path.endswith(".dtd") else b"payload"
        self.send_response(200)
        self.send_header("Content-Type", "application/xml-dtd")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_recorder() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server on a free port that records every request path."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.hits  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_external_entities_never_fetched(http_recorder: tuple[str, list[str]], corpus: Path) -> None:
    base, hits = http_recorder
    crafted = f"""<?xml version="1.0"?>
<?xml-stylesheet type="text/xsl" href="{base}/style.xsl"?>
<!DOCTYPE alert SYSTEM "{base}/external-subset.dtd" [
  <!ENTITY % remote SYSTEM "{base}/remote.dtd">
  <!ENTITY xxe SYSTEM "{base}/xxe.txt">
  %remote;
  %send;
]>
<alert xmlns="{CAP12_NS}">
  <identifier>&xxe;</identifier>
  <sender>a@example.org</sender>
  <sent>2024-01-01T00:00:00+00:00</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Public</scope>
  <note>&leaked;</note>
</alert>""".encode()
    corpus_attack = (corpus / "cap_invalid/google_xxe_attack.xml").read_bytes()
    assert corpus_attack.count(b"http://localhost:8080") >= 4
    retargeted = corpus_attack.replace(b"http://localhost:8080", base.encode())

    for data in (crafted, retargeted):
        _refused(data)
        report = Validator().check(data)
        assert report.verdict is Verdict.REJECTED
    assert hits == []

    # Without a DOCTYPE: XInclude and schemaLocation hints pointing at the server are not followed either.
    plain = (corpus / "cap/oasis-spec_cap12_appendix_A2.xml").read_bytes().replace(
        b"<scope>Public</scope>",
        b'<scope>Public</scope><note xmlns:xi="http://www.w3.org/2001/XInclude" '
        b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="' + CAP12_NS.encode() + b" "
        + base.encode() + b'/cap.xsd">see <xi:include href="' + base.encode() + b'/xinclude"/></note>',
    )
    report = Validator().check(plain)
    assert report.verdict is not Verdict.REJECTED
    assert hits == []

    # Control: the server does answer, so a fetch would have been recorded.
    with urllib.request.urlopen(f"{base}/control", timeout=30) as response:  # noqa: S310 - local test server
        assert response.read() == b"payload"
    assert hits == ["/control"]
