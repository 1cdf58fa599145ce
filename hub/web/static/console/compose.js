/* warnhub console: composing a warning. Template picker, texts in nine languages (each with its review state),
   validity, area (regions by name, or a polygon or circle drawn on the map), mode (exercise turns the page orange), audience and channels.
   Saving makes a draft through the API; nothing is sent from this page. */
"use strict";

(() => {
  const page = Console.pageData();
  const init = page.initial;
  const api = page.api;
  const $ = (id) => document.getElementById(id);
  const form = $("compose");
  const LANGS = page.enums.languages.map((l) => l[0]);
  const PARTS = ["headline", "description", "instruction"];
  const state = {
    template: init.template, info: null, ars: [], names: {}, places: {}, features: [], dirty: new Set(), areaChanged: false,
    layers: {}, content: init.content || {},
  };

  // -- times: datetime-local inputs show German local time (the browser's zone), the API takes ISO 8601 ---------
  const pad = (n) => String(n).padStart(2, "0");
  function toLocal(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }
  const fromLocal = (value) => (value ? new Date(value).toISOString() : null);

  // -- mode ----------------------------------------------------------------------------------------------------
  const statusValue = () => (form.querySelector("input[name=status]:checked") || {}).value || "Actual";
  function showMode() {
    const exercise = statusValue() === "Exercise";
    document.body.classList.toggle("exercise", exercise);
    document.body.classList.toggle("actual", !exercise);
    $("exercise-banner").hidden = !exercise;
    const label = $("mode-label");
    label.textContent = exercise ? "ÜBUNG" : "ECHTBETRIEB";
    label.className = `mode-label mode-${exercise ? "exercise" : "actual"}`;
    showStale();
  }
  form.querySelectorAll("input[name=status]").forEach((r) => r.addEventListener("change", showMode));

  // -- content fields -------------------------------------------------------------------------------------------
  function fill(c, keepDirty) {
    state.content = {...state.content, ...c};
    const set = (id, value) => {
      if (value === undefined || (keepDirty && state.dirty.has(id))) return;
      $(id).value = value === null ? "" : value;
    };
    set("event", c.event);
    set("severity", c.severity);
    set("urgency", c.urgency);
    set("certainty", c.certainty);
    if (c.categories) {
      form.querySelectorAll("input[name=category]").forEach((box) => { box.checked = c.categories.includes(box.value); });
    }
    if (c.texts) {
      for (const lang of LANGS) {
        for (const part of PARTS) set(`${part}-${lang}`, ((c.texts[lang] || {})[part]) || "");
      }
    }
    if (c.expires !== undefined) set("expires", toLocal(c.expires));
    if (c.onset !== undefined) set("onset", toLocal(c.onset));
    const codes = [state.content.event_code, ...(state.content.instruction_codes || [])].filter(Boolean);
    $("codes").textContent = codes.length ? `Codes: ${codes.join(", ")}` : "";
    counters();
    fourEyes();
  }

  function read() {
    const texts = {};
    for (const lang of LANGS) {
      texts[lang] = {};
      for (const part of PARTS) texts[lang][part] = $(`${part}-${lang}`).value.trim();
    }
    const c = state.content;
    return {
      event: $("event").value.trim(), severity: $("severity").value, urgency: $("urgency").value,
      certainty: $("certainty").value,
      category: [...form.querySelectorAll("input[name=category]:checked")].map((b) => b.value),
      response_types: c.response_types || [], event_code: c.event_code || null,
      instruction_codes: c.instruction_codes || [], web: c.web || null, contact: c.contact || null,
      onset: fromLocal($("onset").value), expires: fromLocal($("expires").value), texts,
    };
  }

  function counters() {
    document.querySelectorAll(".counter").forEach((el) => {
      const input = $(el.dataset.for);
      el.textContent = `${input.value.length}/${input.maxLength}`;
    });
  }

  function fourEyes() {
    const needs = page.policy.four_eyes.includes($("severity").value);
    $("four-eyes-hint").textContent = needs
      ? "Vier Augen: eine zweite Person gibt diese Meldung frei / four eyes: a second person approves"
      : "Ohne Freigabe: nach Vorschau und Bestätigung selbst senden / no approval needed for this severity";
  }
  $("severity").addEventListener("change", fourEyes);

  form.querySelectorAll("[data-part], #expires, #onset").forEach((el) => {
    el.addEventListener("input", () => { state.dirty.add(el.id); counters(); showReview(); });
  });
  $("expires").addEventListener("change", () => refreshTexts());

  // -- tabs (arrow keys move between languages) -----------------------------------------------------------------
  const tabs = [...document.querySelectorAll("[role=tab]")];
  function selectTab(tab) {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", on ? "true" : "false");
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !on;
    }
  }
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (ev) => {
      const step = {ArrowRight: 1, ArrowLeft: -1}[ev.key];
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      selectTab(next);
      next.focus();
    });
  });

  // -- templates ------------------------------------------------------------------------------------------------
  function placeNames() {
    const desc = $("area-desc").value.trim();
    return desc ? [desc] : state.ars.map((a) => state.places[a] || state.names[a] || a);
  }
  function templateUrl(name) {
    const q = new URLSearchParams();
    for (const n of placeNames()) q.append("ort", n);
    const until = fromLocal($("expires").value);
    if (until && state.dirty.has("expires") && new Date(until) > new Date()) q.set("until", until);
    return `${api}/templates/${encodeURIComponent(name)}?${q}`;
  }
  // -- each language's review state (the words come from the page: data-* of .review-state) ------------------------
  function showReview() {
    const review = (state.info && state.info.review) || {};
    for (const el of document.querySelectorAll(".review-state")) {
      const lang = el.dataset.lang;
      const r = review[lang];
      const edited = PARTS.some((part) => state.dirty.has(`${part}-${lang}`));
      let text = "";
      if (r && r.reviewed && !edited) {
        text = el.dataset.reviewed.replaceAll("%(by)s", r.reviewed_by).replaceAll("%(on)s", r.reviewed_on);
      } else if (state.info) {
        text = edited && r && r.reviewed ? el.dataset.edited : el.dataset.unreviewed;
        if (el.dataset.dropped) text += ` · ${el.dataset.dropped}`;
      }
      el.textContent = text;
      el.classList.toggle("unreviewed", Boolean(state.info) && !(r && r.reviewed && !edited));
    }
  }

  async function selectTemplate(name) {
    state.template = name;
    state.dirty.clear();
    document.querySelectorAll(".tpl").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.template === name)));
    try {
      const res = await Console.api("GET", templateUrl(name));
      state.info = res.template;
      fill(res.content, false);
      showReview();
      if (res.channels && res.channels.length) setChannels(res.channels);
      const audience = form.querySelector(`input[name=audience][value="${res.audience}"]`);
      if (audience) { audience.checked = true; onAudience(); }
      showStale();
    } catch (err) {
      Console.flash(err.message);
    }
  }
  async function refreshTexts() {
    if (!state.template || init.mode === "edit") return;  // a saved text is the operator's, never refilled
    try {
      const res = await Console.api("GET", templateUrl(state.template));
      fill({texts: res.content.texts}, true);
    } catch (err) {
      Console.flash(err.message);
    }
  }
  function showStale() {
    const box = $("stale-box");
    if (!box) return;
    const info = state.info;
    box.hidden = !(info && info.stale && statusValue() === "Actual");
    if (info) {
      $("stale-when").textContent = info.reviewed
        ? `zuletzt geprüft ${info.reviewed.split("-").reverse().join(".")}, vor ${info.days_since_review} Tagen`
        : "nie geprüft / never reviewed";
    }
  }
  document.querySelectorAll(".tpl").forEach((b) => b.addEventListener("click", () => selectTemplate(b.dataset.template)));

  // -- channels and audience --------------------------------------------------------------------------------------
  const channelBoxes = [...form.querySelectorAll("input[name=channels]")];
  function setChannels(list) { channelBoxes.forEach((b) => { b.checked = list.includes(b.value); }); }
  const audienceValue = () => (form.querySelector("input[name=audience]:checked") || {}).value || "public";
  function onAudience() {
    const topic = audienceValue() === "topic";
    if (init.mode !== "edit") $("topic").disabled = !topic;
    channelBoxes.forEach((b) => {
      if (topic) {
        b.checked = b.value === "push";
        b.disabled = true;
      } else {
        b.disabled = false;
      }
    });
  }
  form.querySelectorAll("input[name=audience]").forEach((r) => r.addEventListener("change", onAudience));

  // -- map and drawing ---------------------------------------------------------------------------------------------
  const map = ConsoleMap.create($("map"));
  window.warnhubMap = map;  // tests and the curious find it here
  ConsoleMap.base(map).catch((err) => Console.flash(`Karte / map: ${err.message}`));
  const drawn = L.layerGroup().addTo(map);
  const sketch = L.layerGroup().addTo(map);
  let mode = null;
  let vertices = [];

  function redraw() {
    drawn.clearLayers();
    for (const f of state.features) drawn.addLayer(ConsoleMap.feature(f));
  }
  function setMode(next) {
    mode = next;
    vertices = [];
    sketch.clearLayers();
    $("draw-polygon").setAttribute("aria-pressed", String(next === "polygon"));
    $("draw-circle").setAttribute("aria-pressed", String(next === "circle"));
    $("draw-finish").disabled = true;
    $("map").classList.toggle("drawing", next !== null);
    if (next) map.doubleClickZoom.disable(); else map.doubleClickZoom.enable();
  }
  function finishPolygon() {
    const pts = vertices.filter((p, i) => i === 0 || !p.equals(vertices[i - 1]));
    if (pts.length < 3) {
      Console.flash("Ein Vieleck braucht mindestens 3 Punkte / a polygon needs at least 3 points");
      return;
    }
    const ring = pts.map((p) => [Number(p.lng.toFixed(6)), Number(p.lat.toFixed(6))]);
    ring.push(ring[0]);
    state.features.push({type: "Feature", geometry: {type: "Polygon", coordinates: [ring]}, properties: {}});
    state.areaChanged = true;
    setMode(null);
    redraw();
  }
  map.on("click", (ev) => {
    if (mode === "polygon") {
      vertices.push(ev.latlng);
      sketch.clearLayers();
      sketch.addLayer(L.polyline(vertices, ConsoleMap.DRAFT));
      vertices.forEach((p) => sketch.addLayer(L.circleMarker(p, {radius: 4, color: "#b00020", interactive: false})));
      $("draw-finish").disabled = vertices.length < 3;
    } else if (mode === "circle") {
      const radius = Number($("circle-radius").value) || 1000;
      state.features.push({type: "Feature", properties: {radius_m: radius}, geometry: {
        type: "Point", coordinates: [Number(ev.latlng.lng.toFixed(6)), Number(ev.latlng.lat.toFixed(6))]}});
      state.areaChanged = true;
      setMode(null);
      redraw();
    }
  });
  map.on("dblclick", () => { if (mode === "polygon" && vertices.length >= 3) finishPolygon(); });
  $("draw-polygon").addEventListener("click", () => setMode(mode === "polygon" ? null : "polygon"));
  $("draw-circle").addEventListener("click", () => setMode(mode === "circle" ? null : "circle"));
  $("draw-finish").addEventListener("click", finishPolygon);
  $("draw-clear").addEventListener("click", () => {
    state.features = [];
    state.areaChanged = true;
    setMode(null);
    redraw();
  });
  $("circle-radius").addEventListener("change", () => {
    const last = state.features[state.features.length - 1];
    const radius = Number($("circle-radius").value);
    if (last && last.geometry.type === "Point" && radius >= 10) {
      last.properties.radius_m = radius;
      state.areaChanged = true;
      redraw();
    }
  });

  // -- regions -----------------------------------------------------------------------------------------------------
  const results = $("region-results");
  let searchTimer = null;
  let searchSeq = 0;
  async function search() {
    const q = $("region-search").value.trim();
    const seq = ++searchSeq;
    if (q.length < 2) { results.replaceChildren(); return; }
    try {
      const res = await Console.api("GET", `${api}/regions?q=${encodeURIComponent(q)}`);
      if (seq !== searchSeq) return;
      results.replaceChildren(...res.regions.map((r) => {
        const li = document.createElement("li");
        const b = document.createElement("button");
        b.type = "button";
        b.className = "result";
        b.dataset.ars = r.ars;
        b.textContent = `${r.name} `;
        const small = document.createElement("span");
        small.className = "en";
        const unbounded = " · ohne eigene Grenze: gilt für den ganzen Kreis / no boundary of its own: whole district";
        small.textContent = `${r.level_de}${r.parent ? ", " + r.parent : ""} · ${r.ars}${r.boundary ? "" : unbounded}`;
        b.append(small);
        b.addEventListener("click", () => addRegion(r.ars, r.name, r.place));
        li.append(b);
        return li;
      }));
      if (!res.regions.length) {
        const li = document.createElement("li");
        li.className = "empty";
        li.textContent = "Nichts in Ihrem Zuständigkeitsbereich / nothing in your scope";
        results.append(li);
      }
    } catch (err) {
      Console.flash(err.message);
    }
  }
  $("region-search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(search, 200); });
  $("region-search").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      ev.preventDefault();
      const first = results.querySelector("button.result");
      if (first) first.click();
    }
  });

  function chip(ars) {
    const li = document.createElement("li");
    li.dataset.ars = ars;
    li.textContent = `${state.names[ars] || ars} (${ars}) `;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "btn small";
    remove.textContent = "entfernen";
    remove.setAttribute("aria-label", `${state.names[ars] || ars} entfernen / remove`);
    remove.addEventListener("click", () => removeRegion(ars));
    li.append(remove);
    return li;
  }
  async function addRegion(ars, name, place, quiet) {
    if (state.ars.includes(ars)) return;
    state.ars.push(ars);
    state.names[ars] = name || ars;
    state.places[ars] = place || name || ars;
    if (!quiet) state.areaChanged = true;
    $("chosen").append(chip(ars));
    const layer = await ConsoleMap.region(ars);
    if (layer && state.ars.includes(ars)) {
      state.layers[ars] = layer.addTo(map);
      map.fitBounds(layer.getBounds(), {maxZoom: 12});
    }
    if (!quiet) refreshTexts();
  }
  function removeRegion(ars) {
    state.ars = state.ars.filter((a) => a !== ars);
    state.areaChanged = true;
    const li = $("chosen").querySelector(`li[data-ars="${ars}"]`);
    if (li) li.remove();
    if (state.layers[ars]) { map.removeLayer(state.layers[ars]); delete state.layers[ars]; }
    refreshTexts();
  }
  $("area-desc").addEventListener("change", () => { state.areaChanged = true; refreshTexts(); });

  // -- save ----------------------------------------------------------------------------------------------------------
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    Console.clearFlash();
    if (mode === "polygon" && vertices.length) {
      Console.flash("Bitte die Zeichnung erst abschließen (Fertig) / finish the drawing first");
      return;
    }
    const channels = channelBoxes.filter((b) => b.checked).map((b) => b.value);
    const area = {ars: state.ars, features: state.features, desc: $("area-desc").value.trim() || null};
    let url;
    const body = {content: read(), channels};
    if (init.mode === "edit") {
      url = `${api}/warnings/${init.warning.id}/edit`;
      if (state.areaChanged) body.area = area;
    } else {
      url = `${api}/warnings`;
      const audience = audienceValue();
      Object.assign(body, {area, status: statusValue(), audience, topic: audience === "topic" ? $("topic").value.trim() : null,
                           template: state.template || null});
      if (init.from_draft) body.from_draft = init.from_draft;
      if ($("stale-reviewed") && $("stale-reviewed").checked) body.stale_reviewed = true;
    }
    try {
      const res = await Console.busy($("save"), () => Console.api("POST", url, body));
      location.href = res.next;
    } catch (err) {
      Console.flash(err.message);
      if (err.data && err.data.error === "stale_template") {
        $("stale-box").hidden = false;
        $("stale-reviewed").focus();
      }
    }
  });

  // -- start ---------------------------------------------------------------------------------------------------------
  setChannels(init.channels || []);
  onAudience();
  showMode();
  if (init.content) fill(init.content, false);
  $("area-desc").value = init.area.desc || "";
  for (const ars of init.area.ars || []) {
    addRegion(ars, (init.area_names || {})[ars], (init.area_places || {})[ars], true);
  }
  state.features = (init.area.features || []).slice();
  redraw();
  if (init.template && init.mode === "new" && !init.content) selectTemplate(init.template);
  fourEyes();
})();
