#!/usr/bin/env python3
"""Ingest benchmark: parse, validate (XSD, semantics, signatures) and store the CAP corpus, repeatedly.

Prints JSON: {"files", "rounds", "ingest_per_s", "lxml_parse_per_s", "ratio", ...}. The baseline is bare
``lxml.etree.fromstring`` on the same bytes in the same run, so the ratio holds on a slow or noisy machine.
Each round ingests into a fresh SQLite store (WAL, synchronous=NORMAL, as the hub runs), so every file is
really stored, not answered as a duplicate. ``ingest_per_s`` is the daemon's path: validation in worker
processes (one per CPU, as ``[validation] workers = 0``), one writer storing in arrival order; the same
ingest in a single process is reported beside it. The bare-parse baseline is single-threaded lxml.
Target: ratio >= 0.25.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.cap.validate import Validator  # noqa: E402
from hub.intake.documents import Intake  # noqa: E402
from hub.intake.pool import ValidationPool, check_in_worker, default_workers  # noqa: E402
from hub.store.db import Store  # noqa: E402

TARGET = 0.25


def load_corpus(folders: list[Path]) -> list[bytes]:
    files = sorted(p for folder in folders for p in folder.glob("*.xml"))
    if not files:
        raise SystemExit(f"no CAP files in {', '.join(map(str, folders))}")
    return [p.read_bytes() for p in files]


def bare_parse(docs: list[bytes], rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        for doc in docs:
            etree.fromstring(doc)
    return time.perf_counter() - started


def ingest(docs: list[bytes], rounds: int, pool: ValidationPool | None = None) -> tuple[float, dict[str, int]]:
    """As the daemon does it: validation in the pool's worker processes (or inline without a pool), one writer
    storing each result in arrival order."""
    validator = Validator()
    outcomes: dict[str, int] = {}
    elapsed = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            with Store(Path(tmp) / f"round{r}.db") as store:
                intake = Intake(validator, store)
                started = time.perf_counter()
                if pool is None:
                    results = [intake.ingest(doc, origin="bench") for doc in docs]
                else:
                    checked = pool.executor.map(check_in_worker, docs, ["verify"] * len(docs), [None] * len(docs))
                    results = [intake.record(report, rec, doc, origin="bench")
                               for doc, (report, rec) in zip(docs, checked, strict=True)]
                elapsed += time.perf_counter() - started
                for result in results:
                    outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
    return elapsed, outcomes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=0,
                    help="validation processes as the daemon runs them (default: one per CPU)")
    ap.add_argument("--corpus", type=Path, action="append",
                    help="folder of CAP files (repeatable; default tests/data/cap and tests/data/cap_legacy)")
    args = ap.parse_args()
    folders = args.corpus or [ROOT / "tests/data/cap", ROOT / "tests/data/cap_legacy"]
    docs = load_corpus(folders)
    workers = args.workers or default_workers()
    pool = ValidationPool(Validator(), workers) if workers > 1 else None
    try:
        ingest(docs, 1, pool)  # warm-up: workers started, schemas loaded, caches filled
        ingest(docs, 1)
        bare_parse(docs, 2)
        # interleave the measurements so drift in machine speed hits all alike
        t_pipe = t_single = t_bare = 0.0
        outcomes: dict[str, int] = {}
        chunks = 4
        per_chunk = max(1, args.rounds // chunks)
        for _ in range(chunks):
            dt, out = ingest(docs, per_chunk, pool)
            t_pipe += dt
            for k, v in out.items():
                outcomes[k] = outcomes.get(k, 0) + v
            t_single += ingest(docs, per_chunk)[0]
            t_bare += bare_parse(docs, per_chunk)
    finally:
        if pool is not None:
            pool.close()
    n = len(docs) * per_chunk * chunks
    result = {
        "files": len(docs),
        "bytes": sum(map(len, docs)),
        "rounds": per_chunk * chunks,
        "ingest_per_s": round(n / t_pipe, 1),
        "lxml_parse_per_s": round(n / t_bare, 1),
        "ratio": round(t_bare / t_pipe, 3),
        "target_ratio": TARGET,
        "workers": workers,
        "ingest_single_process_per_s": round(n / t_single, 1),
        "ratio_single_process": round(t_bare / t_single, 3),
        "outcomes": outcomes,
    }
    result["meets_target"] = result["ratio"] >= TARGET
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
