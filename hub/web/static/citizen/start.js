/* warnhub start page: the map, and the list kept current (live stream, /start.json). */
"use strict";

(() => {
  const data = Citizen.data;
  const box = document.getElementById("warnings");
  const listStatus = document.getElementById("list-status");
  let key = null;
  let map = null;
  let areas = null;

  if (window.L && data.base) {
    document.getElementById("map-section").hidden = false;
    map = CitizenMap.create("map", data.base);
    areas = CitizenMap.warnings(map, data.warnings);
    map.getContainer().dataset.ready = "1";
  }

  async function refresh() {
    const resp = await fetch(`/start.json${Citizen.lang === "en" ? "?lang=en" : ""}`,
                             {cache: "no-store", headers: {Accept: "application/json"}});
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const body = await resp.json();
    if (key !== null && body.key === key) {  // same warnings: only the time of the last update changes
      for (const el of box.querySelectorAll("time.updated")) {
        el.dateTime = body.updated;
        el.textContent = Citizen.clock(Date.parse(body.updated));
      }
      return;
    }
    const first = key === null;
    key = body.key;
    if (first && box.dataset.key === body.key) return;  // what the server rendered is current
    box.innerHTML = body.html;
    box.dataset.key = body.key;
    if (map) areas = CitizenMap.warnings(map, body.warnings, {group: areas});
    if (listStatus) {
      listStatus.textContent = body.count ? Citizen.t(`Liste aktualisiert: ${body.count} Warnung(en).`,
                                                      `List updated: ${body.count} warning(s).`)
        : Citizen.t("Liste aktualisiert: keine Warnungen.", "List updated: no warnings.");
    }
  }

  Citizen.live({ars: data.ars, statusEl: document.getElementById("live-status"), refresh});
})();
