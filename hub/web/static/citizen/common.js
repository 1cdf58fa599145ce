/* warnhub citizen pages: what every page script shares. The page's data (#page-data), its language (<html lang>: one
   of the nine; ?lang= chose it, else the browser's Accept-Language; a choice is remembered in localStorage only, never
   in a cookie), its texts (#script-texts: the pages catalogue by German message id, `_(id, {name: value})`), local times (Europe/Berlin) and the
   live connection: Server-Sent Events from /api/v1/stream tell the page when to refresh, heartbeats that it is
   still connected; when the hub cannot be reached the page keeps what it shows and says "Verbindung unterbrochen"
   with the time of its last successful update. */
"use strict";

const Citizen = (() => {
  const dataEl = document.getElementById("page-data");
  const data = dataEl ? JSON.parse(dataEl.textContent) : {};
  const lang = document.documentElement.lang || "de";
  // a district's site on a hub of several (/uelzen): its own paths are under it; /static/, /sw.js and the
  // subscription API are the hub's, at its root
  const base = document.documentElement.dataset.base || "";
  const LANGS = ["de", "de-x-ls", "en", "ar", "es", "fr", "pl", "ru", "tr"];
  // Intl's locale for dates; Arabic with Latin digits, as the server writes them (Babel's "ar")
  const LOCALE = {"de-x-ls": "de-DE", en: "en-GB", ar: "ar-u-nu-latn"}[lang] || lang;
  const textsEl = document.getElementById("script-texts");
  const texts = textsEl ? JSON.parse(textsEl.textContent) : {};
  const KEY = "warnhub.lang";
  const HEARTBEAT_GAP_MS = 45000;  // the hub sends a heartbeat every 15 s
  const REFRESH_MS = 60000;        // also refresh now and then: warnings expire without a new event
  const RECONNECT_MS = 5000;

  /* A text of the page's language by its German id, its %(name)s placeholders filled. */
  function _(id, values) {
    const text = texts[id] || id;
    return text.replace(/%\((\w+)\)s/g, (m, name) => (values && name in values ? String(values[name]) : m));
  }

  function t(de, en) {  // for scripts not yet on the catalogue: English for English pages, else German
    return lang === "en" ? en : de;
  }

  (function rememberLanguage() {
    const params = new URLSearchParams(window.location.search);
    try {
      const stored = window.localStorage.getItem(KEY);
      if (params.has("lang")) {
        if (LANGS.includes(params.get("lang"))) window.localStorage.setItem(KEY, params.get("lang"));
      } else if (LANGS.includes(stored) && stored !== lang) {
        params.set("lang", stored);
        window.location.replace(`${window.location.pathname}?${params}${window.location.hash}`);
      }
    } catch (err) { /* storage off: the link choice still works for this page */ }
    for (const a of document.querySelectorAll("#lang-switch a[data-lang]")) {
      a.addEventListener("click", () => {
        try { window.localStorage.setItem(KEY, a.dataset.lang); } catch (err) { /* see above */ }
      });
    }
  })();

  const clockFormat = new Intl.DateTimeFormat(LOCALE, {timeZone: "Europe/Berlin", hour: "2-digit", minute: "2-digit"});
  const dayFormat = new Intl.DateTimeFormat(LOCALE,
    {timeZone: "Europe/Berlin", day: "2-digit", month: "2-digit", year: "numeric"});

  function clock(ms) {
    const at = new Date(ms);
    const time = clockFormat.format(at);
    return dayFormat.format(at) === dayFormat.format(new Date()) ? _("%(time)s Uhr", {time})
      : _("%(day)s, %(time)s Uhr", {day: dayFormat.format(at), time});
  }

  /* Keep the page current: ``refresh(kind, event)`` fetches what the page shows and resolves (anything) when it
     worked, rejects when the hub could not be reached. */
  function live({ars, statusEl, refresh}) {
    // an offline copy of the page (sw.js) says when it was fetched; else the time the server rendered it
    const cachedAt = document.querySelector('meta[name="warnhub-cached-at"]');
    let lastOk = Date.parse((cachedAt && cachedAt.content) || data.updated || "") || Date.now();
    let lastSeen = Date.now();
    let broken = false;
    let source = null;
    let retry = null;

    function ok() {
      lastSeen = Date.now();
      document.body.dataset.live = "ok";
      if (!broken) return;
      broken = false;
      statusEl.hidden = true;
      statusEl.textContent = "";
      window.dispatchEvent(new Event("warnhub:live-ok"));
    }

    function fail() {
      const text = _("Verbindung unterbrochen. Die Angaben auf dieser Seite sind vom %(time)s (letzte erfolgreiche " +
        "Aktualisierung) und können veraltet sein. Die Seite versucht es weiter.", {time: clock(lastOk)});
      document.body.dataset.live = "broken";
      if (broken && statusEl.textContent === text) return;
      broken = true;
      statusEl.textContent = text;
      statusEl.hidden = false;
      statusEl.dataset.since = String(lastOk);
    }

    async function update(kind, event) {
      try {
        await refresh(kind, event);
        lastOk = Date.now();
        ok();
      } catch (err) {
        fail();
      }
    }

    function connect() {
      retry = null;
      if (source) source.close();
      source = new EventSource(`${base}/api/v1/stream?ars=${encodeURIComponent(ars)}`);
      source.addEventListener("open", () => { lastSeen = Date.now(); });
      source.addEventListener("heartbeat", ok);
      source.addEventListener("snapshot", () => { lastSeen = Date.now(); update("snapshot"); });
      source.addEventListener("publication", (e) => {
        lastSeen = Date.now();
        let event = null;
        try { event = JSON.parse(e.data); } catch (err) { /* refresh anyway */ }
        update("publication", event);
      });
      for (const name of ["shutdown", "dropped"]) source.addEventListener(name, fail);
      source.addEventListener("error", () => {
        fail();
        if (source.readyState === EventSource.CLOSED && retry === null) retry = setTimeout(connect, RECONNECT_MS);
      });
    }

    if (!("EventSource" in window)) {
      setInterval(() => update("tick"), REFRESH_MS / 2);
      return;
    }
    connect();
    setInterval(() => {
      if (Date.now() - lastSeen > HEARTBEAT_GAP_MS) {
        fail();
        connect();
      }
    }, RECONNECT_MS);
    setInterval(() => { if (!broken) update("tick"); }, REFRESH_MS);
  }

  return {data, lang, base, _, t, clock, live};
})();
