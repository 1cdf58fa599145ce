"""Make ``release1.db``: a database written by the first release (schema 3, tables created lazily), before the
redesign of issue 15. Run once, at commit 6418f30, from the project root:

    python -m pytest -q tests/test_console_web.py --basetemp=/tmp/fixdb
    python -m tests.data.db.make_release1 /tmp/fixdb/console-web0/hub.db tests/data/db/release1.db

The console web kit leaves alerts, threads, decisions, publications, outbox rows, subscriptions, users, sessions,
console warnings and events, drafts, readings, an exercise token and the audit chain; this script adds, with the
same release's code, an identity conflict and a login failure, then writes a compact copy (VACUUM INTO).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hub.access import login_throttle
from hub.access.auth import throttle_of
from hub.cap.validate import Validator
from hub.config.sections import ConsoleSection
from hub.intake.documents import Intake
from hub.store.db import Store
from tests.kits.hubproc import cap_xml

SENT = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


def main(src: Path, dst: Path) -> None:
    store = Store(src)
    intake = Intake(Validator(), store)
    now = SENT + timedelta(hours=1)
    intake.ingest(cap_xml("release1-conflict", headline="Hochwasser an der Elbe bei Hitzacker"), origin="a", now=now)
    intake.ingest(cap_xml("release1-conflict", headline="Entwarnung: keine Gefahr mehr"), origin="b", now=now)
    login_throttle.admit(store, "nobody", "192.0.2.7", "unknown user", throttle=throttle_of(ConsoleSection()),
                         now=datetime.now(UTC))
    dst.unlink(missing_ok=True)
    store.conn.execute("VACUUM INTO ?", (str(dst),))
    store.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
