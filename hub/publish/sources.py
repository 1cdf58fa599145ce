"""Which kind of source a warning comes from, for the subscription filter ``sources`` (issue 18, section 3).

Three kinds, as a person asks for them ("only official warnings, no weather"), over the warning systems the rules
already tell apart (:func:`hub.decide.rules.matching.provider`, by the CAP ``sender``; the same for a warning that
reaches the hub directly or through NINA):

- ``amtlich``: the civil-protection warnings of the authorities: MoWaS (``mowas``), KATWARN, BIWAPP, the police and
  the hub's own warnings (the control room's, including those drafted from the district's own sensors and released
  by an operator); anything from an unknown sender (``other``) counts here too.
- ``wetter``: the Deutscher Wetterdienst (``dwd``).
- ``pegel``: the Länder flood centres, Länderübergreifendes Hochwasserportal (``lhp``).

A subscription without sources takes every kind.
"""

from __future__ import annotations

from hub.cap.model import Alert
from hub.decide.rules.matching import provider
from hub.i18n.catalogs import N_

SOURCES: dict[str, str] = {
    "amtlich": N_("Amtliche Warnungen (MoWaS, KATWARN, BIWAPP, Leitstelle)"),
    "wetter": N_("Wetter (Deutscher Wetterdienst)"),
    "pegel": N_("Hochwasser-Pegel (Hochwasserzentralen)"),
}
"""Source kind -> its German label (translated where shown, domain ``subscribe``)."""
DEFAULT = "amtlich"
_BY_PROVIDER = {"dwd": "wetter", "lhp": "pegel"}
"""Providers (:data:`hub.decide.rules.model.PROVIDERS`) that are not ``amtlich``."""


def source_of(alert: Alert) -> str:
    """The kind of source (a key of :data:`SOURCES`) of ``alert``."""
    return _BY_PROVIDER.get(provider(alert), DEFAULT)
