"""XML-DSig on CAP alerts (as IPAWS and WMO members sign them): verification and signing.

Verification answers one of ``valid``, ``invalid``, ``untrusted``, ``expired``, ``weak`` or ``absent``:

1. the enveloped ``ds:Signature`` (a child of ``<alert>``) must verify cryptographically with the certificate it
   carries (signxml does the XML-DSig work) - else ``invalid``;
2. that certificate must be in the trust store, or chain to one in it through certificates the signature carries,
   each issuer on the way a CA allowed to sign certificates (basicConstraints, keyUsage, path length) - else
   ``untrusted``;
3. every certificate on that path must have been valid at the alert's ``sent`` time (an explicit clock: a 2019
   alert signed with a certificate that ran out in 2022 is still validly signed) - else ``expired``;
4. neither the signature nor a digest may use SHA-1 - else ``weak`` (``valid`` when SHA-1 is allowed).

The trust store is a folder of PEM certificates (issuers' own certificates, or the CAs that issue them).
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConfiguration,
    SignatureMethod,
    XMLSigner,
    XMLVerifier,
)

from hub.errors import ConfigError

DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
_DS = "{" + DSIG_NS + "}"
_MAX_CHAIN = 6
_MAX_CARRIED = 16
_MAX_STEPS = 256
_E = TypeVar("_E", bound=x509.ExtensionType)


class SignatureStatus(enum.Enum):
    VALID = "valid"
    INVALID = "invalid"
    UNTRUSTED = "untrusted"
    EXPIRED = "expired"
    WEAK = "weak"
    """Verifies, trusted and in date, but made with SHA-1 (signature or digest method), which no longer protects
    against forgery: counts as ``valid`` only with ``[validation] allow_sha1 = true``."""
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

    def chain(self, leaf: x509.Certificate, carried: list[x509.Certificate],
              at: datetime) -> tuple[SignatureStatus, str]:
        """Whether ``leaf`` is trusted at ``at``: ``valid``, ``expired`` or ``untrusted`` with the reason.

        ``leaf`` is trusted when it is in the store, or when a path of ``carried`` certificates leads from it to a
        certificate in the store and every certificate that issues another on that path is a CA (basicConstraints
        CA:TRUE, keyUsage keyCertSign where the extension is present) whose pathLenConstraint allows the CAs below
        it. Every certificate on the path must have been valid at ``at`` (the alert's sent time), and the leaf
        must be meant for signatures (keyUsage digitalSignature or nonRepudiation where the extension is present).
        """
        problems: list[str] = []
        expired = ""
        for path in _PathSearch(self.certs, carried).paths(leaf):
            problem = _path_problem(path)
            if problem:
                problems.append(problem)
                continue
            late = next((c for c in path if not c.not_valid_before_utc <= at <= c.not_valid_after_utc), None)
            if late is None:
                return SignatureStatus.VALID, ""
            expired = expired or (
                f"certificate {_name(late)} valid {late.not_valid_before_utc.isoformat()} to "
                f"{late.not_valid_after_utc.isoformat()}, alert sent {at.isoformat()}")
        if expired:
            return SignatureStatus.EXPIRED, expired
        if problems:
            return SignatureStatus.UNTRUSTED, problems[0]
        return SignatureStatus.UNTRUSTED, "signing certificate is not in the trust store"


class _PathSearch:
    """Paths from a signing certificate to a trust anchor through carried certificates. The carried ones come from
    the message, so the search is bounded: at most _MAX_CARRIED of them, _MAX_STEPS certificates looked at, each
    issuer check (a signature verification) done once."""

    def __init__(self, anchors: list[x509.Certificate], carried: list[x509.Certificate]) -> None:
        self.anchors = anchors
        self.pinned = {c.fingerprint(hashes.SHA256()) for c in anchors}
        self.carried = list({c.fingerprint(hashes.SHA256()): c for c in carried}.values())[:_MAX_CARRIED]
        self.steps = _MAX_STEPS
        self._issued: dict[tuple[int, int], bool] = {}

    def issued_by(self, cert: x509.Certificate, issuer: x509.Certificate) -> bool:
        key = (id(cert), id(issuer))
        if key not in self._issued:
            self._issued[key] = _issued_by(cert, issuer)
        return self._issued[key]

    def paths(self, cert: x509.Certificate, path: list[x509.Certificate] | None = None
              ) -> Iterator[list[x509.Certificate]]:
        """Every path from the leaf through ``cert`` to a trust anchor (the anchor last), at most _MAX_CHAIN long."""
        path = path or [cert]
        self.steps -= 1
        if self.steps < 0:
            return
        if cert.fingerprint(hashes.SHA256()) in self.pinned:
            yield path
            return
        if len(path) >= _MAX_CHAIN:
            return
        for anchor in self.anchors:
            if self.issued_by(cert, anchor):
                yield [*path, anchor]
        for issuer in self.carried:
            if all(issuer != c for c in path) and self.issued_by(cert, issuer):
                yield from self.paths(issuer, [*path, issuer])


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or f"serial {cert.serial_number}"


def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _path_problem(path: list[x509.Certificate]) -> str:
    """Why a path (leaf first, trust anchor last) does not carry trust, or "" when its structure is sound."""
    usage = _extension(path[0], x509.KeyUsage)
    if usage is not None and not (usage.digital_signature or usage.content_commitment):
        return f"signing certificate {_name(path[0])} is not meant for signatures (keyUsage)"
    for depth, issuer in enumerate(path[1:], start=1):
        basic = _extension(issuer, x509.BasicConstraints)
        if basic is None or not basic.ca:
            return f"certificate {_name(issuer)} issues another but is not a CA (basicConstraints CA:FALSE or absent)"
        usage = _extension(issuer, x509.KeyUsage)
        if usage is not None and not usage.key_cert_sign:
            return f"CA certificate {_name(issuer)} may not sign certificates (keyUsage without keyCertSign)"
        # CA certificates between this one and the leaf, self-issued ones not counted (RFC 5280, 4.2.1.9)
        below = sum(1 for c in path[1:depth] if c.subject != c.issuer)
        if basic.path_length is not None and below > basic.path_length:
            return f"CA certificate {_name(issuer)} allows {basic.path_length} CA(s) below it, the path has {below}"
    return ""


def find_signature(root: etree._Element) -> etree._Element | None:
    for child in root:
        if child.tag == _DS + "Signature":
            return child
    return None


def verify(data: bytes, root: etree._Element, *, at: datetime, trust: TrustStore,
           allow_sha1: bool = False) -> SignatureResult:
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
        return _verify_one(data, sigs[0], at=at, trust=trust, allow_sha1=allow_sha1)
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
            results.append(_verify_one(etree.tostring(copy), copy_sigs[index], at=at, trust=trust,
                                       allow_sha1=allow_sha1))
    return min(results, key=lambda r: _PREFERENCE.index(r.status))


_PREFERENCE = [SignatureStatus.VALID, SignatureStatus.WEAK, SignatureStatus.EXPIRED, SignatureStatus.UNTRUSTED,
               SignatureStatus.INVALID]


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


def _verify_one(data: bytes, sig: etree._Element, *, at: datetime, trust: TrustStore,
                allow_sha1: bool) -> SignatureResult:
    if sig.find(_DS + "SignedInfo") is None:
        return SignatureResult(SignatureStatus.INVALID, "ds:Signature has no SignedInfo")
    warnings: list[str] = []
    sha1 = _uses_sha1(sig)
    if sha1:
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
            _Verifier().verify(data, x509_cert=cert, expect_config=config, validate_schema=False)
        except Exception as err:  # noqa: BLE001 - any failure to verify is "invalid", never a crash
            failure = _reason(err)
            continue
        signer = cert
        break
    if signer is None:
        return SignatureResult(SignatureStatus.INVALID, failure, warnings=tuple(warnings))

    status, detail = trust.chain(signer, carried, at)
    if status is SignatureStatus.VALID and sha1 and not allow_sha1:
        status, detail = SignatureStatus.WEAK, "made with SHA-1; valid only with [validation] allow_sha1 = true"
    return SignatureResult(status, detail, signer.subject.rfc4514_string(), tuple(warnings))


def _uses_sha1(sig: etree._Element) -> bool:
    """True when the signature method or any reference's digest method is SHA-1 (rsa-sha1, dsa-sha1, sha1...)."""
    methods = sig.findall(f"{_DS}SignedInfo/{_DS}SignatureMethod") + sig.findall(
        f"{_DS}SignedInfo/{_DS}Reference/{_DS}DigestMethod")
    return any((m.get("Algorithm") or "").lower().endswith("sha1") for m in methods)


def _verify_bare_key(data: bytes, sig: etree._Element, warnings: tuple[str, ...]) -> SignatureResult:
    """A signature with only a KeyValue: it can be checked, but nothing says whose key it is."""
    config = _config(require_x509=False)
    try:
        _Verifier().verify(data, expect_config=config, validate_schema=False)
    except Exception as err:  # noqa: BLE001 - any failure to verify is "invalid", never a crash
        return SignatureResult(SignatureStatus.INVALID, _reason(err), warnings=warnings)
    return SignatureResult(SignatureStatus.UNTRUSTED, "signed with a bare key (KeyValue), no certificate",
                           warnings=warnings)


class _Verifier(XMLVerifier):
    """signxml's verifier, canonicalising every element as the root of a document of its own.

    libxml2 canonicalises an element that is not a document's root (``SignedInfo`` inside ``Signature``) as a
    document subset, and for its grandchildren it looks up the default namespace in the original tree: a
    ``<Transforms>`` that is in the XML-DSig namespace comes out as ``<Transforms xmlns="">``, so correctly signed
    alerts whose signature declares the default namespace (Environment Canada's NAADS, USGS) fail. signxml already
    re-roots the referenced payload before canonicalising it (``_apply_transforms``); this does the same for
    SignedInfo. ``etree.tostring`` of an element declares every namespace in scope, which is what inclusive C14N
    renders on the apex element, so the output is that of a correct subset canonicalisation. (signxml's own
    ``excise_empty_xmlns_declarations`` would also strip an ``xmlns=""`` that is really there.)
    """

    def _c14n(self, nodes: etree._Element | list[etree._Element], algorithm: CanonicalizationMethod,
              inclusive_ns_prefixes: list[str] | None = None) -> bytes:
        nodes = nodes if isinstance(nodes, list) else [nodes]
        rooted = [self._fromstring(self._tostring(n)) if isinstance(n, etree._Element) and n.getparent() is not None
                  else n for n in nodes]
        c14n: bytes = super()._c14n(rooted, algorithm, inclusive_ns_prefixes=inclusive_ns_prefixes)
        return c14n


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
    if isinstance(key, ec.EllipticCurvePrivateKey):
        method = SignatureMethod.ECDSA_SHA256
    elif isinstance(key, rsa.RSAPrivateKey):
        method = SignatureMethod.RSA_SHA256
    else:  # the two the hub's signatures use (the config says "EC P-256 or RSA"); signxml would fail on others
        raise ValueError(f"the signing key must be an EC or RSA private key, not {type(key).__name__}")
    signer = XMLSigner(signature_algorithm=method, c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#")
    signed: etree._Element = signer.sign(root, key=key, cert=cert_pem.decode())
    return signed
