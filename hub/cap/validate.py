"""Validation of CAP documents into three verdicts.

- ``valid``: the XSD of its CAP version and every semantic check pass, and nothing was flagged;
- ``accepted``: readable and usable, but flagged (schema deviations such as element order, semantic errors or
  warnings, a signature that is present but failed - invalid, untrusted, expired or weak - under the ``verify``
  policy; a ``sent`` more than :data:`SENT_AHEAD` ahead of the hub's clock);
- ``rejected``: unusable or hostile (not XML, DOCTYPE/entities, too big, not CAP, no identity, or a signature the
  source's ``require`` policy demands and the message lacks).
"""

from __future__ import annotations

import enum
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lxml import etree

from hub.cap import parse as cap_parse
from hub.cap.model import Alert, MsgType, Scope
from hub.cap.sign import SignaturePolicy, SignatureResult, SignatureStatus, TrustStore, verify
from hub.errors import ParseError

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "cap_schemas"
SCHEMA_FILES = {"1.2": "CAP-v1.2.xsd", "1.1": "CAP-v1.1.xsd", "1.0": "CAP-v1.0.xsd"}
_MAX_SCHEMA_MESSAGES = 10
SENT_AHEAD = timedelta(minutes=5)
"""A ``sent`` further ahead of the hub's clock than this is flagged: the sender's clock (or the hub's) is wrong."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Verdict(enum.Enum):
    VALID = "valid"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(slots=True)
class Report:
    verdict: Verdict
    cap_version: str | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    signature: SignatureStatus = SignatureStatus.ABSENT
    signer: str = ""
    alert: Alert | None = None
    path: str | None = None

    @property
    def reason(self) -> str:
        """One line: why it was rejected (or the first flag)."""
        return (self.errors or self.warnings or [""])[0]

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "verdict": self.verdict.value,
            "cap_version": self.cap_version,
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "signature": self.signature.value,
        }


_local = threading.local()


def _schema(version: str) -> etree.XMLSchema:
    """The XSD for a CAP version, loaded once per thread (a schema's error log is per instance)."""
    cache: dict[str, etree.XMLSchema] = getattr(_local, "schemas", None) or {}
    _local.schemas = cache
    if version not in cache:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        doc = etree.parse(str(SCHEMA_DIR / SCHEMA_FILES[version]), parser)
        cache[version] = etree.XMLSchema(doc)
    return cache[version]


def schema_errors(root: etree._Element, version: str) -> list[str]:
    if version not in SCHEMA_FILES:
        return []
    schema = _schema(version)
    if schema.validate(root):
        return []
    errors = list(schema.error_log)[:_MAX_SCHEMA_MESSAGES]
    out = [f"schema: line {e.line}: {' '.join(e.message.split())}" for e in errors]
    more = len(schema.error_log) - _MAX_SCHEMA_MESSAGES
    if more > 0:
        out.append(f"schema: {more} more")
    return out


class Validator:
    """Parses, checks and verifies CAP documents; one per hub (holds the trust store and limits)."""

    def __init__(self, *, trust: TrustStore | None = None, max_bytes: int = cap_parse.DEFAULT_MAX_BYTES,
                 allow_sha1: bool = False, clock: Callable[[], datetime] = _utc_now) -> None:
        self.trust = trust or TrustStore()
        self.clock = clock
        """The hub's clock, for the check of ``sent`` (injected by tests)."""
        self.max_bytes = max_bytes
        self.allow_sha1 = allow_sha1
        """Whether a SHA-1 signature that otherwise passes counts as ``valid`` (else ``weak``)."""

    def check(
        self,
        data: bytes,
        *,
        policy: SignaturePolicy = SignaturePolicy.VERIFY,
        path: str | None = None,
    ) -> Report:
        try:
            parsed = cap_parse.parse(data, max_bytes=self.max_bytes)
        except ParseError as err:
            return Report(Verdict.REJECTED, errors=[str(err)], path=path)
        report = Report(
            Verdict.VALID,
            cap_version=parsed.version,
            errors=list(parsed.errors),
            warnings=list(parsed.warnings),
            alert=parsed.alert,
            path=path,
        )
        report.errors.extend(schema_errors(parsed.root, parsed.version))
        sem_errors, sem_warnings = semantic_checks(parsed.alert)
        report.errors.extend(sem_errors)
        report.warnings.extend(sem_warnings)
        report.warnings.extend(clock_checks(parsed.alert, self.clock()))
        self._signature(report, data, parsed.root, parsed.alert, policy)
        if report.verdict is not Verdict.REJECTED and (report.errors or report.warnings):
            report.verdict = Verdict.ACCEPTED
        return report

    def _signature(
        self, report: Report, data: bytes, root: etree._Element, alert: Alert, policy: SignaturePolicy
    ) -> None:
        if policy is SignaturePolicy.IGNORE:
            report.signature = (
                SignatureStatus.ABSENT if root.find(f".//{{{cap_parse.DSIG_NS}}}Signature") is None
                else SignatureStatus.UNCHECKED
            )
            return
        result: SignatureResult = verify(bytes(data), root, at=alert.sent, trust=self.trust,
                                         allow_sha1=self.allow_sha1)
        report.signature = result.status
        report.signer = result.signer
        report.warnings.extend(result.warnings)
        status = result.status
        if policy is SignaturePolicy.REQUIRE and status is not SignatureStatus.VALID:
            report.verdict = Verdict.REJECTED
            detail = f": {result.detail}" if result.detail else ""
            report.errors.insert(0, f"signature required but {status.value}{detail}")
        elif status is SignatureStatus.INVALID:
            report.errors.append(f"signature invalid: {result.detail}")
        elif status in (SignatureStatus.UNTRUSTED, SignatureStatus.EXPIRED, SignatureStatus.WEAK):
            report.warnings.append(f"signature {status.value}: {result.detail}")


# -- semantic checks ----------------------------------------------------------------------------------------

_BAD_ID_CHARS = set(" ,<&\t\n")


def semantic_checks(alert: Alert) -> tuple[list[str], list[str]]:
    """What CAP 1.2 requires beyond the XSD (and what a warning hub must not trust blindly)."""
    errors: list[str] = []
    warnings: list[str] = []
    for name in ("identifier", "sender"):
        value = getattr(alert, name)
        if _BAD_ID_CHARS & set(value):
            errors.append(f"{name}: {value!r} contains spaces, commas or restricted characters")
    if alert.msg_type in (MsgType.UPDATE, MsgType.CANCEL, MsgType.ACK, MsgType.ERROR) and not alert.references:
        errors.append(f"msgType {alert.msg_type.value} must reference the message(s) it concerns")
    for ref in alert.references:
        if _BAD_ID_CHARS & set(ref.sender + ref.identifier):
            errors.append(f"references: {ref.sender},{ref.identifier} contains restricted characters")
        if ref.key() == (alert.sender, alert.identifier):
            warnings.append("references: the message references itself")
        elif ref.sent > alert.sent:
            warnings.append(f"references: {ref.identifier} was sent after this message")
    if alert.scope is Scope.RESTRICTED and not alert.restriction:
        errors.append("scope Restricted needs a restriction")
    if alert.scope is Scope.PRIVATE and not alert.addresses:
        errors.append("scope Private needs addresses")
    for i, info in enumerate(alert.infos):
        where = f"info[{i}]"
        if info.language is not None and not cap_parse.is_language_tag(info.language):
            errors.append(f"{where}.language: {info.language!r} is not an RFC 3066 language tag")
        _times(info.effective, info.onset, info.expires, where, errors)
        for j, area in enumerate(info.areas):
            _area_checks(area, f"{where}.area[{j}]", errors)
    return errors, warnings


def clock_checks(alert: Alert, now: datetime) -> list[str]:
    """Flags for a ``sent`` ahead of the hub's clock (``now``). The alert is still used: a warning is never dropped
    for its sender's clock; the flag shows in the console, and the sender's next messages are ordered by their own
    ``sent``. (One whose ``expires`` has passed is stored but never published: see hub.decide.decisions.LIVE.)"""
    ahead = alert.sent - now
    if ahead <= SENT_AHEAD:
        return []
    minutes = int(ahead.total_seconds() // 60)
    days, hours = minutes // 1440, minutes % 1440 // 60
    span = f"{days} d {hours} h" if days else f"{hours} h {minutes % 60} min"
    return [f"sent {alert.sent.isoformat()} lies {span} ahead of the hub's clock: the sender's clock (or the hub's) "
            "is wrong"]


def _times(effective: datetime | None, onset: datetime | None, expires: datetime | None, where: str,
           errors: list[str]) -> None:
    if expires is None:
        return
    if effective is not None and expires <= effective:
        errors.append(f"{where}: expires {expires.isoformat()} is not after effective {effective.isoformat()}")
    if onset is not None and expires <= onset:
        errors.append(f"{where}: expires {expires.isoformat()} is not after onset {onset.isoformat()}")


def _in_range(lat: float, lon: float) -> bool:
    return -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0 and not (math.isnan(lat) or math.isnan(lon))


def _area_checks(area: Any, where: str, errors: list[str]) -> None:
    for k, polygon in enumerate(area.polygons):
        if len(polygon) < 4:
            errors.append(f"{where}.polygon[{k}]: {len(polygon)} points, a closed polygon needs at least 4")
        elif polygon[0] != polygon[-1]:
            errors.append(f"{where}.polygon[{k}]: not closed (first point differs from last)")
        bad = next((p for p in polygon if not _in_range(*p)), None)
        if bad is not None:
            errors.append(f"{where}.polygon[{k}]: point {bad[0]},{bad[1]} out of range (lat,lon order?)")
    for k, circle in enumerate(area.circles):
        if not _in_range(*circle.center):
            errors.append(f"{where}.circle[{k}]: centre {circle.center[0]},{circle.center[1]} out of range")
        if not circle.radius_km >= 0:
            errors.append(f"{where}.circle[{k}]: radius {circle.radius_km} is negative")
    if area.ceiling is not None:
        if area.altitude is None:
            errors.append(f"{where}: ceiling given without altitude")
        elif area.ceiling < area.altitude:
            errors.append(f"{where}: ceiling below altitude")
