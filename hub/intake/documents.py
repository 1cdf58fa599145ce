"""Intake: every document any source brings passes here, is validated, and is stored before anything acts on it.

Two halves so the daemon can spread the CPU work over processes (see hub.intake.pool) while one thread writes:
:func:`check_document` (parse, XSD, semantics, signature; pure, runs anywhere) and :meth:`Intake.record`
(writes the verdict to the store). :meth:`Intake.ingest` does both in the caller's thread (CLI, tests).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from hub.cap.sign import SignaturePolicy
from hub.cap.validate import Report, Validator, Verdict
from hub.store.alerts import AlertRecord
from hub.store.db import Store

log = logging.getLogger("warnhub.intake")


@dataclass(frozen=True, slots=True)
class IntakeResult:
    outcome: str
    """``new``, ``duplicate``, ``conflict`` (same CAP identity, other content: both kept, see hub.store.conflicts) or
    ``rejected``."""
    report: Report
    alert_id: int | None = None
    thread_id: int | None = None
    state: str | None = None
    sender: str | None = None
    """CAP sender and identifier of what was stored (set unless rejected). Use these, not ``report.alert``: a
    report that comes back from a validation worker process carries no model."""
    identifier: str | None = None
    replaced: bool = False
    """For a conflict: this copy's better signature made it the stored version (the rules decide it again)."""

    @property
    def reason(self) -> str:
        return self.report.reason


def check_document(validator: Validator, raw: bytes, policy: SignaturePolicy,
                   path: str | None = None, notes: tuple[str, ...] = ()) -> tuple[Report, AlertRecord | None]:
    """Validate one document; for a readable one also build what the store will write.

    ``notes`` are flags from the adapter that made the document (a NINA message whose references had to be
    repaired, coordinates dropped...): they join the report's warnings, so a valid document becomes ``accepted``.
    """
    report = validator.check(raw, policy=policy, path=path)
    if notes and report.verdict is not Verdict.REJECTED:
        report.warnings.extend(notes)
        if report.verdict is Verdict.VALID:
            report.verdict = Verdict.ACCEPTED
    if report.verdict is Verdict.REJECTED or report.alert is None:
        return report, None
    return report, AlertRecord.from_report(report)


class Intake:
    def __init__(self, validator: Validator, store: Store) -> None:
        self.validator = validator
        self.store = store

    def ingest(self, raw: bytes, *, origin: str, policy: SignaturePolicy = SignaturePolicy.VERIFY,
               path: str | None = None, now: datetime | None = None, notes: tuple[str, ...] = (),
               durable: bool = False) -> IntakeResult:
        report, rec = check_document(self.validator, raw, policy, path, notes)
        return self.record(report, rec, raw, origin=origin, now=now, durable=durable)

    def record(self, report: Report, rec: AlertRecord | None, raw: bytes, *, origin: str,
               now: datetime | None = None, durable: bool = False, relay: bool = False) -> IntakeResult:
        """Store a checked document: the alert (new or duplicate), or the rejection with its reason.

        ``durable``: the commit is on disk when this returns, whatever ``[store] synchronous`` says, for a source
        that tells its sender "stored" afterwards (moves the file, acknowledges); see ``Store.transaction``.
        ``relay``: the document is the hub's rendering of an alert an adapter converted from another format (NINA
        JSON); it is never compared for identity conflicts (see hub.store.conflicts).

        Inside a caller's open transaction (the console stores its warning with its decision, hub.console.release)
        the write is a savepoint of it and commits or rolls back with the caller's; the log line then tells what
        was written, before that commit."""
        if rec is None:
            self.store.add_rejection(raw, origin=origin, reason=report.reason, now=now, durable=durable)
            log.warning("rejected document from %s: %s", origin, report.reason,
                        extra={"origin": origin, "path": report.path})
            return IntakeResult("rejected", report)
        added = self.store.add_record(rec, raw, origin=origin, now=now, durable=durable, relay=relay)
        log.info("%s alert=%s/%s thread=%s state=%s verdict=%s", added.outcome, rec.sender, rec.identifier,
                 added.thread_id, added.state, rec.verdict,
                 extra={"alert": f"{rec.sender}/{rec.identifier}", "origin": origin})
        return IntakeResult(added.outcome, report, added.alert_id, added.thread_id, added.state, rec.sender,
                            rec.identifier, added.replaced)
