/* Kiosk board: keeps the server-rendered page (hub/web/templates/board.html) live.
 *
 * Follows the hub's SSE stream (data-stream on <body>): "snapshot" replaces the list, "publication" adds or
 * replaces one incident (a Cancel removes it), "heartbeat" proves the connection lives. Extreme and Severe warnings
 * interrupt and stay (several of them take turns); lesser ones take turns every ROTATE_MS. No event or heartbeat
 * for STALE_MS: "Verbindung unterbrochen – Stand: HH:MM" and a fresh connection. The last valid state is kept in
 * localStorage and shown while offline, each warning only until its expiry.
 *
 * Time: expiry and "Stand" are reckoned in the hub's time. The snapshot and every heartbeat carry it; a kiosk clock
 * more than SKEW_MS off (a board computer without a real-time clock) is corrected by the difference, so a warning
 * never stays on screen past its end because the board's clock is behind.
 *
 * The text is fitted to the screen: the main area's font shrinks until nothing is cut off, down to OTHERS_SCALE
 * with the list of further warnings, then without it down to MIN_SCALE; if that is not enough, the instruction is
 * shortened with an ellipsis, and on a very small board the text shrinks further (LAST_SCALE) rather than lose the
 * headline or the validity. The DOM is touched only when what is shown changes (the warning is an aria-live
 * region). No third-party requests; text is set with textContent only.
 */
(function () {
  "use strict";

  var ROTATE_MS = 10000;
  var STALE_MS = 45000;
  var RECONNECT_MS = 10000;
  var SKEW_MS = 5000;
  var MIN_SCALE = 0.6;
  var OTHERS_SCALE = 0.75;
  var LAST_SCALE = 0.3;
  var TZ = "Europe/Berlin";
  var timeFmt = new Intl.DateTimeFormat("de-DE", { timeZone: TZ, hour: "2-digit", minute: "2-digit" });
  var dayFmt = new Intl.DateTimeFormat("de-DE", { timeZone: TZ, day: "2-digit", month: "2-digit", year: "numeric" });

  var body = document.body;
  var main = document.querySelector("main");
  var KEY = "warnhub.board." + body.getAttribute("data-board");
  var streamUrl = body.getAttribute("data-stream");
  /* Rank and words of every severity, from the hub's one table (hub/cap/labels.py): {Severe: {rank, de, en, …}}. */
  var SEVERITIES = JSON.parse(body.getAttribute("data-severities") || "{}");
  /* The board's language and the texts this script composes, from the page (hub/web/kiosk.py): {lang, tag, second,
   * until, further, position, untilEn, furtherEn, positionEn}. */
  var texts = document.getElementById("board-texts");
  var TEXTS = JSON.parse((texts && texts.textContent) || "{}");
  var LANG = TEXTS.lang || "de";

  var warnings = {};      // thread -> publication (as the JSON API gives it)
  var updated = 0;        // ms, hub time: when the hub last confirmed this state
  var offset = 0;         // ms: hub clock minus this clock, when it is more than SKEW_MS
  var lastSeen = Date.now();
  var index = 0;
  var rotatedAt = Date.now();
  var source = null;
  var retryTimer = null;
  var fitted = "";        // what the text was last fitted for

  function $(id) { return document.getElementById(id); }

  function hubNow() { return Date.now() + offset; }

  /* A time the hub sent (ISO 8601): corrects the offset and answers it in ms (or the hub's "now" if unreadable).
   * The hub sends whole seconds, cut off: its clock read up to a second later, so the offset takes the later end
   * (a warning may end a second early, never late). */
  function hubTime(iso) {
    var t = Date.parse(iso || "");
    if (!t) { return hubNow(); }
    var diff = t + 1000 - Date.now();
    offset = Math.abs(diff) > SKEW_MS ? diff : 0;
    return t;
  }

  /* The setters write only what changed and say whether they did. */
  function setText(id, text) {
    var el = $(id);
    text = text || "";
    if (!el || el.textContent === text) { return false; }
    el.textContent = text;
    return true;
  }

  function show(el, visible) {
    if (typeof el === "string") { el = $(el); }
    if (!el || el.hidden === !visible) { return false; }
    el.hidden = !visible;
    return true;
  }

  function hhmm(ms) { return timeFmt.format(new Date(ms)); }

  /* A catalogue text with its %(name)s placeholders filled. */
  function fill(text, values) {
    return String(text || "").replace(/%\((\w+)\)s/g, function (all, name) {
      return name in values ? String(values[name]) : all;
    });
  }

  /* The board's language's text, and English beside it unless the board is English. */
  function both(own, en, values) {
    var out = fill(own, values);
    return TEXTS.second && en ? out + " / " + fill(en, values) : out;
  }

  function until(expires, now) {
    if (!expires) { return both(TEXTS.further, TEXTS.furtherEn, {}); }
    var at = new Date(Date.parse(expires));
    var when = dayFmt.format(at) === dayFmt.format(new Date(now)) ? timeFmt.format(at)
      : dayFmt.format(at) + ", " + timeFmt.format(at);
    return both(TEXTS.until, TEXTS.untilEn, { time: when });
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

  function level(p) { return SEVERITIES[p.severity] ? p.severity : "Unknown"; }

  function words(p) { return SEVERITIES[level(p)] || { rank: 0 }; }

  /* Marks the elements showing a text in another language than the board's with that language and its own direction
   * (or unmarks them). */
  function setLang(ids, language) {
    var tag = (language || "").toLowerCase();
    var same = tag === TEXTS.tag || (LANG.indexOf("-x-") < 0 && tag.split("-")[0] === LANG);
    var changed = false;
    ids.forEach(function (id) {
      var el = $(id);
      if (!el) { return; }
      var want = same || !language ? null : language;
      if (el.getAttribute("lang") === want) { return; }
      if (want) {  // its own direction too: German on an Arabic board reads left to right
        el.setAttribute("lang", want);
        el.setAttribute("dir", "auto");
      } else {
        el.removeAttribute("lang");
        el.removeAttribute("dir");
      }
      changed = true;
    });
    return changed;
  }

  /* The warning's text in the board's language, else German, else its first. */
  function own(p) {
    return notice(p, TEXTS.tag || LANG) || notice(p, LANG) || notice(p, "de") || (p.infos || [])[0] || {};
  }

  /* Higher is more pressing; a severity the table does not know ranks below every one it knows. */
  function rank(p) { return SEVERITIES[p.severity] ? SEVERITIES[p.severity].rank : -1; }

  function current(now) {
    var list = [];
    Object.keys(warnings).forEach(function (t) {
      if (live(warnings[t], now)) { list.push(warnings[t]); } else { delete warnings[t]; }
    });
    list.sort(function (a, b) {
      var d = rank(b) - rank(a);
      return d !== 0 ? d : Date.parse(b.sent) - Date.parse(a.sent);
    });
    return list;
  }

  function urgent(p) { return p.severity === "Extreme" || p.severity === "Severe"; }

  function render() {
    var now = hubNow();
    var list = current(now);
    var pool = list.filter(urgent);
    if (pool.length === 0) { pool = list; }
    if (pool.length > 1 && Date.now() - rotatedAt >= ROTATE_MS) {
      index += 1;
      rotatedAt = Date.now();
    }
    index = pool.length ? index % pool.length : 0;
    var p = pool[index];
    var changed = false;
    var cls = "board sev-" + (p ? level(p) : "none");
    if (body.className !== cls) { body.className = cls; }
    changed = show("warning", !!p) || changed;
    changed = show("none", !p) || changed;
    var stamp = updated ? hhmm(updated) : "–";
    setText("stamp", stamp);
    Array.prototype.forEach.call(document.querySelectorAll(".none-stamp, .stamp-copy"), function (el) {
      if (el.textContent !== stamp) { el.textContent = stamp; }
    });
    if (p) {
      var de = own(p);
      var en = TEXTS.second === false ? null : notice(p, "en");
      if (en === de) { en = null; }
      changed = show("exercise", p.status === "Exercise") || changed;
      changed = setText("sev-word", words(p)[LANG] || "") || changed;
      changed = setText("sev-en", words(p).en || "") || changed;
      changed = setText("headline", de.headline || de.event) || changed;
      changed = setText("headline-en", en ? en.headline : "") || changed;
      changed = show("headline-en", !!(en && en.headline)) || changed;
      changed = setText("instruction", de.instruction) || changed;
      changed = show("instruction", !!de.instruction) || changed;
      changed = setText("validity", until(p.expires, now)) || changed;
      changed = setText("area", de.areaDesc) || changed;
      changed = setLang(["headline", "area", "instruction"], de.language) || changed;
      var pos = { n: index + 1, total: pool.length };
      changed = setText("position-de", fill(TEXTS.position, pos)) || changed;
      changed = setText("position-en", "/ " + fill(TEXTS.positionEn, pos)) || changed;
      changed = show("position", pool.length > 1) || changed;
    }
    changed = renderOthers(list.filter(function (o) { return o !== p; }).slice(0, 4)) || changed;
    var stale = Date.now() - lastSeen > STALE_MS;
    changed = show("offline", stale) || changed;
    if (stale) {
      var at = hhmm(updated || lastSeen + offset);
      Array.prototype.forEach.call(document.querySelectorAll(".offline-time"), function (el) {
        if (el.textContent !== at) { el.textContent = at; }
      });
    }
    fit(changed);
  }

  var othersKey = null;

  function renderOthers(others) {
    var ul = $("others");
    if (!ul) { return false; }
    var key = JSON.stringify(others.map(function (o) { return [o.thread, o.version]; }));
    if (key === othersKey) { return false; }
    othersKey = key;
    while (ul.firstChild) { ul.removeChild(ul.firstChild); }
    others.forEach(function (o) {
      var de = own(o);
      var li = document.createElement("li");
      var sev = document.createElement("span");
      sev.className = "sev sev-" + level(o);
      sev.textContent = words(o)[LANG] || "";
      li.appendChild(sev);
      li.appendChild(document.createTextNode(" " + (de.headline || de.event || "")));
      ul.appendChild(li);
    });
    ul.hidden = others.length === 0;
    return true;
  }

  // -- fitting the text to the screen ------------------------------------------------------------------------------

  function overflows() {
    return main.scrollHeight > main.clientHeight || main.scrollWidth > main.clientWidth;
  }

  /* The largest font scale (lowest..1) at which nothing in <main> is cut off; false if there is none. */
  function scaleToFit(lowest) {
    main.style.fontSize = "";
    if (!overflows()) { return true; }
    var lo = lowest;
    var hi = 1;
    main.style.fontSize = lo + "em";
    if (overflows()) { return false; }
    for (var i = 0; i < 7; i++) {
      var mid = (lo + hi) / 2;
      main.style.fontSize = mid + "em";
      if (overflows()) { hi = mid; } else { lo = mid; }
    }
    main.style.fontSize = lo + "em";
    return true;
  }

  /* Shorten the instruction (ellipsis) to the lines that leave room for the rest; false if one line is too many. */
  function clampInstruction(instruction) {
    if (!instruction || instruction.hidden || !instruction.offsetHeight) { return false; }
    var line = parseFloat(getComputedStyle(instruction).lineHeight) || 20;
    var lines = Math.max(1, Math.floor((instruction.offsetHeight - (main.scrollHeight - main.clientHeight)) / line));
    instruction.classList.add("clamped");
    for (; lines >= 1; lines--) {
      instruction.style.webkitLineClamp = String(lines);
      if (!overflows()) { return true; }
    }
    return false;
  }

  function fit(changed) {
    if (!main) { return; }
    var size = window.innerWidth + "x" + window.innerHeight;
    if (!changed && fitted === size) { return; }
    fitted = size;
    var instruction = $("instruction");
    var others = $("others");
    if (instruction) { instruction.classList.remove("clamped"); instruction.style.webkitLineClamp = ""; }
    if (others) { others.classList.remove("no-room"); }
    if (scaleToFit(others && !others.hidden ? OTHERS_SCALE : MIN_SCALE)) { return; }
    if (others && !others.hidden) {
      others.classList.add("no-room");  // the further warnings give way to the one shown
      if (scaleToFit(MIN_SCALE)) { return; }
    }
    main.style.fontSize = MIN_SCALE + "em";
    if (clampInstruction(instruction)) { return; }
    scaleToFit(LAST_SCALE);  // a very small board: smaller text rather than a cut-off headline or validity
  }

  // -- state -------------------------------------------------------------------------------------------------------

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
    var pageAt = page ? Date.parse(page.generated) || 0 : 0;  // both in hub time
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
    replaceAll(data.warnings, hubTime(data.generated));
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
      if (urgent(p) && (!known || !urgent(known) || rank(p) > rank(known))) {
        index = 0;  // it interrupts whatever was shown
        rotatedAt = Date.now();
      }
    }
    updated = hubNow();
    save();
    render();
  }

  function onHeartbeat(ev) {
    seen();
    var data = null;
    try { data = JSON.parse(ev.data); } catch (e) { data = null; }
    updated = hubTime(data && data.time);  // nothing missed: the state is confirmed as of now
    save();
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
  window.addEventListener("resize", function () { render(); });
}());
