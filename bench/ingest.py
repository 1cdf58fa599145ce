#!/usr/bin/env python3
"""Ingest benchmark: parse, validate (XSD, semantics, signatures) and store the CAP corpus, repeatedly.

Prints JSON: {"files", "rounds", "ingest_per_s", "lxml_parse_per_s", "ratio", ...}. The baseline is bare
``lxml.etree.fromstring`` on the same bytes in the same run, so the ratio holds on a slow or noisy machine.
Each round ingests into a fresh SQLite store (WAL, synchronous=NORMAL, as the hub runs), so every file is
really stored, not answered as a duplicate. Target: ratio >= 0.25.
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
from hub.intake import Intake  # noqa: E402
from hub.store import Store  # noqa: E402

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


def ingest(docs: list[bytes], rounds: int) -> tuple[float, dict[str, int]]:
    validator = Validator()
    outcomes: dict[str, int] = {}
    elapsed = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            with Store(Path(tmp) / f"round{r}.db") as store:
                intake = Intake(validator, store)
                started = time.perf_counter()
                for doc in docs:
                    result = intake.ingest(doc, origin="bench")
                    outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
                elapsed += time.perf_counter() - started
    return elapsed, outcomes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--corpus", type=Path, action="append",
                    help="folder of CAP files (repeatable; default tests/data/cap and tests/data/cap_legacy)")
    args = ap.parse_args()
    folders = args.corpus or [ROOT / "tests/data/cap", ROOT / "tests/data/cap_legacy"]
    docs = load_corpus(folders)
    ingest(docs, 1)  # warm-up: schemas loaded, caches filled
    bare_parse(docs, 2)
    # interleave the two measurements so drift in machine speed hits both alike
    t_ingest = t_bare = 0.0
    outcomes: dict[str, int] = {}
    chunks = 4
    per_chunk = max(1, args.rounds // chunks)
    for _ in range(chunks):
        dt, out = ingest(docs, per_chunk)
        t_ingest += dt
        for k, v in out.items():
            outcomes[k] = outcomes.get(k, 0) + v
        t_bare += bare_parse(docs, per_chunk)
    n = len(docs) * per_chunk * chunks
    result = {
        "files": len(docs),
        "bytes": sum(map(len, docs)),
        "rounds": per_chunk * chunks,
        "ingest_per_s": round(n / t_ingest, 1),
        "lxml_parse_per_s": round(n / t_bare, 1),
        "ratio": round((n / t_ingest) / (n / t_bare), 3),
        "target_ratio": TARGET,
        "outcomes": outcomes,
    }
    result["meets_target"] = result["ratio"] >= TARGET
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
