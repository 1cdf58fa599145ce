/* warnhub start page: the map, and the list kept current (live stream, /start.json). */
"use strict";

(() => {
  const data = Citizen.data;
  const box = document.getElementById("warnings");
  const listStatus = document.getElementById("list-status");
  let key = null;
  let map = null;
  let areas = null;
  let shown = data.warnings || [];  // the areas on the map

  if (window.L && data.base) {
    document.getElementById("map-section").hidden = false;
    map = CitizenMap.create("map", data.base);
    areas = CitizenMap.warnings(map, data.warnings);
    map.getContainer().dataset.ready = "1";
  }

  async function refresh() {
    const resp = await fetch(`${Citizen.base}/start.json?lang=${encodeURIComponent(Citizen.lang)}`,
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
    shown = body.warnings || [];
    if (map) areas = CitizenMap.warnings(map, shown, {group: areas});
    if (listStatus) {
      listStatus.textContent = body.count ? Citizen._("Liste aktualisiert: %(n)s Warnung(en).", {n: body.count})
        : Citizen._("Liste aktualisiert: keine Warnungen.");
    }
  }

  // offline.js found warnings whose time is up (an offline copy, or a page left open): take their areas off the map
  // and correct the count, so an expired warning is never shown as current anywhere on the page
  window.addEventListener("warnhub:expired", (event) => {
    const gone = new Set(event.detail.threads || []);
    shown = shown.filter((f) => !gone.has(f.properties.thread)
                         && !(f.properties.expires && Date.parse(f.properties.expires) <= Date.now()));
    if (map) areas = CitizenMap.warnings(map, shown, {group: areas});
    const left = box.querySelectorAll("li.warning:not([hidden])").length;
    const summary = box.querySelector(".summary");
    if (summary) {
      const many = Citizen._("%(n)s Warnungen, die schwersten zuerst.", {n: left});
      summary.textContent = left ? (left === 1 ? Citizen._("1 Warnung, die schwersten zuerst.") : many)
        : Citizen._("Keine aktuellen Warnungen.");
    }
  });

  Citizen.live({ars: data.ars, statusEl: document.getElementById("live-status"), refresh});
})();
