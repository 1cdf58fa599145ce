"""Ending a public warning without the console (``warnhub cancel``): the same domain path as the console's
"Aufheben" (:func:`~hub.console.drafts.follow_up` ``cancel``, then :func:`~hub.console.release.send` alone with a
reason), for the night the console is unreachable. The Cancel is stored with its publish decision in one
transaction; the pipeline publishes it like any console cancel (a running hub within its idle wake-up, 30 s; a
stopped hub when it starts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.console.drafts import follow_up
from hub.console.model import ConsoleConfig, ConsoleError, ConsoleUser, _msg
from hub.console.release import Sent, send
from hub.console.tables import versions
from hub.console.targeting import preview_for
from hub.store.db import Store


@dataclass(frozen=True, slots=True)
class LocalOperator:
    """Whoever runs ``warnhub cancel`` on the hub's machine without ``--user``: they can read the hub's files and
    store anyway. Acts as an approver for the district; audited as ``cli:<os user>``."""

    name: str
    scopes: tuple[str, ...]
    id: int = 0
    roles: frozenset[str] = field(default_factory=lambda: frozenset({"approver"}))

    def can(self, permission: str) -> bool:
        return permission in ("read", "compose", "approve")


def console_thread(store: Store, name: str) -> str:
    """The console thread a name given by an operator means: ``c…`` (the console's thread), ``w…`` (the public
    page's publication thread) or the number of the stored incident (``/console/incidents/N``)."""
    name = name.strip()
    if name.startswith("c") and versions(store, name):
        return name
    number = name[1:].split("-", 1)[0] if name.startswith("w") else name  # w12, or w12-uelzen (issue 19)
    if number.isdigit():
        row = store.conn.execute("SELECT thread FROM console_warnings WHERE store_thread=? LIMIT 1",
                                 (int(number),)).fetchone()
        if row is not None:
            return str(row[0])
    raise ConsoleError(_msg(f"Zu „{name}“ gibt es keine Warnung aus der Konsole (erwartet: c…, w… oder die Nummer "
                            "des Vorgangs).", f"There is no console warning “{name}” (expected c…, w… or the "
                            "incident number)."))


def cancel(store: Store, cfg: ConsoleConfig, user: ConsoleUser, thread: str, reason: str, *,
           now: datetime | None = None) -> Sent:
    """Cancel the warning of ``thread`` (see :func:`console_thread`) as ``user``, alone with ``reason``."""
    rows = versions(store, console_thread(store, thread))
    if rows[-1]["district"] not in (cfg.district, ""):  # many districts: only with its own district's config
        raise ConsoleError(_msg("Diese Warnung gehört zu einem anderen Kreis.", "This warning is another district's."))
    draft = follow_up(store, user, rows[-1]["id"], "cancel", cfg=cfg, now=now)
    token = str(preview_for(store, cfg, None, draft["id"], now=now)["token"])
    return send(store, user, draft["id"], token=token, cfg=cfg, reason=reason, now=now)


def summary(sent: Sent, cfg: ConsoleConfig) -> dict[str, Any]:
    w = sent.warning
    return {"thread": w["thread"], "version": w["version"], "identifier": sent.identifier,
            "incident": sent.store_thread, "publication": cfg.publication_thread(sent.store_thread)}
