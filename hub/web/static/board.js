/* Kiosk board: keeps the server-rendered page (hub/web/templates/board.html) live.
 *
 * Follows the hub's SSE stream (data-stream on <body>): "snapshot" replaces the list, "publication" adds or
 * replaces one incident (a Cancel removes it), "heartbeat" proves the connection lives. Extreme and Severe warnings
 * interrupt and stay (several of them take turns); lesser ones take turns every ROTATE_MS. No event or heartbeat
 * for STALE_MS: "Verbindung unterbrochen – Stand: HH:MM" and a fresh connection. The last valid state is kept in
 * localStorage and shown while offline, each warning only until its expiry. No third-party requests; text is set
 * with textContent only.
 */
(function () {
  "use strict";

  var ROTATE_MS = 10000;
  var STALE_MS = 45000;
  var RECONNECT_MS = 10000;
  var ORDER = { Extreme: 0, Severe: 1, Moderate: 2, Minor: 3, Unknown: 4 };
  var WORDS = {
    Extreme: ["Extreme Gefahr", "Extreme danger"],
    Severe: ["Gefahr", "Danger"],
    Moderate: ["Warnung", "Warning"],
    Minor: ["Hinweis", "Advisory"],
    Unknown: ["Warnung", "Warning"]
  };
  var TZ = "Europe/Berlin";
  var timeFmt = new Intl.DateTimeFormat("de-DE", { timeZone: TZ, hour: "2-digit", minute: "2-digit" });
  var dayFmt = new Intl.DateTimeFormat("de-DE", { timeZone: TZ, day: "2-digit", month: "2-digit", year: "numeric" });

  var body = document.body;
  var KEY = "warnhub.board." + body.getAttribute("data-board");
  var streamUrl = body.getAttribute("data-stream");

  var warnings = {};      // thread -> publication (as the JSON API gives it)
  var updated = 0;        // ms: when the hub last confirmed this state
  var lastSeen = Date.now();
  var index = 0;
  var rotatedAt = Date.now();
  var source = null;
  var retryTimer = null;

  function $(id) { return document.getElementById(id); }

  function setText(id, text) {
    var el = $(id);
    if (el) { el.textContent = text || ""; }
  }

  function show(id, visible) {
    var el = $(id);
    if (el) { el.hidden = !visible; }
  }

  function hhmm(ms) { return timeFmt.format(new Date(ms)); }

  function until(expires, now) {
    if (!expires) { return "bis auf Weiteres / until further notice"; }
    var at = new Date(Date.parse(expires));
    var when = dayFmt.format(at) === dayFmt.format(new Date(now)) ? timeFmt.format(at)
      : dayFmt.format(at) + ", " + timeFmt.format(at);
    return "gültig bis " + when + " Uhr / valid until " + when;
  }

  function notice(p, lang) {
    var infos = p.infos || [];
    var i;
    for (i = 0; i < infos.length; i++) {
      if ((infos[i].language || "").toLowerCase() === lang) { return infos[i]; }
    }
    for (i = 0; i < infos.length; i++) {
      if ((infos[i].language || "").toLowerCase().split("-")[0] === lang) { return infos[i]; }
    }
    return null;
  }

  function live(p, now) {
    return p && p.msgType !== "Cancel" && (!p.expires || Date.parse(p.expires) > now);
  }

  function current(now) {
    var list = [];
    Object.keys(warnings).forEach(function (t) {
      if (live(warnings[t], now)) { list.push(warnings[t]); } else { delete warnings[t]; }
    });
    list.sort(function (a, b) {
      var d = (ORDER[a.severity] === undefined ? 9 : ORDER[a.severity]) -
        (ORDER[b.severity] === undefined ? 9 : ORDER[b.severity]);
      return d !== 0 ? d : Date.parse(b.sent) - Date.parse(a.sent);
    });
    return list;
  }

  function urgent(p) { return p.severity === "Extreme" || p.severity === "Severe"; }

  function render() {
    var now = Date.now();
    var list = current(now);
    var pool = list.filter(urgent);
    if (pool.length === 0) { pool = list; }
    if (pool.length > 1 && now - rotatedAt >= ROTATE_MS) {
      index += 1;
      rotatedAt = now;
    }
    index = pool.length ? index % pool.length : 0;
    var p = pool[index];
    body.className = "board sev-" + (p ? (WORDS[p.severity] ? p.severity : "Unknown") : "none");
    show("warning", !!p);
    show("none", !p);
    var stamp = updated ? hhmm(updated) : "–";
    setText("stamp", stamp);
    Array.prototype.forEach.call(document.querySelectorAll(".none-stamp"), function (el) { el.textContent = stamp; });
    if (p) {
      var de = notice(p, "de") || (p.infos || [])[0] || {};
      var en = notice(p, "en");
      var words = WORDS[p.severity] || WORDS.Unknown;
      show("exercise", p.status === "Exercise");
      setText("sev-word", words[0]);
      setText("sev-en", words[1]);
      setText("headline", de.headline || de.event);
      setText("headline-en", en ? en.headline : "");
      show("headline-en", !!(en && en.headline));
      setText("instruction", de.instruction);
      setText("validity", until(p.expires, now));
      setText("area", de.areaDesc);
      setText("position", "Warnung " + (index + 1) + " von " + pool.length + " / warning " + (index + 1) +
        " of " + pool.length);
      show("position", pool.length > 1);
    }
    renderOthers(list.filter(function (o) { return o !== p; }).slice(0, 4));
    var stale = now - lastSeen > STALE_MS;
    show("offline", stale);
    if (stale) { setText("offline-time", hhmm(updated || lastSeen)); }
  }

  function renderOthers(others) {
    var ul = $("others");
    if (!ul) { return; }
    while (ul.firstChild) { ul.removeChild(ul.firstChild); }
    others.forEach(function (o) {
      var de = notice(o, "de") || (o.infos || [])[0] || {};
      var li = document.createElement("li");
      var sev = document.createElement("span");
      sev.className = "sev sev-" + o.severity;
      sev.textContent = (WORDS[o.severity] || WORDS.Unknown)[0];
      li.appendChild(sev);
      li.appendChild(document.createTextNode(" " + (de.headline || de.event || "")));
      ul.appendChild(li);
    });
    ul.hidden = others.length === 0;
  }

  function save() {
    try {
      var list = Object.keys(warnings).map(function (t) { return warnings[t]; });
      localStorage.setItem(KEY, JSON.stringify({ updated: updated, warnings: list }));
    } catch (e) { /* storage full or disabled: the page still works, only not across reloads offline */ }
  }

  function replaceAll(list, at) {
    warnings = {};
    (list || []).forEach(function (p) {
      if (p && p.thread) { warnings[p.thread] = p; }
    });
    updated = at;
  }

  function load() {
    var page = null;
    var stored = null;
    try { page = JSON.parse($("board-data").textContent); } catch (e) { page = null; }
    try { stored = JSON.parse(localStorage.getItem(KEY) || "null"); } catch (e) { stored = null; }
    var pageAt = page ? Date.parse(page.generated) || 0 : 0;
    if (stored && stored.updated > pageAt) {
      replaceAll(stored.warnings, stored.updated);
    } else if (page) {
      replaceAll(page.warnings, pageAt);
    }
  }

  function seen() { lastSeen = Date.now(); }

  function onSnapshot(ev) {
    seen();
    var data = JSON.parse(ev.data);
    replaceAll(data.warnings, Date.parse(data.generated) || Date.now());
    index = 0;
    rotatedAt = Date.now();
    save();
    render();
  }

  function onPublication(ev) {
    seen();
    var data = JSON.parse(ev.data);
    var p = data.publication;
    var thread = data.thread || (p && p.thread);
    var known = warnings[thread];
    if (!thread || (known && known.version > data.version)) { return; }
    if (data.msgType === "Cancel" || !p) {
      delete warnings[thread];
    } else {
      warnings[thread] = p;
      if (urgent(p) && (!known || !urgent(known) || ORDER[p.severity] < ORDER[known.severity])) {
        index = 0;  // it interrupts whatever was shown
        rotatedAt = Date.now();
      }
    }
    updated = Date.now();
    save();
    render();
  }

  function onHeartbeat() {
    seen();
    updated = Date.now();  // nothing missed: the state is confirmed as of now
    render();
  }

  function connect() {
    if (retryTimer) { clearTimeout(retryTimer); retryTimer = null; }
    if (source) { source.close(); }
    if (!window.EventSource || !streamUrl) { return; }
    source = new EventSource(streamUrl);
    source.addEventListener("snapshot", onSnapshot);
    source.addEventListener("publication", onPublication);
    source.addEventListener("heartbeat", onHeartbeat);
    source.onerror = function () {
      if (source.readyState === 2 && !retryTimer) {  // CLOSED: the browser gave up; try again later
        retryTimer = setTimeout(connect, RECONNECT_MS);
      }
    };
  }

  function tick() {
    if (Date.now() - lastSeen > STALE_MS + RECONNECT_MS && !retryTimer) {
      lastSeen = Date.now() - STALE_MS - 1;  // stays stale; a half-open connection gets replaced
      connect();
    }
    render();
  }

  load();
  render();
  connect();
  setInterval(tick, 1000);
}());
