"""Issue 18: an external alert keeps its languages as they came. A MoWaS message with nine info blocks (DE, DE-LS,
EN, AR, ES, FR, PL, RU, TR: the FPAS sample of 2025-03, tests/data/nina/README.md) goes through the NINA source
(a local replay server) into a real hub's store and comes out with nine infos: each language tagged so the hub
recognises it, each with its own text, nothing replaced by the hub's own event names."""

from __future__ import annotations

from pathlib import Path

from hub.cap.parse import parse
from hub.i18n.languages import CODES, code_of
from tests.e2e.test_nina import FPAS, STORE, enc, fpas, nina, poll, serve_samples
from tests.kits.sourcekit import HubKit, ReplayServer

KASSEL = "066330000000"


async def test_a_nine_language_mowas_message_is_stored_with_its_nine_languages(tmp_path: Path) -> None:
    sample = fpas()
    came = {i["language"]: i for i in sample["info"]}
    assert list(came) == ["DE", "DE-LS", "EN", "AR", "ES", "FR", "PL", "RU", "TR"]  # the sample is what it says
    async with ReplayServer() as srv, HubKit(tmp_path, STORE) as kit:
        serve_samples(srv)
        board = [{"id": FPAS, "payload": {"version": 1, "type": "ALERT", "id": FPAS, "hash": "a1",
                                          "data": {"headline": came["DE"]["headline"], "provider": "MOWAS",
                                                   "severity": "Extreme", "msgType": "Cancel"}},
                  "i18nTitle": {"de": came["DE"]["headline"]}, "sent": sample["sent"]}]
        srv.set(f"/api31/dashboard/{KASSEL}.json", enc(board))
        src = nina(kit, srv, feeds=[], dashboard_ars=[KASSEL])
        assert await poll(src, kit) == []
        [thread] = kit.store.threads(include_ended=True)
        alert = kit.store.current_alert(thread.id)
        assert alert is not None
        assert [code_of(i.language) for i in alert.infos] == list(CODES)
        assert [i.language for i in alert.infos] == ["de-DE", "de-DE-x-ls", "en", "ar", "es", "fr", "pl", "ru",
                                                     "tr"]
        for info, (tag, given) in zip(alert.infos, came.items(), strict=True):
            assert info.headline == given["headline"], tag  # "Uyarı", "Предупреждение" ... as MoWaS sent them
            assert info.event == given["event"] == "Gefahrendurchsage", tag  # not the hub's words for it
        # what the store holds as the document itself says the same
        raw = kit.store.conn.execute("SELECT raw FROM alerts").fetchone()[0]
        again = parse(bytes(raw)).alert
        assert [(i.language, i.headline) for i in again.infos] == [(i.language, i.headline) for i in alert.infos]
        assert again.infos[-1].headline == "Uyarı" and again.infos[3].headline == "تحذير"
