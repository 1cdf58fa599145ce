"""XML-DSig on CAP alerts (as IPAWS and WMO members sign them): verification and signing.

Verification answers one of ``valid``, ``invalid``, ``untrusted``, ``expired`` or ``absent``:

1. the enveloped ``ds:Signature`` (a child of ``<alert>``) must verify cryptographically with the certificate it
   carries (signxml does the XML-DSig work) - else ``invalid``;
2. that certificate must be in the trust store, or chain to one in it through certificates the signature carries -
   else ``untrusted``;
3. it must have been valid at the alert's ``sent`` time (an explicit clock: a 2019 alert signed with a certificate
   that ran out in 2022 is still validly signed) - else ``expired``.

The trust store is a folder of PEM certificates (issuers' own certificates, or the CAs that issue them).
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree
from signxml import DigestAlgorithm, SignatureConfiguration, SignatureMethod, XMLSigner, XMLVerifier

from hub.errors import ConfigError

DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
_DS = "{" + DSIG_NS + "}"
_MAX_CHAIN = 6


class SignatureStatus(enum.Enum):
    VALID = "valid"
    INVALID = "invalid"
    UNTRUSTED = "untrusted"
    EXPIRED = "expired"
    ABSENT = "absent"
    UNCHECKED = "unchecked"
    """Only under the ``ignore`` policy: a signature is present but was not looked at."""


class SignaturePolicy(enum.Enum):
    REQUIRE = "require"
    """Anything but a valid, trusted, in-date signature rejects the message."""
    VERIFY = "verify"
    """Check signatures that are present; a failed check flags the message (accepted, not valid)."""
    IGNORE = "ignore"
    """Do not check."""


@dataclass(frozen=True, slots=True)
class SignatureResult:
    status: SignatureStatus
    detail: str = ""
    signer: str = ""
    """The signing certificate's subject, where there was one."""
    warnings: tuple[str, ...] = ()


@dataclass(slots=True)
class TrustStore:
    """Certificates the district trusts to sign CAP: the issuers' own, or the CAs behind them."""

    certs: list[x509.Certificate] = field(default_factory=list)

    @classmethod
    def from_dir(cls, path: Path | None) -> TrustStore:
        store = cls()
        if path is None:
            return store
        if not path.is_dir():
            raise ConfigError(f"{path}: trust store folder does not exist")
        for pem in sorted(path.glob("*.pem")) + sorted(path.glob("*.crt")):
            try:
                store.certs.extend(x509.load_pem_x509_certificates(pem.read_bytes()))
            except ValueError as err:
                raise ConfigError(f"{pem}: not a PEM certificate: {err}") from err
        return store

    def _fingerprints(self) -> set[bytes]:
        return {c.fingerprint(hashes.SHA256()) for c in self.certs}

    def trusts(self, leaf: x509.Certificate, carried: list[x509.Certificate]) -> bool:
        """True when ``leaf`` is in the store or chains to a certificate in it (through ``carried`` ones)."""
        pinned = self._fingerprints()
        current = leaf
        for _ in range(_MAX_CHAIN):
            if current.fingerprint(hashes.SHA256()) in pinned:
                return True
            if any(_issued_by(current, anchor) for anchor in self.certs):
                return True
            nxt = next((c for c in carried if c is not current and _issued_by(current, c)), None)
            if nxt is None:
                return False
            current = nxt
        return False


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def find_signature(root: etree._Element) -> etree._Element | None:
    for child in root:
        if child.tag == _DS + "Signature":
            return child
    return None


def verify(data: bytes, root: etree._Element, *, at: datetime, trust: TrustStore) -> SignatureResult:
    """Check the enveloped signature(s) of a CAP document; ``at`` is the alert's ``sent``.

    Where a message carries several signatures (the issuer's, then an aggregator's as in Canada's NAADS), each is
    checked over the document as it stood when that signature was added; the best result counts.
    """
    sigs = [c for c in root if c.tag == _DS + "Signature"]
    if not sigs:
        if root.find(".//" + _DS + "Signature") is not None:
            return SignatureResult(SignatureStatus.INVALID, "ds:Signature is not a child of <alert>")
        return SignatureResult(SignatureStatus.ABSENT)
    if len(sigs) == 1:
        return _verify_one(data, sigs[0], at=at, trust=trust)
    results = []
    for index in range(len(sigs)):
        # Chained (later signatures removed) and parallel (all others removed, as Environment Canada's alerts that
        # NAADS signs again) signing; signxml checks the first ds:Signature, so the one meant is moved there.
        for drop_earlier in (False, True) if index else (False,):
            copy = etree.fromstring(etree.tostring(root))
            copy_sigs = [c for c in copy if c.tag == _DS + "Signature"]
            for other in copy_sigs[index + 1 :] + (copy_sigs[:index] if drop_earlier else []):
                _remove_keep_tail(other)
            _move_first(copy_sigs[index])
            results.append(_verify_one(etree.tostring(copy), copy_sigs[index], at=at, trust=trust))
    return min(results, key=lambda r: _PREFERENCE.index(r.status))


_PREFERENCE = [SignatureStatus.VALID, SignatureStatus.EXPIRED, SignatureStatus.UNTRUSTED, SignatureStatus.INVALID]


def _remove_keep_tail(el: etree._Element) -> None:
    parent = el.getparent()
    prev = el.getprevious()
    if el.tail:
        if prev is not None:
            prev.tail = (prev.tail or "") + el.tail
        else:
            parent.text = (parent.text or "") + el.tail
    parent.remove(el)


def _move_first(sig: etree._Element) -> None:
    """Make ``sig`` the first ds:Signature of its parent, leaving its tail text where it was."""
    first = next(c for c in sig.getparent() if c.tag == _DS + "Signature")
    if first is not sig:
        _remove_keep_tail(sig)
        sig.tail = None
        first.addprevious(sig)


def _verify_one(data: bytes, sig: etree._Element, *, at: datetime, trust: TrustStore) -> SignatureResult:
    if sig.find(_DS + "SignedInfo") is None:
        return SignatureResult(SignatureStatus.INVALID, "ds:Signature has no SignedInfo")
    warnings: list[str] = []
    method = sig.find(f"{_DS}SignedInfo/{_DS}SignatureMethod")
    if method is not None and "sha1" in (method.get("Algorithm") or "").lower():
        warnings.append("signature uses SHA-1, which is no longer considered secure")
    try:
        carried = [
            x509.load_der_x509_certificate(base64.b64decode("".join((el.text or "").split())))
            for el in sig.iter(_DS + "X509Certificate")
        ]
    except ValueError as err:
        return SignatureResult(SignatureStatus.INVALID, f"unreadable X509Certificate: {err}", warnings=tuple(warnings))
    if not carried:
        return _verify_bare_key(data, sig, tuple(warnings))

    signer: x509.Certificate | None = None
    failure = ""
    for cert in carried:
        # The certificate's own validity is judged below at the alert's sent time; here only the cryptography.
        config = _config(verification_time=cert.not_valid_before_utc)
        try:
            XMLVerifier().verify(data, x509_cert=cert, expect_config=config, validate_schema=False)
        except Exception as err:  # noqa: BLE001 - any failure to verify is "invalid", never a crash
            failure = _reason(err)
            continue
        signer = cert
        break
    if signer is None:
        return SignatureResult(SignatureStatus.INVALID, failure, warnings=tuple(warnings))

    subject = signer.subject.rfc4514_string()
    if not trust.trusts(signer, carried):
        return SignatureResult(
            SignatureStatus.UNTRUSTED, "signing certificate is not in the trust store", subject, tuple(warnings)
        )
    if not signer.not_valid_before_utc <= at <= signer.not_valid_after_utc:
        return SignatureResult(
            SignatureStatus.EXPIRED,
            f"certificate valid {signer.not_valid_before_utc.isoformat()} to {signer.not_valid_after_utc.isoformat()},"
            f" alert sent {at.isoformat()}",
            subject,
            tuple(warnings),
        )
    return SignatureResult(SignatureStatus.VALID, "", subject, tuple(warnings))


def _verify_bare_key(data: bytes, sig: etree._Element, warnings: tuple[str, ...]) -> SignatureResult:
    """A signature with only a KeyValue: it can be checked, but nothing says whose key it is."""
    config = _config(require_x509=False)
    try:
        XMLVerifier().verify(data, expect_config=config, validate_schema=False)
    except Exception as err:  # noqa: BLE001 - any failure to verify is "invalid", never a crash
        return SignatureResult(SignatureStatus.INVALID, _reason(err), warnings=warnings)
    return SignatureResult(SignatureStatus.UNTRUSTED, "signed with a bare key (KeyValue), no certificate",
                           warnings=warnings)


def _config(**kw: object) -> SignatureConfiguration:
    return SignatureConfiguration(
        location="./",
        signature_methods=frozenset(SignatureMethod),
        digest_algorithms=frozenset(DigestAlgorithm),
        ignore_ambiguous_key_info=True,
        **kw,  # type: ignore[arg-type]
    )


def _reason(err: Exception) -> str:
    text = " ".join(str(err).split()).rstrip(":")
    if not text or text == "Signature verification failed" or type(err).__name__ == "InvalidSignature":
        return "signature value does not verify over SignedInfo"
    return text


def sign(root: etree._Element, *, key_pem: bytes, cert_pem: bytes) -> etree._Element:
    """Return a copy of ``root`` with an enveloped XML-DSig (exclusive C14N, SHA-256, certificate in KeyInfo)."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    method = SignatureMethod.ECDSA_SHA256 if isinstance(key, ec.EllipticCurvePrivateKey) else SignatureMethod.RSA_SHA256
    signer = XMLSigner(signature_algorithm=method, c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#")
    signed: etree._Element = signer.sign(root, key=key, cert=cert_pem.decode())
    return signed
