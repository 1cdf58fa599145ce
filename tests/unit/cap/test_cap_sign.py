"""hub.cap.sign: XML-DSig verification against a trust store, at the alert's sent time.

Keys and certificates are made here with ``cryptography`` (a throw-away CA and leaves with chosen validity windows);
alerts are signed with :func:`hub.cap.sign.sign`. The corpus adds real IPAWS and Environment Canada signatures.
"""

from __future__ import annotations

import asyncio
import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import DigestAlgorithm, SignatureMethod, XMLSigner

from hub.app import make_validator
from hub.cap import sign as cap_sign
from hub.cap.parse import parse
from hub.cap.sign import SignaturePolicy, SignatureStatus, TrustStore
from hub.cap.validate import Validator, Verdict
from hub.config import load as config_mod
from hub.errors import ConfigError
from hub.intake.pool import ValidationPool
from tests.kits import paths

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


_USAGES = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
           "key_cert_sign", "crl_sign")


def _party(cn: str, not_before: datetime, not_after: datetime, *, issuer: Party | None = None, ca: bool = False,
           kind: str = "ec", path_length: int | None = None, basic: bool = True,
           usage: tuple[str, ...] | None = None) -> Party:
    """A key and its certificate; ``basic=False`` leaves basicConstraints out, ``usage`` adds keyUsage."""
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
    )
    if basic:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    if usage is not None:
        flags = {u: u in usage for u in _USAGES}
        builder = builder.add_extension(x509.KeyUsage(**flags, encipher_only=False, decipher_only=False),
                                        critical=True)
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


def test_signing_refuses_a_key_that_is_neither_ec_nor_rsa(corpus: Path, leaf: Party) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    root = parse((corpus / A2).read_bytes()).root
    with pytest.raises(ValueError, match="must be an EC or RSA private key, not Ed25519PrivateKey"):
        cap_sign.sign(root, key_pem=key_pem, cert_pem=leaf.cert_pem)


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


# -- the path to a trust anchor: only CAs issue, within their path length, all in date at sent ---------------


def _result(data: bytes, trust: TrustStore, **kw: bool) -> cap_sign.SignatureResult:
    parsed = parse(data)
    return cap_sign.verify(data, parsed.root, at=parsed.alert.sent, trust=trust, **kw)


@pytest.mark.parametrize("basic", [True, False], ids=["CA-false", "no-basicConstraints"])
def test_forged_intermediate_from_ordinary_leaf_is_not_valid(corpus: Path, tmp_path: Path, ca: Party,
                                                             basic: bool) -> None:
    """Whoever holds an ordinary certificate of a trusted CA must not be able to mint signers with it."""
    ordinary = _party("ordinary.example.org", *_around_sent(), issuer=ca, basic=basic)
    forged = _party("forged-signer.example.org", *_around_sent(30, 30), issuer=ordinary)
    data = _signed(corpus, forged, chain=(ordinary,))
    store = _store(tmp_path / "trust", ca)
    result = _result(data, store)
    assert result.status is SignatureStatus.UNTRUSTED, result
    assert "CN=ordinary.example.org" in result.detail and "not a CA" in result.detail
    report = Validator(trust=store).check(data, policy=SignaturePolicy.REQUIRE)
    assert report.verdict is Verdict.REJECTED and report.signature is SignatureStatus.UNTRUSTED
    assert "signature required but untrusted" in report.reason
    # the ordinary certificate still signs alerts itself
    assert _status(_signed(corpus, ordinary), store) is SignatureStatus.VALID


def test_intermediate_without_key_cert_sign_is_not_valid(corpus: Path, tmp_path: Path, ca: Party) -> None:
    no_sign = _party("Test CAP CA without keyCertSign", *_around_sent(1000, 1000), issuer=ca, ca=True,
                     usage=("digital_signature", "crl_sign"))
    party = _party("under-no-sign.example.org", *_around_sent(), issuer=no_sign)
    result = _result(_signed(corpus, party, chain=(no_sign,)), _store(tmp_path / "trust", ca))
    assert result.status is SignatureStatus.UNTRUSTED and "keyCertSign" in result.detail, result


def test_proper_intermediate_with_key_usage_is_valid(corpus: Path, tmp_path: Path, ca: Party) -> None:
    issuing = _party("Test CAP Issuing CA 2", *_around_sent(1000, 1000), issuer=ca, ca=True, path_length=0,
                     usage=("key_cert_sign", "crl_sign"))
    party = _party("proper.example.org", *_around_sent(), issuer=issuing, usage=("digital_signature",))
    data = _signed(corpus, party, chain=(issuing,))
    store = _store(tmp_path / "trust", ca)
    assert _result(data, store).status is SignatureStatus.VALID
    report = Validator(trust=store).check(data, policy=SignaturePolicy.REQUIRE)
    assert report.verdict is Verdict.VALID and report.signature is SignatureStatus.VALID


def test_path_length_is_enforced(corpus: Path, tmp_path: Path) -> None:
    """A root that allows no CA below it (pathlen 0), and an intermediate that allows none below itself."""
    strict_root = _party("Strict Root CA", *_around_sent(3650, 3650), ca=True, path_length=0)
    sub = _party("Sub CA", *_around_sent(1000, 1000), issuer=strict_root, ca=True)
    party = _party("too-deep.example.org", *_around_sent(), issuer=sub)
    result = _result(_signed(corpus, party, chain=(sub,)), _store(tmp_path / "strict", strict_root))
    assert result.status is SignatureStatus.UNTRUSTED and "CN=Strict Root CA" in result.detail, result
    direct = _party("direct.example.org", *_around_sent(), issuer=strict_root)
    assert _status(_signed(corpus, direct), _store(tmp_path / "strict-2", strict_root)) is SignatureStatus.VALID

    root = _party("Root CA pathlen 1", *_around_sent(3650, 3650), ca=True, path_length=1)
    mid = _party("Mid CA pathlen 0", *_around_sent(1000, 1000), issuer=root, ca=True, path_length=0)
    low = _party("Low CA", *_around_sent(1000, 1000), issuer=mid, ca=True)
    signer = _party("under-low.example.org", *_around_sent(), issuer=low)
    result = _result(_signed(corpus, signer, chain=(low, mid)), _store(tmp_path / "root1", root))
    assert result.status is SignatureStatus.UNTRUSTED and "CN=Mid CA pathlen 0" in result.detail, result
    signer_mid = _party("under-mid.example.org", *_around_sent(), issuer=mid)
    assert _status(_signed(corpus, signer_mid, chain=(mid,)), _store(tmp_path / "root1-2", root)) \
        is SignatureStatus.VALID


def test_signing_certificate_not_meant_for_signatures(corpus: Path, tmp_path: Path, ca: Party) -> None:
    encrypt_only = _party("encrypt-only.example.org", *_around_sent(), issuer=ca, kind="rsa",
                          usage=("key_encipherment",))
    result = _result(_signed(corpus, encrypt_only), _store(tmp_path / "trust", ca))
    assert result.status is SignatureStatus.UNTRUSTED and "keyUsage" in result.detail, result


def test_every_certificate_on_the_path_must_be_valid_at_sent(corpus: Path, tmp_path: Path, ca: Party) -> None:
    """The signer is in date, but the intermediate (or the root) that vouches for it had run out at sent."""
    ran_out = _party("Ran-out Issuing CA", SENT - timedelta(days=1000), SENT - timedelta(days=1), issuer=ca, ca=True)
    party = _party("under-ran-out.example.org", *_around_sent(), issuer=ran_out)
    result = _result(_signed(corpus, party, chain=(ran_out,)), _store(tmp_path / "trust", ca))
    assert result.status is SignatureStatus.EXPIRED and "CN=Ran-out Issuing CA" in result.detail, result

    old_root = _party("Old Root CA", SENT - timedelta(days=3650), SENT - timedelta(days=1), ca=True)
    under_old = _party("under-old-root.example.org", *_around_sent(), issuer=old_root)
    result = _result(_signed(corpus, under_old), _store(tmp_path / "old-root", old_root))
    assert result.status is SignatureStatus.EXPIRED and "CN=Old Root CA" in result.detail, result


def test_path_search_over_carried_certificates_is_bounded(corpus: Path, tmp_path: Path, ca: Party,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A message can carry many CA certificates of one name and one key, each issuing every other: the search
    for a path to the trust store looks at a bounded number of them, it does not walk every ordering."""
    key = _key("ec")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Loop CA")])
    loop = [Party(key, x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                  .serial_number(x509.random_serial_number()).not_valid_before(SENT - timedelta(days=10))
                  .not_valid_after(SENT + timedelta(days=10))
                  .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                  .sign(key, hashes.SHA256())) for _ in range(30)]
    signer = _party("looped.example.org", *_around_sent(), issuer=loop[0])
    data = _signed(corpus, signer, chain=tuple(loop))
    calls = 0
    real = cap_sign._issued_by

    def counted(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
        nonlocal calls
        calls += 1
        return real(cert, issuer)

    monkeypatch.setattr(cap_sign, "_issued_by", counted)
    result = _result(data, _store(tmp_path / "trust", ca))
    assert result.status is SignatureStatus.UNTRUSTED, result
    assert calls <= 17 * 18, calls  # each (certificate, issuer) pair of at most 16 carried + 1 anchor checked once


# -- SHA-1 ------------------------------------------------------------------------------------------------------


class _LegacySigner(XMLSigner):
    """Signs with SHA-1 as older issuers do (signxml refuses that by default)."""

    def check_deprecated_methods(self) -> None:
        pass


def _signed_sha1(corpus: Path, party: Party, signature: SignatureMethod, digest: DigestAlgorithm) -> bytes:
    root = parse((corpus / A2).read_bytes()).root
    signer = _LegacySigner(signature_algorithm=signature, digest_algorithm=digest,
                           c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#")
    signed = signer.sign(root, key=party.key, cert=party.cert_pem.decode())
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


@pytest.mark.parametrize(("signature", "digest"), [
    (SignatureMethod.RSA_SHA1, DigestAlgorithm.SHA256),
    (SignatureMethod.RSA_SHA256, DigestAlgorithm.SHA1),
    (SignatureMethod.RSA_SHA1, DigestAlgorithm.SHA1),
], ids=["sha1-signature", "sha1-digest", "sha1-both"])
def test_sha1_is_weak_unless_allowed(corpus: Path, tmp_path: Path, ca: Party, signature: SignatureMethod,
                                     digest: DigestAlgorithm) -> None:
    party = _party("legacy.example.org", *_around_sent(), issuer=ca, kind="rsa")
    data = _signed_sha1(corpus, party, signature, digest)
    store = _store(tmp_path / "trust", ca)

    report = Validator(trust=store).check(data)
    assert report.signature is SignatureStatus.WEAK, report.as_dict()
    assert report.as_dict()["signature"] == "weak"
    assert report.verdict is Verdict.ACCEPTED
    assert any("signature weak" in w and "allow_sha1" in w for w in report.warnings), report.warnings
    rejected = Validator(trust=store).check(data, policy=SignaturePolicy.REQUIRE)
    assert rejected.verdict is Verdict.REJECTED and "signature required but weak" in rejected.reason

    allowed = Validator(trust=store, allow_sha1=True).check(data, policy=SignaturePolicy.REQUIRE)
    assert allowed.signature is SignatureStatus.VALID and allowed.verdict is not Verdict.REJECTED
    assert any("SHA-1" in w for w in allowed.warnings)  # still said, even when allowed
    # SHA-1 does not hide a worse verdict
    assert _status(data, _store(tmp_path / "empty")) is SignatureStatus.UNTRUSTED
    assert _status(data.replace(HEADLINE.encode(), b"ALL CLEAR"), store) is SignatureStatus.INVALID


def test_allow_sha1_reaches_the_validators_from_config(corpus: Path, tmp_path: Path, ca: Party) -> None:
    """``[validation] allow_sha1`` reaches the hub's validator and the validation worker processes."""
    party = _party("legacy-config.example.org", *_around_sent(), issuer=ca, kind="rsa")
    data = _signed_sha1(corpus, party, SignatureMethod.RSA_SHA1, DigestAlgorithm.SHA1)
    _store(tmp_path / "trust", ca)
    base = (paths.REPO / "config.toml").read_text(encoding="utf-8")
    assert '# trust_store = "trust"' in base
    text = base.replace('# trust_store = "trust"', 'trust_store = "trust"')
    (tmp_path / "default.toml").write_text(text, encoding="utf-8")
    (tmp_path / "allow.toml").write_text(text.replace('trust_store = "trust"',
                                                      'trust_store = "trust"\nallow_sha1 = true'), encoding="utf-8")
    assert make_validator(config_mod.load(tmp_path / "default.toml")).check(data).signature is SignatureStatus.WEAK
    allowing = make_validator(config_mod.load(tmp_path / "allow.toml"))
    assert allowing.check(data).signature is SignatureStatus.VALID

    async def in_workers(validator: Validator) -> SignatureStatus:
        pool = ValidationPool(validator, 2)
        try:
            report, _rec = await pool.check(data, SignaturePolicy.VERIFY)
            return report.signature
        finally:
            pool.close()

    assert asyncio.run(in_workers(allowing)) is SignatureStatus.VALID
    assert asyncio.run(in_workers(Validator(trust=allowing.trust))) is SignatureStatus.WEAK


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


CANADA = "cap/ca_ec_google-testdata_canada_signed.xml"
USGS = "cap/us_usgs_google-testdata_earthquake-iso8859-1.xml"


def _carried(data: bytes, subject_part: str) -> x509.Certificate:
    certs = [x509.load_der_x509_certificate(base64.b64decode("".join((el.text or "").split())))
             for el in etree.fromstring(data).iter(DS + "X509Certificate")]
    return next(c for c in certs if subject_part in c.subject.rfc4514_string())


def test_canada_environment_canada_signature_verifies(corpus: Path, tmp_path: Path) -> None:
    """Environment Canada's signature (the second of two) verifies; trusted only when its certificate is stored,
    and, being SHA-1 (2013), ``valid`` only where SHA-1 is allowed."""
    data = (corpus / CANADA).read_bytes()
    ec_store = _pem_store(tmp_path / "ec", _carried(data, "meteo.gc.ca"))  # sent 2013, certificate 2011..2015

    assert Validator(trust=_pem_store(tmp_path / "empty")).check(data).signature is SignatureStatus.UNTRUSTED
    weak = Validator(trust=ec_store).check(data)
    assert weak.signature is SignatureStatus.WEAK and "meteo.gc.ca" in weak.signer, weak.as_dict()
    trusted = Validator(trust=ec_store, allow_sha1=True).check(data)
    assert trusted.signature is SignatureStatus.VALID and "meteo.gc.ca" in trusted.signer, trusted.as_dict()


def test_canada_naads_signature_verifies(corpus: Path, tmp_path: Path) -> None:
    """The NAADS signature (Pelmorex, inclusive C14N, the signature in the default namespace) verifies: libxml2's
    subset canonicalisation used to add ``xmlns=""`` to SignedInfo's grandchildren and call it invalid."""
    data = (corpus / CANADA).read_bytes()
    naads = _carried(data, "dss1.pelmorex.com")  # 2012-05-29 .. 2018-05-30, sent 2013-01-24
    root = etree.fromstring(data)
    first = root.find(DS + "Signature")
    assert first is not None and first.get("Id") == "NAADS Signature"
    assert first.find(f"{DS}SignedInfo/{DS}CanonicalizationMethod").get("Algorithm") == (  # type: ignore[union-attr]
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315")

    store = _pem_store(tmp_path / "naads", naads)
    result = _result(data, store, allow_sha1=True)
    assert result.status is SignatureStatus.VALID and "dss1.pelmorex.com" in result.signer, result
    assert _result(data, store).status is SignatureStatus.WEAK

    # NAADS's signature alone (Environment Canada's removed): the cryptographic check itself passes
    for sig in root.findall(DS + "Signature")[1:]:
        root.remove(sig)
    alone = etree.tostring(root)
    assert _result(alone, _pem_store(tmp_path / "empty")).status is SignatureStatus.UNTRUSTED
    assert _result(alone, store, allow_sha1=True).status is SignatureStatus.VALID
    assert _result(alone.replace(b"cap-pac@ec.gc.ca", b"attacker@example.org", 1), store,
                   allow_sha1=True).status is SignatureStatus.INVALID


def test_usgs_signature_verifies(corpus: Path) -> None:
    """USGS signs with a bare RSA key (no certificate): the signature verifies, but nothing says whose key it is."""
    data = (corpus / USGS).read_bytes()
    result = _result(data, TrustStore())
    assert result.status is SignatureStatus.UNTRUSTED, result
    assert "bare key" in result.detail
    report = Validator().check(data)
    assert report.signature is SignatureStatus.UNTRUSTED and not any("signature invalid" in e for e in report.errors)
    tampered = data.replace(b"<value>4.6</value>", b"<value>7.6</value>")
    assert tampered != data
    assert _result(tampered, TrustStore()).status is SignatureStatus.INVALID
