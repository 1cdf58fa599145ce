/* warnhub warning page: a small map of the area; while the warning is current, the page follows it (a new version,
   its cancellation or its expiry reloads the page, which the server then renders in the new state). */
"use strict";

(() => {
  const data = Citizen.data;
  const mapEl = document.getElementById("map");
  if (window.L && mapEl && data.base && data.warnings && data.warnings.length) {
    mapEl.hidden = false;
    const credit = document.getElementById("map-attribution");
    if (credit) credit.hidden = false;  // the boundaries drawn are BKG's (dl-de/by-2.0)
    const map = CitizenMap.create(mapEl, data.base);
    CitizenMap.warnings(map, data.warnings, {fit: true, link: false});
    mapEl.dataset.ready = "1";
  }
  if (data.state === "cancelled" || data.state === "expired") return;  // it will not change any more

  async function refresh(kind, event) {
    if (kind === "publication" && event && event.thread === data.thread) {
      window.location.reload();
      return;
    }
    const resp = await fetch(`${Citizen.base}/api/v1/warnings/${encodeURIComponent(data.thread)}`,
                             {cache: "no-store", headers: {Accept: "application/json"}});
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const body = await resp.json();
    const latest = body.versions[body.versions.length - 1];
    if (latest && latest.version !== data.version) window.location.reload();
  }

  Citizen.live({ars: data.ars, statusEl: document.getElementById("live-status"), refresh});
  // At its expiry the hub renders the page as ended: reload then, if the hub answers. Only for a page loaded
  // before the expiry (an old copy shown offline is marked by offline.js, and must not reload itself in a loop).
  const left = Date.parse(data.expires || "") - Date.now();
  if (Number.isFinite(left) && left > 0 && left < 2 ** 31 - 1) {
    setTimeout(async () => {
      try {
        const resp = await fetch(window.location.href, {cache: "no-store"});
        if (resp.ok) window.location.reload();
      } catch (err) { /* unreachable: the page says so; offline.js marks the warning expired */ }
    }, left + 1500);
  }
})();
