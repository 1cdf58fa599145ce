"""CAP identity conflicts on a real SQLite store with real XML signatures: the same (sender, identifier, sent) with
other content is never dropped silently; both copies are kept, the better-signed one is the version, the version
is flagged, the console inbox lists it and /metrics counts it.

The signing key and certificate are made here (a self-signed EC P-256 certificate in the trust store, valid around
the test alerts' sent time); a forged copy is the same alert with another headline and no signature, or the signed
genuine document with its headline changed afterwards (signature invalid)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree

from hub.cap import sign as cap_sign
from hub.cap.parse import parse
from hub.cap.sign import TrustStore
from hub.cap.validate import Validator
from hub.console.overview import inbox
from hub.decide import decisions
from hub.intake.documents import Intake
from hub.store import conflicts
from hub.store.db import Store
from tests.kits.consolekit import Operator, add_reader
from tests.kits.hubproc import HubProcess, cap_xml, drop, free_port, wait_for, write_config
from tests.kits.sourcekit import HubKit

SENT = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)  # cap_xml's sent, 10:00+01:00
NOW = SENT + timedelta(hours=1)
GENUINE = "Hochwasser an der Elbe bei Hitzacker"
FORGED = "Entwarnung: keine Gefahr mehr"


@pytest.fixture(scope="module")
def party() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leitstelle.example"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "warnhub tests")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(SENT - timedelta(days=30)).not_valid_after(SENT + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()), cert.public_bytes(serialization.Encoding.PEM))


def signed(party: tuple[bytes, bytes], headline: str = GENUINE) -> bytes:
    root = parse(cap_xml("c-1", headline=headline)).root
    out = cap_sign.sign(root, key_pem=party[0], cert_pem=party[1])
    return etree.tostring(out, xml_declaration=True, encoding="UTF-8")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "warnhub.db") as s:
        yield s


@pytest.fixture
def intake(store: Store, party: tuple[bytes, bytes], tmp_path: Path) -> Intake:
    folder = tmp_path / "trust"
    folder.mkdir()
    (folder / "leitstelle.pem").write_bytes(party[1])
    return Intake(Validator(trust=TrustStore.from_dir(folder)), store)


def headline(store: Store, alert_id: int) -> str:
    alert = store.alert(alert_id)
    assert alert is not None
    return alert.headline()


def flags(store: Store, alert_id: int) -> dict[str, list[str]]:
    return json.loads(store.conn.execute("SELECT flags FROM alerts WHERE id=?", (alert_id,)).fetchone()[0])


def test_a_genuine_signed_copy_replaces_a_forgery_that_came_first(intake: Intake, store: Store,
                                                                   party: tuple[bytes, bytes]) -> None:
    forged = cap_xml("c-1", headline=FORGED)
    first = intake.ingest(forged, origin="drop-folder", now=NOW)
    assert first.outcome == "new" and first.report.signature.value == "absent"
    decisions.record_unroutable(store, first.alert_id or 0, first.thread_id or 0, "test", NOW)  # decided already
    for key, state in (("from-forgery", "pending"), ("taken-by-a-person", "taken")):  # drafts of the forgery
        store.conn.execute(
            "INSERT INTO drafts (key, origin, alert_id, rule, kind, template, at, state, channels, audiences, why,"
            " draft, created_at) VALUES (?, 'drop-folder', ?, 'r', 'alert', 't', '', ?, '[]', '[]', '', '{}', '')",
            (key, first.alert_id, state))
    genuine = signed(party)
    second = intake.ingest(genuine, origin="mowas", now=NOW)
    assert (second.outcome, second.replaced, second.alert_id) == ("conflict", True, first.alert_id)
    assert second.report.signature.value == "valid"
    aid = first.alert_id or 0
    assert headline(store, aid) == GENUINE and store.counts()["alerts"] == 1
    row = store.conn.execute("SELECT signature, origin, raw FROM alerts WHERE id=?", (aid,)).fetchone()
    assert (row[0], row[1], bytes(row[2])) == ("valid", "mowas", genuine)
    [aside] = conflicts.of_alert(store, aid)
    assert (aside["origin"], aside["signature"], aside["replaced"], aside["published"]) == ("drop-folder", "absent",
                                                                                           1, 0)
    assert bytes(aside["raw"]) == forged and (aside["kept_origin"], aside["kept_signature"]) == ("mowas", "valid")
    assert any("identity conflict" in w for w in flags(store, aid)["warnings"])
    assert decisions.decision_of(store, aid) is None  # the rules decide again, on the genuine content
    assert [r[0] for r in store.conn.execute("SELECT key FROM drafts")] == ["taken-by-a-person"]
    thread = store.thread(first.thread_id or 0)
    assert thread is not None and thread.headline == GENUINE and thread.versions == 1


def test_a_forgery_after_the_genuine_copy_is_set_aside_and_flagged(intake: Intake, store: Store,
                                                                   party: tuple[bytes, bytes]) -> None:
    genuine = signed(party)
    first = intake.ingest(genuine, origin="mowas", now=NOW)
    assert first.outcome == "new" and first.report.signature.value == "valid"
    tampered = genuine.replace(GENUINE.encode(), FORGED.encode())  # signed, then changed: signature invalid
    second = intake.ingest(tampered, origin="feed", now=NOW)
    assert (second.outcome, second.replaced) == ("conflict", False)
    assert second.report.signature.value == "invalid"
    aid = first.alert_id or 0
    assert headline(store, aid) == GENUINE
    [aside] = conflicts.of_alert(store, aid)
    assert (aside["origin"], aside["signature"], aside["replaced"], bytes(aside["raw"])) == ("feed", "invalid", 0,
                                                                                            tampered)
    assert any("identity conflict" in w and "feed" in w for w in flags(store, aid)["warnings"])
    again = intake.ingest(tampered, origin="feed", now=NOW)  # the same forgery once more: a conflict each time
    assert again.outcome == "conflict" and len(conflicts.of_alert(store, aid)) == 2


def test_on_equal_signature_status_the_first_copy_stays(intake: Intake, store: Store) -> None:
    first = intake.ingest(cap_xml("c-1", headline=GENUINE), origin="a", now=NOW)
    second = intake.ingest(cap_xml("c-1", headline=FORGED), origin="b", now=NOW)
    assert (second.outcome, second.replaced) == ("conflict", False)
    assert headline(store, first.alert_id or 0) == GENUINE
    assert [c["origin"] for c in conflicts.of_alert(store, first.alert_id or 0)] == ["b"]


def test_a_published_version_keeps_its_decision_and_the_conflict_says_so(intake: Intake, store: Store,
                                                                         party: tuple[bytes, bytes]) -> None:
    first = intake.ingest(cap_xml("c-1", headline=FORGED), origin="drop-folder", now=NOW)
    aid, tid = first.alert_id or 0, first.thread_id or 0
    decisions.record_unroutable(store, aid, tid, "test", NOW)
    store.conn.execute(
        "INSERT INTO publications (thread, version, source_thread, source_alert, identifier, sender, sent, msg_type,"
        " status, severity, urgency, push, channels, regions, notices, alert_json, cap_xml, created_ms)"
        " VALUES ('w1', 1, ?, ?, 'w1-1', 'hub', '', 'Alert', 'Actual', 'Moderate', 'Immediate', 0, '[]', '[]',"
        " '[]', '{}', x'', 0)", (tid, aid))
    second = intake.ingest(signed(party), origin="mowas", now=NOW)
    assert (second.outcome, second.replaced) == ("conflict", True)
    [aside] = conflicts.of_alert(store, aid)
    assert aside["published"] == 1
    assert decisions.decision_of(store, aid) is not None


async def test_the_console_inbox_and_metrics_show_the_conflict(tmp_path: Path) -> None:
    async with HubKit(tmp_path) as kit:
        first = await kit.hub.intake.ingest(cap_xml("c-2", headline=GENUINE), origin="mowas",
                                     policy=cap_sign.SignaturePolicy.VERIFY)
        same = await kit.hub.intake.ingest(cap_xml("c-2", headline=GENUINE).replace(b"\n  ", b"\n    "), origin="feed",
                                    policy=cap_sign.SignaturePolicy.VERIFY)
        assert (first.outcome, same.outcome) == ("new", "duplicate")  # other bytes, same content
        assert inbox(kit.store)["conflicts"] == {"count": 0, "items": []}
        other = await kit.hub.intake.ingest(cap_xml("c-2", headline=FORGED), origin="feed",
                                     policy=cap_sign.SignaturePolicy.VERIFY)
        assert other.outcome == "conflict"
        box = inbox(kit.store)["conflicts"]
        assert box["count"] == 1
        [item] = box["items"]
        assert (item["identifier"], item["origin"], item["kept_origin"], item["thread_id"]) == (
            "c-2", "feed", "mowas", first.thread_id)
        registry = kit.hub.metrics.registry
        assert registry.get_sample_value("warnhub_identity_conflicts_total", {"source": "feed", "result": "kept"}) == 1
        assert registry.get_sample_value("warnhub_documents_total", {"source": "feed", "outcome": "conflict"}) == 1


def test_a_running_hub_shows_the_conflict_in_the_console_inbox_and_metrics(tmp_path: Path) -> None:
    """The daemon as run: two files with one identity and other content dropped into the CAP inbox; a signed-in
    operator sees the conflict in the inbox's health section, and /metrics counts it."""
    port = free_port()
    proc = HubProcess(write_config(tmp_path, port=port), port, tmp_path / "warnhub.log")
    add_reader(tmp_path / "hub.db")
    operator = Operator(proc.base)
    try:
        proc.start()
        drop(tmp_path / "inbox", "a.xml", cap_xml("c-3", headline=GENUINE), settled=True)
        wait_for(lambda: len(operator.threads()) == 1 or None, timeout=15, what="the first copy stored")
        drop(tmp_path / "inbox", "b.xml", cap_xml("c-3", headline=FORGED), settled=True)

        def listed() -> dict[str, Any] | None:
            body = operator.get_json("/console/api/inbox")
            return body if body["data"]["conflicts"]["count"] else None
        body = wait_for(listed, timeout=15, what="the conflict in the inbox")
        [item] = body["data"]["conflicts"]["items"]
        assert (item["identifier"], item["origin"], item["signature"], item["replaced"]) == ("c-3", "cap-inbox",
                                                                                           "absent", 0)
        html = body["html"]["health"]
        assert "Widersprüchliche Kopien" in html and "test@warnhub.example/c-3" in html
        link = f'/console/incidents/{item["thread_id"]}'
        assert f'href="{link}"' in html
        status, page = operator.get(link)  # the operators' page of the incident, not a 404
        assert status == 200 and "c-3" in page.decode()
        status, metrics = proc.get("/metrics")
        assert status == 200
        assert 'warnhub_identity_conflicts_total{result="kept",source="cap-inbox"} 1.0' in metrics.decode()
    finally:
        proc.close()


async def test_a_relays_conversion_is_not_compared_with_the_cap_original(tmp_path: Path) -> None:
    """NINA's JSON rendered as CAP differs from the CAP original by form (text, added geocodes): a relay copy and
    the original of one identity stay a plain duplicate, whichever came first (both orders)."""
    async with HubKit(tmp_path) as kit:
        original = cap_xml("c-4", headline=GENUINE)
        relay = Validator().check(cap_xml("c-4", headline=GENUINE + " (NINA)")).alert
        assert relay is not None
        first = await kit.hub.intake.ingest_alert(relay, origin="nina")
        again = await kit.hub.intake.ingest(original, origin="mowas", policy=cap_sign.SignaturePolicy.VERIFY)
        assert (first.outcome, again.outcome) == ("new", "duplicate")
        other = Validator().check(cap_xml("c-5", headline=GENUINE + " (NINA)")).alert
        assert other is not None
        direct = await kit.hub.intake.ingest(cap_xml("c-5", headline=GENUINE), origin="mowas",
                                      policy=cap_sign.SignaturePolicy.VERIFY)
        later = await kit.hub.intake.ingest_alert(other, origin="nina")
        assert (direct.outcome, later.outcome) == ("new", "duplicate")
        assert inbox(kit.store)["conflicts"]["count"] == 0
        assert json.loads(kit.store.conn.execute("SELECT flags FROM alerts WHERE id=?",
                                                 (first.alert_id,)).fetchone()[0])["relay"] is True


def test_a_running_hub_decides_again_when_the_genuine_copy_replaces_a_forgery(tmp_path: Path,
                                                                               party: tuple[bytes, bytes]) -> None:
    """The daemon as run, rules router included: the forgery (unsigned, severity Minor) is stored and decided; the
    genuine signed copy (Moderate) replaces it, and the router decides the version again on the genuine content."""
    port = free_port()
    config = write_config(tmp_path, port=port)
    config.write_text(config.read_text(encoding="utf-8").replace(
        'signature_policy = "verify"', 'signature_policy = "verify"\ntrust_store = "trust"'), encoding="utf-8")
    (tmp_path / "trust").mkdir()
    (tmp_path / "trust" / "leitstelle.pem").write_bytes(party[1])
    proc = HubProcess(config, port, tmp_path / "warnhub.log")
    db = tmp_path / "hub.db"

    def decision() -> tuple[str, str] | None:
        with sqlite3.connect(db) as conn:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE name='decisions'").fetchone():
                return None
            row = conn.execute("SELECT d.severity, a.signature FROM decisions d JOIN alerts a ON a.id = d.alert_id"
                               " WHERE a.identifier='c-1'").fetchone()
        return (row[0], row[1]) if row else None
    try:
        proc.start()
        drop(tmp_path / "inbox", "forged.xml", cap_xml("c-1", headline=FORGED).replace(b"Moderate", b"Minor"),
             settled=True)
        assert wait_for(decision, timeout=20, what="the forgery decided") == ("Minor", "absent")
        drop(tmp_path / "inbox", "genuine.xml", signed(party), settled=True)
        wait_for(lambda: decision() == ("Moderate", "valid") or None, timeout=20, what="decided again")
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT origin, signature, replaced FROM conflicts").fetchall() == [
                ("cap-inbox", "absent", 1)]
    finally:
        proc.close()
