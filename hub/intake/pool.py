"""Validation in worker processes, so both cores parse, check XSDs and verify signatures while one thread writes.

Workers are started with ``spawn`` (never ``fork`` from a process that has threads and an event loop) and get
the trust store as PEM bytes. They return the verdict and a flat :class:`~hub.store.AlertRecord`; the full
model stays in the worker, since pickling it would cost more than the work saved.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from hub.cap.sign import SignaturePolicy, TrustStore
from hub.cap.validate import Report, Validator
from hub.intake.documents import check_document
from hub.store.alerts import AlertRecord

log = logging.getLogger("warnhub.pool")

_validator: Validator | None = None


def _init(trust_pems: list[bytes], max_bytes: int, hub_pid: int, allow_sha1: bool) -> None:
    global _validator
    certs = [x509.load_pem_x509_certificate(pem) for pem in trust_pems]
    _validator = Validator(trust=TrustStore(certs), max_bytes=max_bytes, allow_sha1=allow_sha1)
    # the hub's pid comes from the hub: a worker still starting when the hub is killed would read getppid() == 1
    # here, watch for the wrong parent, and hang on the call queue for ever
    threading.Thread(target=_exit_with_parent, args=(hub_pid,), daemon=True, name="parent-watch").start()


def _exit_with_parent(parent: int) -> None:
    """A hub killed with SIGKILL cannot stop its workers; they notice they were orphaned and leave."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def check_in_worker(raw: bytes, policy: str, path: str | None,
                    notes: tuple[str, ...] = ()) -> tuple[Report, AlertRecord | None]:
    assert _validator is not None, "worker not initialised"
    report, rec = check_document(_validator, raw, SignaturePolicy(policy), path, notes)
    report.alert = None  # stays here; the record carries what the store needs
    return report, rec


_WARM_CAP = b"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>warnhub-warm-up</identifier>
<sender>warm-up@warnhub.invalid</sender><sent>2026-01-01T00:00:00+00:00</sent><status>Test</status>
<msgType>Alert</msgType><scope>Public</scope><info><category>Other</category><event>warm-up</event>
<urgency>Unknown</urgency><severity>Unknown</severity><certainty>Unknown</certainty>
<area><areaDesc>nowhere</areaDesc></area></info></alert>"""


def _warm(hold_s: float) -> int:
    """Parse, validate and build a record once in this worker (schemas, imports, caches), so the first real
    document does not pay for it; returns the worker's pid."""
    check_in_worker(_WARM_CAP, SignaturePolicy.VERIFY.value, None)
    time.sleep(hold_s)  # so that the other workers take the other warm-up calls
    return os.getpid()


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class ValidationPool:
    def __init__(self, validator: Validator, workers: int) -> None:
        self.validator = validator
        self.workers = workers
        self.executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        pems = [c.public_bytes(Encoding.PEM) for c in self.validator.trust.certs]
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init, initargs=(pems, self.validator.max_bytes, os.getpid(),
                                                                      self.validator.allow_sha1))

    async def check(self, raw: bytes, policy: SignaturePolicy, path: str | None = None,
                    notes: tuple[str, ...] = ()) -> tuple[Report, AlertRecord | None]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, check_in_worker, raw, policy.value, path, notes)
        except BrokenProcessPool:
            # a worker died (killed, out of memory): start new ones and check this document here, once
            log.error("validation worker died; restarting the pool")
            old, self.executor = self.executor, self._start()
            old.shutdown(wait=False, cancel_futures=True)
            return await asyncio.to_thread(check_document, self.validator, raw, policy, path, notes)

    async def warm(self, timeout_s: float = 60.0) -> int:
        """Start every worker and let each check one document, so the first warning after start is not delayed by
        process start-up (about half a second); returns how many workers answered. Never raises: a pool that
        cannot start is reported by the first :meth:`check`."""
        loop = asyncio.get_running_loop()
        seen: set[int] = set()
        deadline = loop.time() + timeout_s
        try:
            while len(seen) < self.workers and loop.time() < deadline:
                seen.update(await asyncio.gather(*(loop.run_in_executor(self.executor, _warm, 0.02)
                                                   for _ in range(self.workers))))
        except Exception as err:  # noqa: BLE001 - an optimisation; check() restarts a broken pool
            log.warning("warming the validation workers failed: %r", err)
        return len(seen)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
