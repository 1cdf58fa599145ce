"""hub.cap.sign: XML-DSig verification against a trust store, at the alert's sent time.

Keys and certificates are made here with ``cryptography`` (a throw-away CA and leaves with chosen validity windows);
alerts are signed with :func:`hub.cap.sign.sign`. The corpus adds real IPAWS and Environment Canada signatures.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from hub.cap import sign as cap_sign
from hub.cap.parse import parse
from hub.cap.sign import SignaturePolicy, SignatureStatus, TrustStore
from hub.cap.validate import Validator, Verdict
from hub.errors import ConfigError

A2 = "cap/oasis-spec_cap12_appendix_A2.xml"
HEADLINE = "SEVERE THUNDERSTORM WARNING"
SENT = datetime(2003, 6, 17, 21, 57, tzinfo=UTC)  # A2's <sent>2003-06-17T14:57:00-07:00</sent>
DS = "{http://www.w3.org/2000/09/xmldsig#}"


# -- a small PKI ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Party:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _key(kind: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _party(cn: str, not_before: datetime, not_after: datetime, *, issuer: Party | None = None, ca: bool = False,
           kind: str = "ec") -> Party:
    key = _key(kind)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "warnhub tests")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    return Party(key, cert)


def _around_sent(days_before: int = 365, days_after: int = 365) -> tuple[datetime, datetime]:
    """A validity window (not_before, not_after) around the alert's sent time."""
    return SENT - timedelta(days=days_before), SENT + timedelta(days=days_after)


@pytest.fixture(scope="module")
def ca() -> Party:
    return _party("Test CAP Root CA", *_around_sent(3650, 3650), ca=True)


@pytest.fixture(scope="module")
def leaf(ca: Party) -> Party:
    return _party("issuer.example.org", *_around_sent(), issuer=ca)


def _store(folder: Path, *parties: Party) -> TrustStore:
    folder.mkdir(parents=True, exist_ok=True)
    for i, party in enumerate(parties):
        (folder / f"{i:02d}.pem").write_bytes(party.cert_pem)
    return TrustStore.from_dir(folder)


def _signed(corpus: Path, party: Party, *, chain: tuple[Party, ...] = (), name: str = A2) -> bytes:
    root = parse((corpus / name).read_bytes()).root
    cert_pem = party.cert_pem + b"".join(p.cert_pem for p in chain)
    signed = cap_sign.sign(root, key_pem=party.key_pem, cert_pem=cert_pem)
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def _status(data: bytes, trust: TrustStore) -> SignatureStatus:
    parsed = parse(data)
    return cap_sign.verify(data, parsed.root, at=parsed.alert.sent, trust=trust).status


# -- signatures made in the test -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_valid_with_leaf_in_store(corpus: Path, tmp_path: Path, ca: Party, kind: str) -> None:
    party = _party(f"{kind}.issuer.example.org", *_around_sent(), issuer=ca, kind=kind)
    data = _signed(corpus, party)
    assert data.count(b"SignatureValue>") == 2
    report = Validator(trust=_store(tmp_path / "trust", party)).check(data)
    assert report.signature is SignatureStatus.VALID, report.as_dict()
    assert report.verdict is Verdict.VALID, report.as_dict()  # the signed alert still passes the XSD
    assert f"CN={kind}.issuer.example.org" in report.signer
    assert report.alert is not None and report.alert.infos[0].headline == HEADLINE


def test_valid_via_ca_in_store(corpus: Path, tmp_path: Path, ca: Party, leaf: Party) -> None:
    data = _signed(corpus, leaf)  # only the leaf is carried in the signature
    store = _store(tmp_path / "trust", ca)
    assert _status(data, store) is SignatureStatus.VALID
    report = Validator(trust=store).check(data, policy=SignaturePolicy.REQUIRE)
    assert report.verdict is Verdict.VALID and report.signature is SignatureStatus.VALID


def test_valid_via_intermediate_carried(corpus: Path, tmp_path: Path, ca: Party) -> None:
    intermediate = _party("Test CAP Issuing CA", *_around_sent(1000, 1000), issuer=ca, ca=True)
    party = _party("chained.example.org", *_around_sent(), issuer=intermediate)
    data = _signed(corpus, party, chain=(intermediate,))
    assert _status(data, _store(tmp_path / "root-only", ca)) is SignatureStatus.VALID
    # Without the intermediate in the signature, nothing links the leaf to the root.
    assert _status(_signed(corpus, party), _store(tmp_path / "root-only-2", ca)) is SignatureStatus.UNTRUSTED


def test_untrusted_with_empty_store(corpus: Path, tmp_path: Path, leaf: Party) -> None:
    data = _signed(corpus, leaf)
    empty = _store(tmp_path / "empty")
    assert empty.certs == []
    report = Validator(trust=empty).check(data)
    assert report.signature is SignatureStatus.UNTRUSTED
    assert report.verdict is Verdict.ACCEPTED
    assert any("untrusted" in w for w in report.warnings)
    assert Validator().check(data).signature is SignatureStatus.UNTRUSTED  # no store at all


def test_untrusted_with_unrelated_ca(corpus: Path, tmp_path: Path, leaf: Party) -> None:
    other_ca = _party("Other Root CA", *_around_sent(3650, 3650), ca=True)
    assert _status(_signed(corpus, leaf), _store(tmp_path / "other", other_ca)) is SignatureStatus.UNTRUSTED


def test_expired_at_sent_time(corpus: Path, tmp_path: Path, ca: Party) -> None:
    """The certificate ran out the day before the alert was sent: expired, whatever today's date."""
    old = _party("expired.example.org", SENT - timedelta(days=365), SENT - timedelta(days=1), issuer=ca)
    data = _signed(corpus, old)
    store = _store(tmp_path / "trust", old)
    report = Validator(trust=store).check(data)
    assert report.signature is SignatureStatus.EXPIRED
    assert report.verdict is Verdict.ACCEPTED
    assert any("expired" in w for w in report.warnings)
    assert Validator(trust=store).check(data, policy=SignaturePolicy.REQUIRE).verdict is Verdict.REJECTED


def test_not_yet_valid_at_sent_time(corpus: Path, tmp_path: Path, ca: Party) -> None:
    future = _party("future.example.org", SENT + timedelta(days=1), SENT + timedelta(days=365), issuer=ca)
    assert _status(_signed(corpus, future), _store(tmp_path / "trust", future)) is SignatureStatus.EXPIRED


def test_verification_time_is_the_argument(corpus: Path, tmp_path: Path, leaf: Party) -> None:
    data = _signed(corpus, leaf)
    parsed = parse(data)
    store = _store(tmp_path / "trust", leaf)
    assert cap_sign.verify(data, parsed.root, at=SENT, trust=store).status is SignatureStatus.VALID
    later = SENT + timedelta(days=400)  # after the leaf ran out
    assert cap_sign.verify(data, parsed.root, at=later, trust=store).status is SignatureStatus.EXPIRED


@pytest.mark.parametrize(
    ("old", "new"),
    [(HEADLINE, "ALL CLEAR, NO STORM"), ("<severity>Severe</severity>", "<severity>Minor</severity>")],
    ids=["headline", "severity"],
)
def test_tampered_after_signing(corpus: Path, tmp_path: Path, leaf: Party, old: str, new: str) -> None:
    data = _signed(corpus, leaf)
    assert data.count(old.encode()) == 1
    tampered = data.replace(old.encode(), new.encode())
    store = _store(tmp_path / "trust", leaf)
    report = Validator(trust=store).check(tampered)
    assert report.signature is SignatureStatus.INVALID
    assert report.verdict is Verdict.ACCEPTED
    assert any("signature invalid" in e for e in report.errors)
    assert Validator(trust=store).check(tampered, policy=SignaturePolicy.REQUIRE).verdict is Verdict.REJECTED
    assert _status(data, store) is SignatureStatus.VALID  # the untouched copy still verifies


def test_wrong_certificate_is_invalid(corpus: Path, tmp_path: Path, ca: Party, leaf: Party) -> None:
    """Signed with one key but carrying another party's certificate."""
    impostor = _party("impostor.example.org", *_around_sent(), issuer=ca)
    root = parse((corpus / A2).read_bytes()).root
    signed = cap_sign.sign(root, key_pem=impostor.key_pem, cert_pem=leaf.cert_pem)
    data = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
    assert _status(data, _store(tmp_path / "trust", leaf, ca)) is SignatureStatus.INVALID


def test_signature_absent(corpus: Path, tmp_path: Path, leaf: Party) -> None:
    data = (corpus / A2).read_bytes()
    store = _store(tmp_path / "trust", leaf)
    report = Validator(trust=store).check(data)
    assert report.signature is SignatureStatus.ABSENT
    assert report.verdict is Verdict.VALID


def test_signature_not_child_of_alert_is_invalid(corpus: Path, tmp_path: Path, leaf: Party) -> None:
    data = _signed(corpus, leaf)
    root = etree.fromstring(data)
    sig = root.find(DS + "Signature")
    assert sig is not None
    root.remove(sig)
    root.find("{urn:oasis:names:tc:emergency:cap:1.2}info").append(sig)  # type: ignore[union-attr]
    moved = etree.tostring(root)
    assert _status(moved, _store(tmp_path / "trust", leaf)) is SignatureStatus.INVALID


def test_require_policy(corpus: Path, tmp_path: Path, ca: Party, leaf: Party) -> None:
    signed = _signed(corpus, leaf)
    unsigned = (corpus / A2).read_bytes()
    trusted = Validator(trust=_store(tmp_path / "trust", ca))
    untrusting = Validator(trust=_store(tmp_path / "empty"))

    ok = trusted.check(signed, policy=SignaturePolicy.REQUIRE)
    assert ok.verdict is Verdict.VALID and ok.signature is SignatureStatus.VALID

    absent = trusted.check(unsigned, policy=SignaturePolicy.REQUIRE)
    assert absent.verdict is Verdict.REJECTED and absent.signature is SignatureStatus.ABSENT
    assert "signature required but absent" in absent.reason

    untrusted = untrusting.check(signed, policy=SignaturePolicy.REQUIRE)
    assert untrusted.verdict is Verdict.REJECTED and untrusted.signature is SignatureStatus.UNTRUSTED
    assert "signature required but untrusted" in untrusted.reason

    # Under VERIFY the same two are accepted (untrusted) and valid (absent).
    assert untrusting.check(signed).verdict is Verdict.ACCEPTED
    assert trusted.check(unsigned).verdict is Verdict.VALID


# -- several signatures ----------------------------------------------------------------------------------------


def _signers(ca: Party) -> tuple[Party, Party]:
    return (_party("first.example.org", *_around_sent(), issuer=ca),
            _party("second.example.org", *_around_sent(), issuer=ca, kind="rsa"))


def test_chained_signatures_each_verified(corpus: Path, tmp_path: Path, ca: Party) -> None:
    """A second signature added over the signed alert (it covers the first): either signer alone is enough."""
    first, second = _signers(ca)
    once = _signed(corpus, first)
    twice = etree.tostring(cap_sign.sign(parse(once).root, key_pem=second.key_pem, cert_pem=second.cert_pem))
    assert len(parse(twice).root.findall(DS + "Signature")) == 2
    assert _status(twice, _store(tmp_path / "first", first)) is SignatureStatus.VALID
    assert _status(twice, _store(tmp_path / "second", second)) is SignatureStatus.VALID
    assert _status(twice, _store(tmp_path / "none")) is SignatureStatus.UNTRUSTED


def test_parallel_signatures_each_verified(corpus: Path, tmp_path: Path, ca: Party) -> None:
    """Two signatures over the same unsigned alert, side by side (as NAADS re-signs Environment Canada's)."""
    first, second = _signers(ca)
    a = etree.fromstring(_signed(corpus, first))
    b = etree.fromstring(_signed(corpus, second))
    a.append(b.find(DS + "Signature"))  # type: ignore[arg-type]
    both = etree.tostring(a)
    assert len(parse(both).root.findall(DS + "Signature")) == 2
    assert _status(both, _store(tmp_path / "first", first)) is SignatureStatus.VALID
    assert _status(both, _store(tmp_path / "second", second)) is SignatureStatus.VALID
    assert _status(both, _store(tmp_path / "none")) is SignatureStatus.UNTRUSTED


# -- trust store -------------------------------------------------------------------------------------------------


def test_trust_store_reads_pem_and_crt(tmp_path: Path, ca: Party, leaf: Party) -> None:
    folder = tmp_path / "trust"
    folder.mkdir()
    (folder / "bundle.pem").write_bytes(ca.cert_pem + leaf.cert_pem)
    (folder / "extra.crt").write_bytes(leaf.cert_pem)
    (folder / "notes.txt").write_text("ignored")
    assert len(TrustStore.from_dir(folder).certs) == 3
    assert TrustStore.from_dir(None).certs == []


def test_trust_store_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        TrustStore.from_dir(tmp_path / "missing")
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(ConfigError) as caught:
        TrustStore.from_dir(tmp_path)
    assert "bad.pem" in str(caught.value)


# -- real signatures in the corpus --------------------------------------------------------------------------------


def _embedded_cert(data: bytes) -> x509.Certificate:
    found = re.findall(rb"<(?:\w+:)?X509Certificate>(.*?)</(?:\w+:)?X509Certificate>", data, re.S)
    assert len(found) == 1
    return x509.load_der_x509_certificate(base64.b64decode(b"".join(found[0].split())))


def _pem_store(folder: Path, *certs: x509.Certificate) -> TrustStore:
    folder.mkdir(parents=True, exist_ok=True)
    for i, cert in enumerate(certs):
        (folder / f"cert{i}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return TrustStore.from_dir(folder)


def test_ipaws_alertsense_valid_at_sent_time(corpus: Path, tmp_path: Path) -> None:
    """A 2019 IPAWS Cancel signed with a certificate that ran out in 2022 still verifies: judged at sent time."""
    data = (corpus / "cap/us_ipaws_oasiscap_alertsense-cancel.xml").read_bytes()
    cert = _embedded_cert(data)
    assert cert.not_valid_before_utc.date().isoformat() == "2019-03-05"
    assert cert.not_valid_after_utc.date().isoformat() == "2022-03-04"
    assert cert.not_valid_after_utc < datetime.now(UTC)  # long expired today

    store = _pem_store(tmp_path / "ipaws", cert)
    report = Validator(trust=store).check(data)
    assert report.alert is not None
    assert report.alert.sent == datetime(2019, 4, 19, 11, 46, 20, tzinfo=timezone(timedelta(hours=-6)))
    assert report.signature is SignatureStatus.VALID, report.as_dict()
    assert "IPAWSOPEN_200302" in report.signer
    assert report.verdict is Verdict.VALID
    assert Validator(trust=store).check(data, policy=SignaturePolicy.REQUIRE).verdict is Verdict.VALID

    # The same signature judged at a time after the certificate ran out is "expired".
    parsed = parse(data)
    after = datetime(2023, 1, 1, tzinfo=UTC)
    assert cap_sign.verify(data, parsed.root, at=after, trust=store).status is SignatureStatus.EXPIRED


def test_ipaws_alertsense_untrusted_with_empty_store(corpus: Path, tmp_path: Path) -> None:
    data = (corpus / "cap/us_ipaws_oasiscap_alertsense-cancel.xml").read_bytes()
    report = Validator(trust=_pem_store(tmp_path / "empty")).check(data)
    assert report.signature is SignatureStatus.UNTRUSTED
    assert report.verdict is Verdict.ACCEPTED
    assert Validator(trust=_pem_store(tmp_path / "empty2")).check(
        data, policy=SignaturePolicy.REQUIRE).verdict is Verdict.REJECTED


def test_ipaws_montgomery_valid_with_its_certificate(corpus: Path, tmp_path: Path) -> None:
    data = (corpus / "cap/us_ipaws_oasiscap_montgomery-md.xml").read_bytes()
    store = _pem_store(tmp_path / "ipaws", _embedded_cert(data))
    assert _status(data, store) is SignatureStatus.VALID
    assert _status(data, _pem_store(tmp_path / "empty")) is SignatureStatus.UNTRUSTED


def test_ipaws_certificate_does_not_vouch_for_another_sender(corpus: Path, tmp_path: Path) -> None:
    alertsense = (corpus / "cap/us_ipaws_oasiscap_alertsense-cancel.xml").read_bytes()
    montgomery = (corpus / "cap/us_ipaws_oasiscap_montgomery-md.xml").read_bytes()
    store = _pem_store(tmp_path / "ipaws", _embedded_cert(alertsense))
    assert _status(montgomery, store) is SignatureStatus.UNTRUSTED


def test_ipaws_tampered_is_invalid(corpus: Path, tmp_path: Path) -> None:
    data = (corpus / "cap/us_ipaws_oasiscap_alertsense-cancel.xml").read_bytes()
    store = _pem_store(tmp_path / "ipaws", _embedded_cert(data))
    sender = b"bbrundage@dps.state.nv.us"
    assert sender in data
    assert _status(data.replace(sender, b"attacker@example.org", 1), store) is SignatureStatus.INVALID


def test_tsunami_placeholder_signature_is_invalid(corpus: Path) -> None:
    data = (corpus / "cap/us_wcatwc_oasiscap_tsunami-update-multiref.xml").read_bytes()
    report = Validator().check(data)
    assert report.signature is SignatureStatus.INVALID
    assert report.verdict is Verdict.ACCEPTED
    assert Validator().check(data, policy=SignaturePolicy.REQUIRE).verdict is Verdict.REJECTED


def test_canada_second_signature_verifies(corpus: Path, tmp_path: Path) -> None:
    """Environment Canada's signature (the second of two) verifies; its certificate is trusted only when stored."""
    data = (corpus / "cap/ca_ec_google-testdata_canada_signed.xml").read_bytes()
    root = etree.fromstring(data)
    certs = [
        x509.load_der_x509_certificate(base64.b64decode("".join((el.text or "").split())))
        for el in root.iter(DS + "X509Certificate")
    ]
    ec_cert = next(c for c in certs if "meteo.gc.ca" in c.subject.rfc4514_string())

    report = Validator(trust=_pem_store(tmp_path / "empty")).check(data)
    assert report.signature is SignatureStatus.UNTRUSTED, report.as_dict()
    assert "meteo.gc.ca" in report.signer

    trusted = Validator(trust=_pem_store(tmp_path / "ec", ec_cert)).check(data)
    assert trusted.signature is SignatureStatus.VALID, trusted.as_dict()  # sent 2013, cert 2011..2015
