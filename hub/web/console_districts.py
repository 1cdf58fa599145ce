"""Each authority's console sees and decides only its own (issue 19): the district of a console request, the one
refusal for everything of another district, and each district's compose templates.

- A signed-in user's district is the one all their scope regions lie in
  (:meth:`hub.config.districts.Districts.of_scopes`); in a single-district hub every user belongs to its one district,
  as before. A user without one (scopes in no district or in several, the ``provider`` role) gets 403 on every
  console route but sign-in, sign-out and ``api/me`` (:func:`middleware`).
- Everything of another district (a warning, a rule's draft, a publication, a console thread among the incidents, a
  compose template) is refused with :func:`forbidden`: 403 and always the same body, which names, counts and
  describes nothing; an id that exists nowhere stays 404.
- A district owns rows with its Kreis key; the first district also rows not yet given to one (``''``: written before
  districts existed, :meth:`hub.store.db.Store.adopt_district` gives them to it at the next start) (:func:`owners`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from hub.config.districts import District, Districts
from hub.decide.rules.problems import Problem, RulesError
from hub.decide.rules.template_checks import compose_templates, load_templates, template_paths
from hub.decide.rules.templates import COMPOSE_FOLDER, Template
from hub.web.auth import USER_KEY

log = logging.getLogger("warnhub.web.console")

FORBIDDEN = {"error": "Kein Zugriff / forbidden"}
"""The body of every refusal of another district's thing: the same whatever it is and whether it exists."""
PROVIDER = "provider"
"""The role of the provider's staff: they run the hub for the districts and see no district's content."""
OPEN_PATHS = ("/login", "/logout", "/api/me")
"""Console paths (after the prefix) that need no district: signing in and out, and who is signed in."""
DISTRICT_KEY = web.RequestKey("district", District)
"""The district of a console request (set by :func:`middleware` for every signed-in request)."""


def forbidden() -> web.HTTPForbidden:
    """403 with the fixed body (JSON), for anything of another district, on pages and in the API alike."""
    return web.HTTPForbidden(text=json.dumps(FORBIDDEN, ensure_ascii=False), content_type="application/json")


def district_of(districts: Districts, user: Any) -> District | None:
    """A console user's district: in a single-district hub its one district (every user, as before), else the one
    their scopes lie in; None for a provider and for scopes in no district or in several."""
    if PROVIDER in user.roles:
        return None
    if not districts.multi:
        return districts.first
    return districts.of_scopes(user.scopes)


def owners(district: District) -> tuple[str, ...]:
    """The ``district`` column values of ``district``'s rows: its Kreis key, and for the first district also ``''``
    (rows from before districts, which it gets at the next start anyway)."""
    return (district.ars, "") if district.index == 0 else (district.ars,)


def owns(district: District, row_district: str | None) -> bool:
    return (row_district or "") in owners(district)


def middleware(prefix: str, districts: Any) -> Any:
    """Resolve the district of every signed-in console request (``districts()``: the districts in force); refuse
    a user without one. Must run inside hub.web.auth's middleware (which sets the user)."""

    @web.middleware
    async def scoped(request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path
        user = request.get(USER_KEY)
        if user is not None and (path == prefix or path.startswith(prefix + "/")) \
                and path[len(prefix):] not in OPEN_PATHS:
            found = district_of(districts(), user)
            if found is None:
                raise forbidden()
            request[DISTRICT_KEY] = found
        return await handler(request)

    return scoped


def district(request: web.Request) -> District:
    """The request's district (refused when the middleware found none)."""
    found = request.get(DISTRICT_KEY)
    if found is None:
        raise forbidden()
    return found


# -- compose templates per district ---------------------------------------------------------------------------------


@dataclass
class Offered:
    """One district's compose templates as last read: the files' stamp, the templates, why a change was refused."""

    stamp: tuple[Any, ...] | None = None
    templates: tuple[Template, ...] = ()
    error: str | None = None


def template_folders(d: District) -> tuple[Path, ...]:
    """Where ``d``'s compose templates lie: its own folder (``[[districts]] templates``) first, then the shared
    ones (``templates/compose`` of ``[hub] rules``)."""
    shared = d.shared_templates.parent / COMPOSE_FOLDER
    return (d.templates, shared) if d.templates is not None else (shared,)


def read_offered(d: District, offered: Offered) -> Offered:
    """``d``'s compose templates, re-read when a file changed: a name in its own folder replaces the shared one.
    A broken edit keeps the last good templates offered (and says why in ``error``)."""
    folders = template_folders(d)
    stamp = tuple((str(f), p.name, p.stat().st_mtime_ns, p.stat().st_size) for f in folders for p in template_paths(f))
    if stamp == offered.stamp:
        return offered
    try:
        shared = {t.name: t for t in compose_templates(d.shared_templates.parent)}
        own: dict[str, Template] = {}
        if d.templates is not None:
            problems: list[Problem] = []
            own = load_templates(d.templates, problems, compose=True)
            if any(not p.warning for p in problems):
                raise RulesError(problems)
        found = sorted({**shared, **own}.values(), key=lambda t: (t.kind != "warning", (t.title or t.name).casefold()))
        return Offered(stamp, tuple(found), None)
    except Exception as err:  # noqa: BLE001 - a broken edit keeps the last good templates offered
        log.error("console templates of %s refused, the previous ones stay in use: %s", d.slug, err)
        return Offered(stamp, offered.templates, str(err)[:2000])


def rule_templates_of(d: District) -> dict[str, Template]:
    """The templates of ``d``'s own rules folders (``templates/*.toml``; later folders do not replace earlier
    names); unreadable ones are left out (the router reports them)."""
    out: dict[str, Template] = {}
    for folder in d.rules:
        problems: list[Problem] = []
        for name, tpl in load_templates(Path(folder) / "templates", problems).items():
            out.setdefault(name, tpl)
    return out


def stamp_of(folders: Sequence[Path]) -> tuple[Any, ...]:
    return tuple((str(f), p.name, p.stat().st_mtime_ns) for f in folders for p in template_paths(f / "templates"))
