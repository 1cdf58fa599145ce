"""The hub's own CAP messages: Alert, then Update and Cancel referencing the hub's previous version; a severity the
rules raised is in the message; stored publications read back as issued."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hub.cap.model import MsgType, Severity
from hub.cap.parse import parse
from hub.cap.validate import Validator, Verdict
from hub.publish import publications
from hub.store.db import Store
from tests.e2e.test_routing import dwd_cap


def test_issue_chain_and_raised_severity(store_url: str, tmp_path: Path) -> None:
    now = datetime(2030, 1, 1, 12, tzinfo=UTC)
    source = parse(dwd_cap("s-1", sent=now)).alert
    assert source is not None and source.severity is Severity.SEVERE
    store = Store(store_url)
    first = publications.issue(source, sender="leitstelle@kreis.example", district="033540000000", thread="w1",
                               version=1, previous=None, severity=Severity.EXTREME, now=now)
    assert first.msg_type is MsgType.ALERT and first.severity is Severity.EXTREME and first.references == ()
    assert first.sender == "leitstelle@kreis.example" and "s-1" in (first.note or "")
    with store.transaction() as conn:
        p1 = publications.insert(conn, first, thread="w1", version=1, source_thread=1, source_alert=1, push=True,
                                 channels=("push", "web"), regions=("033540000000",), area=None,
                                 now_ms=publications.ms(now))
    assert p1.severity == "Extreme" and p1.notice(["de"]).headline == "Amtliche UNWETTERWARNUNG vor STURMBÖEN"
    cancel_src = parse(dwd_cap("s-2", msg_type="Cancel", sent=now + timedelta(minutes=5),
                               references=f"opendata@dwd.de,s-1,{now.isoformat()}")).alert
    assert cancel_src is not None
    # the same second as the previous version: sent still increases along the chain
    cancel = publications.issue(cancel_src, sender="leitstelle@kreis.example", district="033540000000", thread="w1",
                                version=2, previous=p1, severity=cancel_src.severity, now=now)
    assert cancel.msg_type is MsgType.CANCEL and cancel.sent > p1.sent
    assert [(r.sender, r.identifier, r.sent) for r in cancel.references] == [(p1.sender, p1.identifier, p1.sent)]
    with store.transaction() as conn:
        p2 = publications.insert(conn, cancel, thread="w1", version=2, source_thread=1, source_alert=2, push=True,
                                 channels=p1.channels, regions=p1.regions, area=None, now_ms=publications.ms(now))
    assert not p2.live(now) and p1.live(now)
    xml = publications.cap_xml(store, p2.identifier)
    assert xml is not None
    report = Validator().check(xml)
    assert report.verdict in (Verdict.VALID, Verdict.ACCEPTED), report.errors
    assert publications.latest(store, "w1") == p2
    assert publications.current(store, publications.KIOSK, now=now) == []
    store.close()


def test_publications_are_signed_when_a_key_is_configured(store_url: str, tmp_path: Path) -> None:
    """Invariant: with [hub] signing_key/cert the stored CAP carries an XML-DSig that verifies against that cert."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from hub.cap.sign import SignatureStatus, TrustStore, verify

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Leitstelle Lüchow-Dannenberg (test)")])
    now = datetime.now(UTC).replace(microsecond=0)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "trust").mkdir()
    (tmp_path / "trust" / "hub.pem").write_bytes(cert_pem)
    source = parse(dwd_cap("s-1", sent=now)).alert
    assert source is not None
    alert = publications.issue(source, sender="leitstelle@kreis.example", district="033540000000", thread="w1",
                               version=1, previous=None, severity=source.severity, now=now)
    store = Store(store_url)
    with store.transaction() as conn:
        pub = publications.insert(conn, alert, thread="w1", version=1, source_thread=1, source_alert=1, push=False,
                                  channels=("web",), regions=(), area=None, now_ms=publications.ms(now),
                                  signer=publications.Signer(key_pem, cert_pem))
    xml = publications.cap_xml(store, pub.id)
    store.close()
    assert xml is not None and b"SignatureValue" in xml
    parsed = parse(xml)
    result = verify(xml, parsed.root, at=parsed.alert.sent, trust=TrustStore.from_dir(tmp_path / "trust"))
    assert result.status is SignatureStatus.VALID, result
    other = TrustStore.from_dir(tmp_path / "nothing") if (tmp_path / "nothing").mkdir() is None else None
    assert other is not None
    assert verify(xml, parsed.root, at=parsed.alert.sent, trust=other).status is SignatureStatus.UNTRUSTED


async def test_push_payload_rendered_once_per_thread_is_exact_per_recipient(store_url: str, tmp_path: Path) -> None:
    """The resolver renders a thread's push JSON once and splices each row's key in: the result must be byte for
    byte what push_payload gives for that key, and a key too long for the record falls back to shortened texts."""
    import json

    from hub.config import load as config
    from hub.deliver.setup import Resolvers
    from hub.ports import Delivery
    from hub.publish import subscriptions
    from hub.publish.pipeline import PUSH_PAYLOAD_MAX, push_payload
    from hub.store.db import AsyncStore
    from tests.kits.hubproc import write_config

    now = datetime.now(UTC).replace(microsecond=0)
    raw = dwd_cap("s-9", sent=now, expires=now + timedelta(hours=3)).decode()
    info = raw[raw.index("<info>"):raw.index("</info>") + len("</info>")]
    english = info.replace("<language>de-DE</language>", "<language>en-GB</language>")
    english = english.replace("<headline>", "<headline>Storm: ")
    source = parse(raw.replace(info, info + english).encode()).alert
    assert source is not None
    store = Store(store_url)
    issued = publications.issue(source, sender="leitstelle@kreis.example", district="033540000000", thread="w7",
                                version=1, previous=None, severity=Severity.SEVERE, now=now)
    with store.transaction() as conn:
        pub = publications.insert(conn, issued, thread="w7", version=1, source_thread=7, source_alert=1, push=True,
                                  channels=("push",), regions=("033540000000",), area=None,
                                  now_ms=publications.ms(now))
    p256dh = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
    sids = {}
    for n, langs in enumerate((("de",), ("en", "de"), ("de",))):
        sid, _token = subscriptions.create(store, subscriptions.Subscription(
            endpoint=f"https://push.example/ep/{n}", p256dh=p256dh, auth="BTBZMqHH6r4Tts7J_aSIgg",
            places=(subscriptions.PointPlace(53.0, 11.1, 1000),), languages=langs))
        sids[n] = (sid, langs)
    loaded = config.load(write_config(tmp_path, port=1))
    resolvers = Resolvers(AsyncStore(store), loaded)
    plain = push_payload(pub, "", ("de",), resolvers.base_url)
    prefix = f"{pub.identifier}/push/"
    long_key = prefix + "k" * (PUSH_PAYLOAD_MAX - len(plain) - len(prefix) + 20)  # 20 bytes too long for the texts
    batch = [Delivery(i + 1, key, pub.id, "w7", "push", sid, 0, 0, None, "push.example")
             for i, (key, sid) in enumerate([(f"{pub.identifier}/push/{sids[0][0]}", sids[0][0]),
                                             (f"{pub.identifier}/push/{sids[1][0]}", sids[1][0]),
                                             (long_key, sids[2][0])])]
    targets = resolvers._push(store, batch)
    langs_of = {sid: langs for sid, langs in sids.values()}
    for d, target in zip(batch, targets, strict=True):
        assert target is not None
        assert target.payload == push_payload(pub, d.key, langs_of[d.recipient], resolvers.base_url)
        assert len(target.payload) <= PUSH_PAYLOAD_MAX and json.loads(target.payload)["key"] == d.key
    assert (json.loads(targets[0].payload)["lang"], json.loads(targets[1].payload)["lang"]) == ("de-DE", "en-GB")
    assert len(json.loads(targets[2].payload)["body"]) < len(json.loads(targets[0].payload)["body"])
    store.close()


def test_channels_of_a_decision_not_for_the_public() -> None:
    """Only a decision for the public reaches web and boards; one for emergency services keeps push and webhooks
    (those naming the audience); a topic message push alone (its subscribers), never a webhook."""
    from hub.publish.audience import audiences_of, effective_channels

    channels = ["push", "web", "boards", "mqtt", "webhook"]
    assert effective_channels(channels, ["public", "einsatzkraefte"]) == tuple(channels)
    assert effective_channels(channels, ["einsatzkraefte"]) == ("push", "webhook")
    assert effective_channels(channels, ["topic:heimatfest"]) == ("push",)
    assert effective_channels(channels, ["topic:heimatfest", "einsatzkraefte"]) == ("push", "webhook")
    assert audiences_of([]) == {"public"}  # the rules' default
    # a Restricted or Private CAP message is never for the public nor topic subscribers, whatever the rule says
    for scope in ("Restricted", "Private"):
        assert effective_channels(channels, [], scope) == ("push", "webhook")
        assert audiences_of(["public", "topic:x", "einsatzkraefte"], scope) == {"einsatzkraefte"}


def test_notice_language_choice_keeps_leichte_sprache_apart() -> None:
    from dataclasses import replace

    from hub.publish.publications import Notice, Publication

    def notice(lang: str) -> Notice:
        return Notice(lang, "Hochwasser", f"headline {lang}", "", "", "", "Kreis", None)

    now = datetime(2030, 1, 1, tzinfo=UTC)
    base = Publication(1, "w1", 1, None, None, "id", "s", now, "Alert", "Actual", "Severe", "Immediate", None,
                       True, ("push",), ("033540000000",),
                       (notice("de-DE-x-ls"), notice("de-DE"), notice("en-GB")), None)
    assert base.notice(["de-x-ls"]).language == "de-DE-x-ls"
    assert base.notice(["de"]).language == "de-DE"  # not Leichte Sprache, though it comes first
    assert base.notice(["en"]).language == "en-GB"
    assert base.notice(["fr"]).language == "de-DE"
    only_plain = replace(base, notices=(notice("de-DE"),))
    assert only_plain.notice(["de-x-ls"]).language == "de-DE"


def test_expired_warnings_are_cleared_from_boards_once(store_url: str, tmp_path: Path) -> None:
    """A board that showed a warning gets an update when the warning's newest version expires (the resolver then
    sends the next warning in force or a clear): one row per version and board, none for a thread whose newer
    version is still in force, none for boards that never showed it."""
    from hub.deliver import outbox
    from hub.publish.pipeline import expire_boards

    now = datetime.now(UTC).replace(microsecond=0)
    store = Store(store_url)

    def publish(thread: str, version: int, expires: datetime) -> publications.Publication:
        source = parse(dwd_cap(f"{thread}-{version}", sent=now - timedelta(hours=2), expires=expires)).alert
        assert source is not None
        issued = publications.issue(source, sender="leitstelle@kreis.example", district="033540000000",
                                    thread=thread, version=version, previous=None, severity=Severity.SEVERE,
                                    now=now - timedelta(hours=2) + timedelta(seconds=version))
        with store.transaction() as conn:
            return publications.insert(conn, issued, thread=thread, version=version, source_thread=1,
                                       source_alert=len(publications.recent(store, publications.KIOSK)) + 1,
                                       push=False, channels=("boards",),
                                       regions=("033540000000",), area=None, now_ms=publications.ms(now))

    gone = publish("w1", 1, now - timedelta(minutes=1))
    old = publish("w2", 1, now - timedelta(minutes=1))
    publish("w2", 2, now + timedelta(hours=1))  # w2 goes on in a newer version
    outbox.enqueue(store, [outbox.NewDelivery(f"{gone.identifier}/boards-mqtt/b1", gone.id, "w1", "boards-mqtt",
                                              "b1", "broker", 1, None),
                           outbox.NewDelivery(f"{old.identifier}/boards-mqtt/b1", old.id, "w2", "boards-mqtt", "b1",
                                              "broker", 1, None)])
    store.conn.execute("UPDATE outbox SET state='done'")
    assert expire_boards(store) == {"boards-mqtt": 1}
    assert expire_boards(store) == {}  # once
    queued = store.conn.execute("SELECT key, recipient, not_after_ms FROM outbox WHERE state='queued'").fetchall()
    assert queued == [(f"{gone.identifier}/expired/boards-mqtt/b1", "b1", None)]
    store.close()
