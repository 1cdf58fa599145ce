/* warnhub subscribe page: choosing places. A Gemeinde by name (GET /api/v1/regions?q=), a point tapped on the map or
   the current location (asked only when the button is pressed), each with the radius chosen; the chosen places
   are the <li data-place='...'> items of #places that push.js sends. Points are rounded to 0.001° (about 100 m)
   here already, as the hub stores them.

   Also: the filters push.js sends with the rest (window.SubscribeFilters.read(): sources, quiet_hours); the form
   filled from this browser's stored subscription (GET with its token), so that a change is made by editing and
   pressing "Abonnieren" again (push.js then PUTs); and the test notification (POST .../test, then its state polled
   until the service worker's receipt arrives or 30 s pass). Every text comes from the page (#subscribe-text). */
"use strict";

(() => {
  const MAX = 20;
  const text = JSON.parse(document.getElementById("subscribe-text").textContent);
  const form = document.getElementById("subscribe-form");
  const search = document.getElementById("place-search");
  const results = document.getElementById("place-results");
  const places = document.getElementById("places");
  const empty = document.getElementById("places-empty");
  const radius = document.getElementById("radius");
  const locate = document.getElementById("use-location");
  const status = document.getElementById("places-status");
  const template = document.getElementById("place-template");
  const data = Citizen.data;
  let map = null;
  const circles = new Map();

  form.addEventListener("submit", (e) => e.preventDefault());  // push.js subscribes; never a page reload

  function say(message) {
    if (status) status.textContent = message;
  }

  function radiusText(m) {
    return m < 1000 ? `${m} m` : `${m / 1000} km`;
  }

  function round(x) {
    return Math.round(x * 1000) / 1000;
  }

  function sync() {
    empty.hidden = places.children.length > 0;
  }

  function add(place, label) {
    const value = JSON.stringify(place);
    for (const li of places.children) {
      if (li.dataset.place === value) return null;  // chosen already
    }
    if (places.children.length >= MAX) {
      say(text.full);
      return null;
    }
    const li = template.content.firstElementChild.cloneNode(true);
    li.dataset.place = value;
    li.dataset.label = label;
    li.querySelector(".place-name").textContent = label;
    const remove = li.querySelector(".remove-place");
    remove.textContent = text.remove;
    remove.setAttribute("aria-label", `${text.remove}: ${label}`);
    remove.addEventListener("click", () => {
      const next = li.nextElementSibling || li.previousElementSibling;
      li.remove();
      const circle = circles.get(value);
      if (circle) {
        circle.remove();
        circles.delete(value);
      }
      sync();
      say(`${text.removed} ${label}`);
      (next ? next.querySelector("button") : search).focus();
    });
    places.append(li);
    if (map && place.lat !== undefined) {
      circles.set(value, L.circle([place.lat, place.lon], {radius: place.radius_m, color: "#0b4ea2", weight: 2,
                                                           fillOpacity: 0.15, interactive: false}).addTo(map));
    }
    sync();
    say(`${text.added} ${label}`);
    return li;
  }

  function addPoint(lat, lon, name) {
    const r = Number(radius.value) || 1000;
    const place = {lat: round(lat), lon: round(lon), radius_m: r};
    const where = `${place.lat.toFixed(3)}, ${place.lon.toFixed(3)}`;
    return add(place, `${name || text.point} ${where} (${text.radius} ${radiusText(r)})`);
  }

  // -- search ---------------------------------------------------------------------------------------------------

  let pending = null;
  let asked = "";

  async function find() {
    const q = search.value.trim();
    if (q === asked) return;
    asked = q;
    results.textContent = "";
    if (!q) return;
    let found = [];
    try {
      const resp = await fetch(`${Citizen.base}/api/v1/regions?q=${encodeURIComponent(q)}`, {headers: {Accept: "application/json"}});
      found = resp.ok ? await resp.json() : [];
    } catch (err) {
      found = [];
    }
    if (q !== search.value.trim()) return;  // typed on meanwhile
    if (!found.length) {
      const li = document.createElement("li");
      li.textContent = text.none;
      results.append(li);
      return;
    }
    for (const r of found.slice(0, 8)) {
      const li = document.createElement("li");
      const name = document.createElement("span");
      const level = text.levels[r.level] || r.level;
      name.textContent = r.name.startsWith(level) ? r.name : `${r.name} (${level})`;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button small add-place";
      button.textContent = text.add;
      button.setAttribute("aria-label", `${text.add}: ${r.name}`);
      button.dataset.ars = r.ars;
      button.addEventListener("click", () => {
        add({ars: r.ars}, r.name);
        search.focus();
      });
      li.append(name, " ", button);
      results.append(li);
    }
  }

  search.addEventListener("input", () => {
    clearTimeout(pending);
    pending = setTimeout(find, 200);
  });
  search.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {  // Enter searches at once instead of submitting the form
      e.preventDefault();
      clearTimeout(pending);
      asked = "";
      find();
    }
  });

  // -- map and location -----------------------------------------------------------------------------------------

  if (window.L && data.base) {
    document.getElementById("map-field").hidden = false;
    map = CitizenMap.create("map", data.base);
    map.on("click", (e) => addPoint(e.latlng.lat, e.latlng.lng));
    map.getContainer().dataset.ready = "1";
  }

  locate.addEventListener("click", () => {
    if (!("geolocation" in navigator)) {
      say(text.noGeo);
      return;
    }
    say(text.locating);
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        addPoint(pos.coords.latitude, pos.coords.longitude, text.myLocation);
        if (map) map.setView([pos.coords.latitude, pos.coords.longitude], 13);
      },
      (err) => say(`${text.geoDenied} ${err.message || err.code}`),
      {enableHighAccuracy: false, timeout: 15000, maximumAge: 60000});
  });

  // -- filters (push.js sends them) -----------------------------------------------------------------------------------

  const quietOn = document.getElementById("quiet-on");
  const quietFrom = document.getElementById("quiet-from");
  const quietTo = document.getElementById("quiet-to");

  function readFilters() {
    const sources = [...form.querySelectorAll('input[name="source"]:checked')].map((el) => el.value);
    const quiet = quietOn && quietOn.checked && quietFrom.value && quietTo.value
      ? {from: quietFrom.value.slice(0, 5), to: quietTo.value.slice(0, 5)} : null;
    return {sources, quiet_hours: quiet};
  }
  window.SubscribeFilters = {read: readFilters};

  function syncQuiet() {
    if (!quietOn) return;
    quietFrom.disabled = quietTo.disabled = !quietOn.checked;
  }
  if (quietOn) quietOn.addEventListener("change", syncQuiet);

  function check(name, values) {
    for (const box of form.querySelectorAll(`input[name="${name}"]`)) box.checked = values.includes(box.value);
  }

  /** The form as the hub has this browser's subscription: places, topics, level, sources, quiet hours, languages. */
  function fill(sub, entry) {
    (sub.places || []).forEach((place, i) => {
      const label = (entry.labels && entry.labels[i]) || (place.ars ? place.ars
        : `${text.point} ${Number(place.lat).toFixed(3)}, ${Number(place.lon).toFixed(3)} (${text.radius} ${radiusText(place.radius_m)})`);
      add(place, label);
    });
    check("topic", (sub.topics || []).filter((t) => !t.startsWith("event:")));
    const event = (sub.topics || []).find((t) => t.startsWith("event:"));
    if (event) document.getElementById("event-topic").value = event.slice(6);
    const level = form.querySelector('[name="min_severity"]');
    if (level && sub.min_severity) level.value = sub.min_severity;
    check("source", sub.sources || []);
    check("language", sub.languages || []);
    if (quietOn) {
      quietOn.checked = Boolean(sub.quiet_hours);
      if (sub.quiet_hours) {
        quietFrom.value = sub.quiet_hours.from;
        quietTo.value = sub.quiet_hours.to;
      }
      syncQuiet();
    }
    say("");
  }

  function storedEntry() {
    try {
      const list = JSON.parse(window.localStorage.getItem("warnhub.subscriptions") || "[]");
      return Array.isArray(list) ? list.find((s) => s && s.id && s.token) || null : null;
    } catch (err) {
      return null;
    }
  }

  async function call(method, url, token) {
    const resp = await fetch(url, {method, cache: "no-store", headers: {Authorization: `Bearer ${token}`}});
    let body = null;
    try { body = await resp.json(); } catch (err) { body = null; }
    return {status: resp.status, body};
  }

  async function load() {
    const entry = storedEntry();
    if (!entry) return;
    try {
      const got = await call("GET", `/api/v1/subscriptions/${encodeURIComponent(entry.id)}`, entry.token);
      if (got.status === 200 && got.body && got.body.subscription && !places.children.length) {
        fill(got.body.subscription, entry);
      }
    } catch (err) { /* offline: the form stays empty, push.js says so */ }
  }

  // -- the test notification ------------------------------------------------------------------------------------------

  const testButton = document.getElementById("test-button");
  const testStatus = document.getElementById("test-status");
  const testHelp = document.getElementById("test-help");

  function testSay(message, kind) {
    testStatus.textContent = message;
    testStatus.dataset.kind = kind || "info";
  }

  function enableTest() {
    testButton.disabled = false;  // a click without a stored subscription says to subscribe first
  }

  async function sendTest() {
    const entry = storedEntry();
    testHelp.hidden = true;
    if (!entry) return testSay(text.testNone, "error");
    testButton.disabled = true;
    testSay(text.testSending);
    const base = `/api/v1/subscriptions/${encodeURIComponent(entry.id)}/test`;
    try {
      const started = await call("POST", base, entry.token);
      if (started.status === 429) return testSay(text.testTooMany, "error");
      if (started.status === 404) return testSay(text.testGone, "error");
      if (started.status !== 202 || !started.body) return testSay(text.testError, "error");
      const until = Date.now() + (started.body.wait_s || 30) * 1000;
      let state = started.body.state;
      while (Date.now() < until) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        const got = await call("GET", `${base}/${encodeURIComponent(started.body.id)}`, entry.token);
        state = got.body && got.body.state;
        if (state === "received") return testSay(text.testArrived, "ok");
        if (state === "failed") {
          testHelp.hidden = false;
          return testSay(text.testFailed, "error");
        }
        if (state === "sent") testSay(text.testSent);
      }
      testHelp.hidden = false;
      return testSay(text.testMissing, "warning");
    } catch (err) {
      return testSay(text.testError, "error");
    } finally {
      testButton.disabled = false;
    }
  }

  if (testButton) {
    testButton.addEventListener("click", sendTest);
    enableTest();
  }

  syncQuiet();
  sync();
  load();
})();
