"""The texts the citizen pages' scripts and the service worker show, from the ``pages`` catalogue.

Scripts hold no fixed German: a page renders :func:`script_texts` as JSON (``<script type="application/json"
id="script-texts">``) and ``Citizen._(id, values)`` (common.js; offline.js reads the same block) looks a text up by
its German message id and fills its ``%(name)s`` placeholders.

The service worker serves every page of the site at once, so it cannot take its words from one page: it reads
``GET /i18n/sw/{lang}.json`` (public, the same for everyone, cacheable; nine possible answers made once, anything
else 404) for the language of a push (the ``lang`` of the warning link the payload carries, else the payload's text
language) or of the page it stands in for, and keeps a copy in its cache for when the hub cannot be reached. A
fetch per language rather than the words in every push: the worker also needs them without a push (the offline
page), and a payload stays small (Web Push allows about 4 kB).
"""

from __future__ import annotations

import json
from functools import cache

from aiohttp import web

from hub.i18n.catalogs import N_, translator
from hub.i18n.languages import BY_CODE, language

DOMAIN = "pages"

SCRIPT_TEXTS = (
    N_("Verbindung unterbrochen. Die Angaben auf dieser Seite sind vom %(time)s (letzte erfolgreiche "
       "Aktualisierung) und können veraltet sein. Die Seite versucht es weiter."),
    N_("%(time)s Uhr"),
    N_("%(day)s, %(time)s Uhr"),
    N_("Liste aktualisiert: %(n)s Warnung(en)."),
    N_("Liste aktualisiert: keine Warnungen."),
    N_("1 Warnung, die schwersten zuerst."),
    N_("%(n)s Warnungen, die schwersten zuerst."),
    N_("Keine aktuellen Warnungen."),
    N_("Vergrößern"),
    N_("Verkleinern"),
    N_("Schließen"),
    N_("Offline – Stand: %(time)s (%(ago)s)"),
    N_("Verbindung unterbrochen – Stand: %(time)s (%(ago)s)"),
    N_("Keine aktuellen Warnungen – die zuletzt bekannten sind abgelaufen."),
    N_("abgelaufen"),
    N_("ABGELAUFEN"),
    N_("Diese Warnung ist seit %(time)s abgelaufen. Sie gilt nicht mehr."),
)
"""What page scripts (common.js, start.js, map.js, offline.js) show."""

PUSH_TEXTS = (
    N_("Push-Benachrichtigungen gehen nur über eine sichere Verbindung (https)."),
    N_("Dieser Browser kann keine Push-Benachrichtigungen empfangen. Auf iPhone und iPad (ab iOS 16.4): die Seite "
       "über „Teilen → Zum Home-Bildschirm“ hinzufügen und von dort öffnen."),
    N_("Benachrichtigungen sind für diese Seite blockiert. Erlauben Sie sie in den Website-Einstellungen des "
       "Browsers (Symbol links neben der Adresse) und versuchen Sie es erneut."),
    N_("Ohne Ihre Erlaubnis für Benachrichtigungen kann diese Seite Sie nicht warnen. Bitte erneut „Abonnieren“ "
       "wählen und die Frage des Browsers mit „Zulassen“ beantworten."),
    N_("Push ist beim Warn-Hub gerade nicht bereit. Bitte später erneut versuchen."),
    N_("Keine Verbindung zum Warn-Hub. Bitte später erneut versuchen."),
    N_("Der Warn-Hub hat das Abo nicht angenommen: %(reason)s"),
    N_("Bitte wählen Sie mindestens einen Ort (Suche oder Karte)."),
    N_("Abo wird eingerichtet …"),
    N_("Abonniert. Dieser Browser kann das Abo aber nicht speichern (privater Modus?): Zum Abbestellen die "
       "Benachrichtigungen in den Website-Einstellungen blockieren."),
    N_("Abo geändert. Sie erhalten Warnungen für die gewählten Orte."),
    N_("Abonniert. Sie erhalten Warnungen für die gewählten Orte auf diesem Gerät."),
    N_("Das Abo konnte nicht eingerichtet werden: %(reason)s"),
    N_("Gebiet"),
    N_("alle Themen"),
    N_("Veranstaltung"),
    N_("Dieser Browser hat kein Abo."),
    N_("Orte"),
    N_("Themen"),
    N_("Warnen ab"),
    N_("Sprachen"),
    N_("Abo löschen"),
    N_("Ändern: oben Orte und Themen wählen und erneut „Abonnieren“ – das ersetzt dieses Abo."),
    N_("Abo gelöscht. Über dieses Abo kommen keine Warnungen mehr."),
    N_("Ein gespeichertes Abo gibt es beim Warn-Hub nicht mehr (der Browser hat es beendet oder es wurde gelöscht). "
       "Bitte bei Bedarf neu abonnieren."),
    N_("Testgerät der Leitstelle: dieses Abo erhält nur Übungen, keine echten Warnungen."),
)
"""What push.js (the subscribe page) shows; only that page carries them."""

SW_TEXTS = (
    N_("Neue Meldung"),
    N_("Bitte die Warn-Seite öffnen."),
    N_("Warnung"),
    N_("Aufgehoben"),
    N_("Entwarnung"),
    N_("Abgelaufen"),
    N_("ÜBUNG"),
    N_("Aktualisiert:"),
    N_("Diese Warnung ist seit %(time)s Uhr nicht mehr gültig."),
    N_("Offline"),
    N_("Diese Seite ist auf diesem Gerät nicht gespeichert. Sobald wieder eine Verbindung besteht, bitte neu laden."),
    N_("Zur Startseite"),
)
"""What the service worker shows (sw.js)."""


def script_texts(lang: str, *, push: bool = False) -> dict[str, str]:
    """The page scripts' texts in ``lang`` by their German ids (``push``: also push.js's, for the subscribe page)."""
    t = translator(language(lang).code, DOMAIN)
    return {text: t.gettext(text) for text in (*SCRIPT_TEXTS, *(PUSH_TEXTS if push else ()))}


@cache
def sw_body(code: str) -> bytes:
    lang = BY_CODE[code]
    t = translator(code, DOMAIN)
    doc = {"lang": code, "dir": lang.dir, "texts": {text: t.gettext(text) for text in SW_TEXTS}}
    return json.dumps(doc, ensure_ascii=False).encode()


async def sw_texts(request: web.Request) -> web.Response:
    """``GET /i18n/sw/{lang}.json``: the service worker's words in one of the nine languages (404 for others)."""
    code = request.match_info["lang"]
    if code not in BY_CODE:
        raise web.HTTPNotFound(text='{"error": "unknown language"}', content_type="application/json")
    return web.Response(body=sw_body(code), content_type="application/json", charset="utf-8",
                        headers={"Cache-Control": "public, max-age=3600"})
