"""The console's vocabulary and who may do what: constants, the user protocol, the admin's four-eyes policy and
the console's config, its errors, the scope check (default ``check_area``) and the permission, scope and state guards
every operation runs.

Enforced by the console's operations, whatever a form says:

* permissions (compose, approve) and scope: every area must lie inside the acting user's regions
  (:func:`hub.access.scopes.check_area` for shapes, the ARS hierarchy for selected regions);
* four eyes: a severity in ``FourEyes.required_for`` needs an approver who neither wrote nor edited the version;
  only where the admin allows it may someone with approve permission send an Extreme or Immediate warning alone,
  with a written reason (audited as ``console.single_person``);
* a thread never changes status or audience: an exercise stays an exercise (every text marked, CAP status
  Exercise); a topic message goes to the push subscribers of its topic only, never to a public channel;
* sending needs the confirmation token of a preview of exactly this content, area, audience and channels
  (hub.console.targeting);
* a public warning can always be ended: follow-ups start from the thread's newest sent version whatever happened
  to drafts begun before; sending a version withdraws the thread's other open versions; a Cancel or all-clear may
  be sent alone by an approver with a reason (``FourEyes.end_needs_two``, ``[console] four_eyes_end``, off by
  default; audited as ``console.end_alone``). hub.console.ending does the same for ``warnhub cancel``.

Every operation is one transaction with its audit entry (``console.<action>``). Refusals raise
:class:`ConsoleForbidden` (an :class:`~hub.errors.AuthError`; audited as ``console.refused``), :class:`StalePreview`
or :class:`ConsoleError`; their messages are German, then English.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, TypeVar

import shapely
from shapely.geometry import shape as geojson_shape
from shapely.geometry.base import BaseGeometry

from hub.cap.model import Circle
from hub.cap.validate import Validator
from hub.config.districts import District, Districts, FourEyesSettings
from hub.config.load import LoadedConfig
from hub.config.sections import BoardConfig, WebhookConfig
from hub.decide.rules.templates import LANGUAGE_TAGS, Template
from hub.errors import AuthError, HubError
from hub.geo.geography import Geography
from hub.geo.projection import GERMANY, circle_lonlat
from hub.geo.registry import DEFAULT_DISTRICT
from hub.store.db import Store

ORIGIN = "console"
CHANNELS = ("push", "web", "boards", "webhook")
LANGUAGES = LANGUAGE_TAGS
"""The nine languages a version may have texts in (``en`` as the templates have always written it)."""
EXERCISE_PREFIX = {"de-DE": "ÜBUNG – ", "de-DE-x-ls": "ÜBUNG – ", "en": "EXERCISE – ", "ar": "تمرين – ",
                   "es-ES": "SIMULACRO – ", "fr-FR": "EXERCICE – ", "pl-PL": "ĆWICZENIA – ", "ru-RU": "УЧЕНИЯ – ",
                   "tr-TR": "TATBİKAT – "}
SCOPE_TOLERANCE_M = 50.0
"""Drawn areas may reach this far past the user's boundary (drawing on a map is not surveying)."""
MAX_VALIDITY = timedelta(days=7)
ALL_CLEAR_VALIDITY = timedelta(hours=2)
"""How long an all-clear stays shown (boards, web) unless the operator sets another end."""
PREVIEW_HOURS = 6
"""Readings shown with a sensor draft in the inbox."""


# -- who is asking, and what the admin allows -------------------------------------------------------------------------


class ConsoleUser(Protocol):
    """A signed-in person (hub.access.auth's user satisfies this): roles viewer/author/approver/admin, scopes as ARS."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def roles(self) -> frozenset[str]: ...
    @property
    def scopes(self) -> tuple[str, ...]: ...
    def can(self, permission: str) -> bool:
        """``read``, ``compose``, ``approve`` or ``admin``."""
        ...


AreaCheck = Callable[[ConsoleUser, BaseGeometry | None], str | None]
"""``check_area(user, area_projected) -> reason | None``: may this user warn this (equal-area projected) area?"""


@dataclass(frozen=True, slots=True)
class FourEyes:
    """The admin's approval policy."""

    required_for: frozenset[str] = frozenset({"Extreme", "Severe", "Moderate", "Minor"})
    """Severities that need a second person's approval."""
    single_person_extreme: bool = False
    """Allow someone with approve permission to send an Extreme or Immediate warning alone, with a reason."""
    min_reason: int = 20
    end_needs_two: bool = False
    """``[console] four_eyes_end``. False: someone with approve permission may send a Cancel or an all-clear
    alone, with a written reason (audited as ``console.end_alone``): ending a public warning must never wait for a
    second person. True: ending follows ``required_for`` like any version."""

    @classmethod
    def of(cls, settings: FourEyesSettings) -> FourEyes:
        """A district's four-eyes settings (``[console]``, or its ``[[districts]]`` entry's) as the policy."""
        return cls(required_for=frozenset(settings.required_for), single_person_extreme=settings.single_person_extreme,
                   end_needs_two=settings.end_needs_two)

    def ends_alone(self, row: Mapping[str, Any]) -> bool:
        """Whether ``row`` ends a warning (a Cancel, an all-clear) that an approver may send alone."""
        return not self.end_needs_two and (row["msg_type"] == "Cancel" or row["kind"] == "all-clear")


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """What the console needs of the hub's config; build with :meth:`from_loaded`."""

    geo: Geography
    district: str = DEFAULT_DISTRICT
    sender: str = "warnhub@example.invalid"
    sender_name: str = ""
    base_url: str = ""
    boards: tuple[BoardConfig, ...] = ()
    webhooks: tuple[WebhookConfig, ...] = ()
    templates: Mapping[str, Template] = field(default_factory=dict)
    """Templates in force (``RuleSet.templates``); pass a fresh config after a rules reload."""
    four_eyes: FourEyes = FourEyes()
    check_area: AreaCheck | None = None
    """None: :func:`scope_check` of ``geo`` (the area lies in the union of the user's scope boundaries)."""
    validator: Validator = field(default_factory=Validator)
    languages_require_review: bool = False
    """``[console] languages_require_review``: only reviewed languages (and German) go out."""
    districts: Districts | None = None
    """The hub's districts: the part of an area in another one is offered to it (hub.console.offers)."""

    @classmethod
    def from_loaded(cls, loaded: LoadedConfig, *, geo: Geography, district: District | None = None,
                    templates: Mapping[str, Template] | None = None, four_eyes: FourEyes | None = None,
                    check_area: AreaCheck | None = None) -> ConsoleConfig:
        """The console's config for ``district`` (default: the first, in a single-district hub the one of
        ``[hub]``): its Kreis key, sender, name, public address, boards, webhooks and four eyes."""
        d = district or loaded.districts.first
        return cls(geo=geo, district=d.ars, sender=d.sender, sender_name=d.sender_name, base_url=d.public_url,
                   boards=boards_of(loaded, d), webhooks=webhooks_of(loaded, d), templates=dict(templates or {}),
                   four_eyes=four_eyes or FourEyes.of(d.four_eyes), check_area=check_area,
                   languages_require_review=loaded.cfg.console.languages_require_review, districts=loaded.districts)

    def area_check(self) -> AreaCheck:
        return self.check_area or scope_check(self.geo)

    def publication_thread(self, store_thread: int) -> str:
        """The hub's publication thread of this district's warning on stored incident ``store_thread``
        (hub.publish.issuers: ``w12``; with several districts ``w12-<slug>`` for each after the first)."""
        d = self.districts.by_ars(self.district) if self.districts is not None else None
        suffix = f"-{d.slug}" if d is not None and d.index > 0 and self.districts is not None \
            and self.districts.multi else ""
        return f"w{store_thread}{suffix}"


def boards_of(loaded: LoadedConfig, district: District) -> tuple[BoardConfig, ...]:
    """The boards of ``district``: those naming its slug, and those without one standing in it (a single-district
    hub: every board)."""
    ds = loaded.districts
    if not ds.multi:
        return tuple(loaded.cfg.boards)
    return tuple(b for b in loaded.cfg.boards if b.district == district.slug or
                 (b.district is None and ds.of_region(b.ars) == district))


def webhooks_of(loaded: LoadedConfig, district: District) -> tuple[WebhookConfig, ...]:
    """The webhooks of ``district``: those naming its slug; one without a slug is the first district's."""
    if not loaded.districts.multi:
        return tuple(loaded.cfg.webhooks)
    return tuple(w for w in loaded.cfg.webhooks if (w.district or loaded.districts.first.slug) == district.slug)


class ConsoleError(HubError):
    """Invalid input, or an operation the warning's state does not allow (message German / English)."""


class ConsoleForbidden(AuthError):
    """Permission, scope or four eyes refuse (message German / English)."""


class StalePreview(ConsoleError):
    """The confirmation token is not that of a preview of the warning as it is now."""


_FIELD = re.compile(r"^[a-z_][\w\-]*(?:[.\[][\w\-\]]+)*:\s")


def _sentence(text: str, field: str) -> str:
    """One half of a message as a whole sentence: capitalised (a message about a form field, ``event: …``, is
    said of the field: ``Feld event: …``) and ending with a full stop."""
    text = text.strip()
    if _FIELD.match(text):
        text = f"{field} {text}"
    elif text[:1].islower():
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _msg(de: str, en: str) -> str:
    """An operator-visible message: German, then English, each a whole sentence (``Deutsch. / English.``)."""
    return f"{_sentence(de, 'Feld')} / {_sentence(en, 'Field')}"


@functools.lru_cache(maxsize=8)
def scope_check(geo: Geography, tolerance_m: float = SCOPE_TOLERANCE_M) -> AreaCheck:
    """The default ``check_area``: the area must lie inside the union of the boundaries of the user's scope ARS
    (``tolerance_m`` grace). A scope whose boundary the hub does not know (a Gemeinde without ``[geo]
    boundaries``) cannot vouch for a drawn area: such areas are refused, never waved through."""
    unions: dict[tuple[str, ...], BaseGeometry | None] = {}

    def check(user: ConsoleUser, area: BaseGeometry | None) -> str | None:
        if area is None or area.is_empty:
            return None
        key = tuple(sorted(user.scopes))
        if key not in unions:
            shapes = [g for a in key if (ars := geo.registry.from_ars(a)) and (g := geo.geometry(ars)) is not None]
            unions[key] = shapely.union_all(shapes).buffer(tolerance_m) if shapes else None
        allowed = unions[key]
        if allowed is None:
            return _msg(f"Für Ihren Zuständigkeitsbereich ({', '.join(key) or '–'}) ist keine Grenze hinterlegt; "
                        "gezeichnete Gebiete können nicht geprüft werden",
                        "no boundary is known for your scope; drawn areas cannot be checked")
        outside = float(area.difference(allowed).area)
        if outside > 1.0:
            return _msg(f"{outside / 1e6:.3f} km² des Gebiets liegen außerhalb Ihres Zuständigkeitsbereichs",
                        f"{outside / 1e6:.3f} km² of the area lie outside your scope")
        return None

    return check


# -- guards: permission, state, scope ----------------------------------------------------------------------------------

T = TypeVar("T")


def _audited(store: Store, user: ConsoleUser, action: str, subject: str, fn: Callable[[], T], *,
             district: str = "") -> T:
    """Run an operation; a refusal by permission, scope or four eyes is audited (after its rollback) in
    ``district``'s audit chain (the district whose console refused it)."""
    try:
        return fn()
    except ConsoleForbidden as err:
        store.audit(user.name, "console.refused", subject, {"action": action, "reason": str(err)}, district=district)
        raise


def _need(user: ConsoleUser, permission: str) -> None:
    if not user.can(permission):
        raise ConsoleForbidden(_msg(f"Keine Berechtigung ({permission})", f"permission {permission!r} required"))


STATE_DE = {"draft": "ein Entwurf", "submitted": "zur Freigabe gegeben", "approved": "freigegeben",
            "sent": "gesendet", "rejected": "abgelehnt", "withdrawn": "zurückgezogen"}
STATE_EN = {"draft": "a draft", "submitted": "awaiting approval", "approved": "approved", "sent": "sent",
            "rejected": "rejected", "withdrawn": "withdrawn"}


def _state(row: Mapping[str, Any], *allowed: str) -> None:
    if row["state"] not in allowed:
        de = " oder ".join(STATE_DE.get(a, a) for a in allowed)
        en = " or ".join(STATE_EN.get(a, a) for a in allowed)
        raise ConsoleError(_msg(f"Fassung {row['version']} ist {STATE_DE.get(row['state'], row['state'])}; dafür "
                                f"muss sie {de} sein.", f"Version {row['version']} is "
                                f"{STATE_EN.get(row['state'], row['state'])}; this needs it to be {en}."))


def _check_scope(cfg: ConsoleConfig, user: ConsoleUser, area: Mapping[str, Any]) -> None:
    reg = cfg.geo.registry
    scopes = [s for s in (reg.from_ars(a) for a in user.scopes) if s is not None]
    for ars in area["ars"]:
        if not any(reg.is_within(ars, s) for s in scopes):
            raise ConsoleForbidden(_msg(f"{reg.name(ars) or ars} liegt außerhalb Ihres Zuständigkeitsbereichs",
                                        f"{ars} is outside your scope"))
    # a picked region is inside by its key (its exact boundary may stick out of the scope's generalised one); a
    # drawn shape only by geometry
    shapes = [GERMANY.project(s) for s in _drawn_lonlat(area)]
    reason = cfg.area_check()(user, shapely.union_all(shapes) if shapes else None)
    if reason:
        raise ConsoleForbidden(reason)


def _drawn_lonlat(area: Mapping[str, Any]) -> list[BaseGeometry]:
    out = []
    for f in area["features"]:
        g = f["geometry"]
        if g["type"] == "Point":
            lon, lat = g["coordinates"]
            out.append(circle_lonlat(Circle(center=(lat, lon), radius_km=f["properties"]["radius_m"] / 1000)))
        else:
            out.append(geojson_shape(g))
    return out
