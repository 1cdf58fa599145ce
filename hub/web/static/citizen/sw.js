/* warnhub service worker, served at /sw.js (scope "/"; see hub/web/citizen_push.py).
 *
 * Owns:
 * - Web Push: shows the hub's warning (JSON from hub/pipeline.py push_payload) as a notification. One notification
 *   per warning (tag = thread): a newer version replaces the older, an older version arriving late never replaces a
 *   newer one. A warning whose `expires` has passed is shown as ended, never as current.
 * - Offline: the app shell (citizen pages, the CSS/JS they link to, Leaflet) and the last known warnings
 *   (/api/v1/warnings…, /start.json, visited /warnungen/{thread} pages). Pages and data: network first, the cached copy when the network fails.
 *   Every cached copy carries its fetch time: JSON in the header X-Warnhub-Cached-At, HTML additionally in
 *   <meta name="warnhub-cached-at">, which /static/citizen/offline.js shows as "Offline – Stand: 14:05 Uhr".
 *   Warnings whose `expires` has passed are taken out of cached API answers on the way out.
 * - Words: its fixed texts in the nine languages of the pages from /i18n/sw/{lang}.json (hub/web/citizen_texts.py),
 *   kept in the cache; the language of a push is the `lang` of the warning link it carries (the subscription's page
 *   language), else the language of its text; of the offline page the `lang` of the page asked for, else the last
 *   page language a page told the worker. German words are built in for when nothing is cached.
 * - Nothing else: the console, the subscription API, the live stream and feeds are never touched or cached.
 */
'use strict';

const VERSION = 'v1';
const SHELL_CACHE = `warnhub-shell-${VERSION}`;
const DATA_CACHE = `warnhub-data-${VERSION}`;
const WORDS_CACHE = `warnhub-words-${VERSION}`;  // /i18n/sw/{lang}.json and the last page language
const CURRENT_CACHES = [SHELL_CACHE, DATA_CACHE];
const KEPT_CACHES = [...CURRENT_CACHES, WORDS_CACHE];
const CACHED_AT = 'X-Warnhub-Cached-At';
const NETWORK_TIMEOUT_MS = 6000;
const MAX_DATA_ENTRIES = 100;

const SHELL_PAGES = ['/', '/abonnieren', '/datenschutz'];
const LANGS = ['de', 'de-x-ls', 'en', 'ar', 'es', 'fr', 'pl', 'ru', 'tr'];
const LAST_LANG = '/i18n/sw/last-page-language';
const SHELL_ASSETS = [
  '/static/citizen/offline.js',
  '/static/citizen/push.js',
  '/static/vendor/leaflet/leaflet.css',
  '/static/vendor/leaflet/leaflet.js',
];

// -- lifecycle ------------------------------------------------------------------------------------------------------

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(SHELL_CACHE);
    const assets = new Set(SHELL_ASSETS);
    // Each on its own: a missing page or asset must not keep the worker (and with it push) from installing.
    await Promise.allSettled(SHELL_PAGES.map(async (path) => {
      const response = await fetch(path, { cache: 'no-cache' });
      if (!response.ok) return;
      const copy = await stamped(response, true);
      const text = await copy.clone().text();
      for (const m of text.matchAll(/(?:href|src)="(\/static\/(?:citizen|vendor\/leaflet)\/[^"?#]+)/g)) assets.add(m[1]);
      await cache.put(path, copy);
    }));
    await Promise.allSettled([...assets].map(async (path) => {  // what the pages link to: CSS, scripts, Leaflet
      const response = await fetch(path, { cache: 'no-cache' });
      if (response.ok) await cache.put(path, await stamped(response, false));
    }));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    const names = await caches.keys();
    await Promise.all(names.filter((n) => n.startsWith('warnhub-') && !KEPT_CACHES.includes(n))
      .map((n) => caches.delete(n)));
    await self.clients.claim();
  })());
});

// -- push -----------------------------------------------------------------------------------------------------------

// One push at a time: Chromium forgets a notification still being put on screen when getNotifications() runs
// meanwhile, and showPush asks it for the warning's earlier notification.
let pushes = Promise.resolve();
self.addEventListener('push', (event) => {
  const data = event.data;
  pushes = pushes.catch(() => {}).then(() => showPush(data));
  event.waitUntil(pushes);
});

async function showPush(data) {
  let msg = null;
  try {
    msg = data ? data.json() : null;
  } catch (err) {
    msg = null;
  }
  if (!msg || typeof msg !== 'object') {
    // userVisibleOnly: something must be shown; never guess at content we could not read.
    const w = await words(await lastLanguage());
    const body = w.lang === 'de' ? 'Bitte die Warn-Seite öffnen. / Please open the warning page.'
      : w._('Bitte die Warn-Seite öffnen.');
    return self.registration.showNotification(w._('Neue Meldung'), { body, data: { url: '/' }, lang: w.lang });
  }
  if (msg.test === true) return showTest(msg);
  if (msg.canary === true) return showCanary(msg);
  if (msg.summary === true) {  // what went over the push budget: one notification that opens the list
    return self.registration.showNotification(String(msg.title || ''), {
      tag: 'warnhub-summary', data: { url: safeUrl(msg.url) }, lang: msg.lang || 'de',
    });
  }
  const tag = msg.thread ? String(msg.thread) : undefined;
  const shown = tag ? await self.registration.getNotifications({ tag }) : [];
  const newer = shown.find((n) => n.data && Number(n.data.version) > Number(msg.version));
  if (newer) {  // a late older version: show the newer one again, silently, instead of replacing it
    await self.registration.showNotification(newer.title, {
      body: newer.body, tag, data: newer.data, silent: true, renotify: false, lang: newer.lang,
    });
  } else {
    const { title, options } = notification(msg, Date.now(), await words(languageOf(msg)));
    await self.registration.showNotification(title, options);
  }
  // Open pages may refresh at once (and tests know the notification is on screen).
  await tellPages({ type: 'warnhub:push', payload: msg, superseded: Boolean(newer) });
}

/** A test notification the subscriber asked for (never a warning): shown with the hub's words, then its receipt
 * reported to the hub (the path in the payload, on this origin only), which the subscribe page waits for. */
async function showTest(msg) {
  await self.registration.showNotification(String(msg.title || 'Test'), {
    body: String(msg.body || ''), tag: String(msg.thread || 'test'), data: { url: safeUrl(msg.url) },
    lang: msg.lang || 'de',
  });
  const receipt = typeof msg.receipt === 'string' ? new URL(msg.receipt, self.location.origin) : null;
  if (receipt && receipt.origin === self.location.origin && receipt.pathname.startsWith('/api/v1/subscriptions/')) {
    try {
      await fetch(receipt.pathname, { method: 'POST', cache: 'no-store' });
    } catch (err) { /* the page then says what to check */ }
  }
  await tellPages({ type: 'warnhub:push', payload: msg, superseded: false });
}

/** The control room's canary (never a warning; [canary] push_subscriptions): its receipt is reported at once (the
 * path in the payload, on this origin only), which is what the hub measures. It is shown silently, with one fixed
 * tag, so each canary replaces the previous one and the device never rings: the subscription is userVisibleOnly,
 * and Chromium shows its own "This site has been updated in the background" notification when a push event ends
 * without one of the origin's notifications on screen, so showing nothing is not an option. */
async function showCanary(msg) {
  const receipt = typeof msg.receipt === 'string' ? new URL(msg.receipt, self.location.origin) : null;
  if (receipt && receipt.origin === self.location.origin && receipt.pathname.startsWith('/api/v1/canary/')) {
    try {
      await fetch(receipt.pathname, { method: 'POST', cache: 'no-store' });
    } catch (err) { /* the hub then shows this channel as late or silent */ }
  }
  const at = new Date().toLocaleTimeString('de-DE', { hour: '2-digit', minute: '2-digit' });
  await self.registration.showNotification(String(msg.title || 'Kontrollmeldung / Canary'), {
    body: `${String(msg.body || '')} ${at}`, tag: 'warnhub-canary', silent: true, renotify: false,
    data: { url: '/' }, lang: msg.lang || 'de',
  });
}

/** The keys of the payload's words (hub/publish/notify.py) by the German ids this worker's words have. */
const PAYLOAD_KEYS = {
  Aufgehoben: 'cancelled', Abgelaufen: 'expired', Entwarnung: 'allClear', 'ÜBUNG': 'exercise',
  'Aktualisiert:': 'updated', Warnung: 'warning',
};

/** Title and options for one push payload; exported to the pages for tests through `self.warnhubNotification`. */
function notification(msg, now, w = GERMAN) {
  const expires = msg.expires ? Date.parse(msg.expires) : NaN;
  const expired = Number.isFinite(expires) && expires <= now;
  // the payload's words (hub/publish/notify.py, in the subscription's language) first, then this worker's
  const said = (msg.labels && typeof msg.labels === 'object') ? msg.labels : {};
  const word = (id) => String(said[PAYLOAD_KEYS[id]] || w._(id));
  const headline = String(msg.headline || msg.event || word('Warnung'));
  let label;
  if (msg.msgType === 'Cancel') label = word('Aufgehoben');
  else if (msg.allClear) label = word('Entwarnung');
  else if (expired) label = word('Abgelaufen');
  else label = String(msg.word || word('Warnung'));  // the hub's word for the severity, in the payload's language
  if (msg.status && msg.status !== 'Actual') label = `${word('ÜBUNG')} – ${label}`;
  const lines = [];
  if (expired && msg.msgType !== 'Cancel' && said.expiredSince) {
    lines.push(String(said.expiredSince).replace('%(time)s', clock(expires, msg.uiLang || w.lang)));
  } else if (expired && msg.msgType !== 'Cancel') {
    lines.push(w.lang === 'de' ? `Diese Warnung ist seit ${clock(expires)} Uhr nicht mehr gültig. / This warning has expired.`
      : w._('Diese Warnung ist seit %(time)s Uhr nicht mehr gültig.', { time: clock(expires, w.lang) }));
  } else if (msg.msgType === 'Update' && !msg.allClear) {
    lines.push(word('Aktualisiert:'));
  }
  if (msg.body) lines.push(String(msg.body));
  if (msg.area) lines.push(String(msg.area));
  if (said.untranslated) lines.push(String(said.untranslated));  // the text is in another language
  // no text in the reader's language: what happened in their words (from the event's codes) heads the message
  if (msg.eventName) lines.unshift(headline);
  const ending = expired || msg.msgType === 'Cancel' || msg.allClear;
  const urgent = !ending && (msg.severity === 'Extreme' || msg.severity === 'Severe');
  const options = {
    body: lines.join('\n'),
    data: { url: safeUrl(msg.url), thread: msg.thread, version: msg.version, expires: msg.expires || null,
            ended: Boolean(ending) },
    lang: msg.lang || 'de',
    renotify: Boolean(urgent && msg.thread),
    requireInteraction: !ending && msg.severity === 'Extreme',
    silent: Boolean(expired),
  };
  if (msg.thread) options.tag = String(msg.thread);
  const sent = msg.sent ? Date.parse(msg.sent) : NaN;
  if (Number.isFinite(sent)) options.timestamp = sent;
  return { title: `${label}: ${msg.eventName ? String(msg.eventName) : headline}`, options };
}
self.warnhubNotification = notification;

function clock(ms, lang = 'de') {
  const locale = { de: 'de-DE', 'de-x-ls': 'de-DE', ar: 'ar-u-nu-latn' }[lang] || lang;
  try {
    return new Date(ms).toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit', timeZone: 'Europe/Berlin' });
  } catch (err) {  // a tag the browser does not know
    return new Date(ms).toLocaleTimeString('de-DE', { hour: '2-digit', minute: '2-digit', timeZone: 'Europe/Berlin' });
  }
}

// -- words ----------------------------------------------------------------------------------------------------------

/** Words of one language: `_(germanId, values)`; German (the ids themselves) when nothing else is known. */
function wordsOf(lang, texts) {
  return {
    lang,
    _: (id, values) => String(texts[id] || id).replace(/%\((\w+)\)s/g,
      (m, name) => (values && name in values ? String(values[name]) : m)),
  };
}
const GERMAN = wordsOf('de', {});

/** One of the nine languages for a tag (de-DE-x-ls and DE-LS: Leichte Sprache), or null. */
function codeOf(tag) {
  const low = String(tag || '').trim().toLowerCase().replace(/_/g, '-');
  if (low === 'de-ls' || /^de(-[a-z]+)?-x-ls$/.test(low)) return 'de-x-ls';
  const primary = low.split('-')[0];
  return LANGS.includes(primary) ? primary : null;
}

/** A push's language: the `lang` of the page it links to (the subscription's), else the language of its text. */
function languageOf(msg) {
  try {
    const fromUrl = new URL(msg.url || '/', self.location.origin).searchParams.get('lang');
    if (codeOf(fromUrl)) return codeOf(fromUrl);
  } catch (err) { /* no usable link */ }
  return codeOf(msg.ui) || codeOf(msg.lang) || 'de';
}

/** The words of `lang`: the cached copy (`fresh`: fetched anew while online), else fetched and kept, else German. */
async function words(lang, fresh = false) {
  const code = codeOf(lang) || 'de';
  if (code === 'de') return GERMAN;
  const url = `/i18n/sw/${code}.json`;
  try {
    const cache = await caches.open(WORDS_CACHE);
    let response = fresh ? null : await cache.match(url);
    if (!response) {
      const got = await fetch(url, { cache: fresh ? 'no-cache' : 'default' });
      if (got.ok) {
        await cache.put(url, got.clone());
        response = got;
      }
    }
    if (response) return wordsOf(code, (await response.json()).texts || {});
  } catch (err) { /* offline and never fetched: German */ }
  return GERMAN;
}

async function lastLanguage() {
  try {
    const hit = await (await caches.open(WORDS_CACHE)).match(LAST_LANG);
    return hit ? await hit.text() : 'de';
  } catch (err) {
    return 'de';
  }
}

self.addEventListener('message', (event) => {  // offline.js: the language of the page the reader reads
  const msg = event.data || {};
  const code = msg.type === 'warnhub:lang' ? codeOf(msg.lang) : null;
  if (!code) return;
  event.waitUntil((async () => {
    await (await caches.open(WORDS_CACHE)).put(LAST_LANG, new Response(code));
    await words(code, true);  // fetched now, while online (a new release's words replace the kept ones)
  })());
});

/** The page to open: the hub's own origin only (a link in a payload never leads elsewhere). */
function safeUrl(url) {
  try {
    const target = new URL(url || '/', self.location.origin);
    if (target.origin === self.location.origin) return target.pathname + target.search + target.hash;
    return target.pathname.startsWith('/warnungen/') ? target.pathname : '/';
  } catch (err) {
    return '/';
  }
}

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = new URL(safeUrl(event.notification.data && event.notification.data.url), self.location.origin).href;
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    const same = windows.find((c) => c.url === url);
    if (same) return same.focus();
    if (windows.length && 'navigate' in windows[0]) {
      try {
        const client = await windows[0].navigate(url);
        if (client) return client.focus();
      } catch (err) { /* not controlled by us: open a new window below */ }
    }
    return self.clients.openWindow(url);
  })());
});

async function tellPages(message) {
  const windows = await self.clients.matchAll({ type: 'window' });
  for (const client of windows) client.postMessage(message);
}

// -- offline --------------------------------------------------------------------------------------------------------

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  const kind = kindOf(url, request);
  if (kind === 'page') event.respondWith(networkFirst(event, true));
  else if (kind === 'data') event.respondWith(networkFirst(event, false));
  else if (kind === 'asset') event.respondWith(staleWhileRevalidate(event));
});

/** A path of a district's site (/uelzen/warnungen/w1, on a hub of several districts) as the site's own path. */
const DISTRICT_PATH = /^\/[a-z0-9-]+(?=\/(?:$|abonnieren$|datenschutz$|warnungen\/|start\.json$|api\/v1\/(?:warnings|regions)))/;

/** 'page', 'data', 'asset', or null (left to the browser, never cached). */
function kindOf(url, request) {
  const path = url.pathname.replace(DISTRICT_PATH, '');
  if (request.mode === 'navigate' || request.destination === 'document') {
    if (SHELL_PAGES.includes(path) || /^\/warnungen\/[^/]+\/?$/.test(path)) return 'page';
    return null;
  }
  if (path === '/api/v1/warnings' || /^\/api\/v1\/warnings\/[^/]+$/.test(path) || path === '/api/v1/regions'
      || path === '/start.json') {
    return 'data';
  }
  if (path.startsWith('/static/citizen/') || path.startsWith('/static/vendor/leaflet/')) return 'asset';
  return null;
}

function networkFirst(event, html) {
  const request = event.request;
  const network = fetch(request);
  // The copy is written even when the cache answered first (slow network): the next visit gets the newer state.
  event.waitUntil(network.then((response) => {
    if (!response.ok || response.type !== 'basic') return undefined;
    const copy = response.clone();  // now, before the page starts reading the body
    return caches.open(DATA_CACHE).then(async (cache) => {
      await cache.put(request, await stamped(copy, html));
      await trim(cache);
    });
  }).catch(() => {}));
  return answer(event, network, html);
}

async function answer(event, network, html) {
  const request = event.request;
  let timer;
  let failed = null;  // a 5xx answer: the cached copy is better, if there is one
  const late = new Promise((resolve) => { timer = setTimeout(resolve, NETWORK_TIMEOUT_MS, null); });
  try {
    const response = await Promise.race([network, late]);
    if (response && response.status < 500) {
      if (!html) notify(event, { type: 'warnhub:live', url: request.url });
      return response;
    }
    failed = response;
  } catch (err) {
    /* offline or the hub unreachable: the cache answers below */
  } finally {
    clearTimeout(timer);
  }
  const cached = await newest(request, html);
  if (!cached && failed) return failed;
  if (cached) {
    if (!html) notify(event, { type: 'warnhub:cached', url: request.url, cachedAt: cached.headers.get(CACHED_AT) });
    return html ? cached : withoutExpired(cached);
  }
  if (!html) notify(event, { type: 'warnhub:network-failed', url: request.url });
  try {
    return await network;  // nothing cached: wait for the slow network after all
  } catch (err) {
    return html ? offlinePage(await words(codeOf(new URL(request.url).searchParams.get('lang'))
      || await lastLanguage())) : Response.json(
      { error: 'Offline – keine gespeicherten Daten / offline – nothing saved' }, { status: 503 });
  }
}

/** The most recently fetched cached copy of `request` (a page may be in both caches: installed, then visited). */
async function newest(request, html) {
  const keys = html ? [request, new URL(request.url).pathname] : [request];
  const found = [];
  for (const name of CURRENT_CACHES) {
    const cache = await caches.open(name);
    for (const key of keys) {
      const hit = await cache.match(key);
      if (hit) found.push(hit);
    }
  }
  const at = (r) => Date.parse(r.headers.get(CACHED_AT) || '') || 0;
  found.sort((a, b) => at(b) - at(a));
  return found[0] || null;
}

async function staleWhileRevalidate(event) {
  const cache = await caches.open(SHELL_CACHE);
  const cached = await cache.match(event.request, { ignoreSearch: true });
  const update = fetch(event.request).then((response) => {
    if (response.ok && response.type === 'basic') {
      const copy = response.clone();
      event.waitUntil(stamped(copy, false).then((stamp) => cache.put(event.request, stamp)).catch(() => {}));
    }
    return response;
  });
  if (cached) {
    event.waitUntil(update.catch(() => {}));
    return cached;
  }
  return update;
}

/** A copy of `response` carrying its fetch time (header; for HTML also a meta element after <head>). */
async function stamped(response, html) {
  const now = new Date().toISOString();
  const headers = new Headers(response.headers);
  headers.set(CACHED_AT, now);
  let body = await response.arrayBuffer();
  if (html && (headers.get('Content-Type') || '').includes('text/html')) {
    const text = new TextDecoder().decode(body);
    const meta = `<meta name="warnhub-cached-at" content="${now}">`;
    const head = /<head(?:\s[^>]*)?>/i;  // not <header>
    body = head.test(text) ? text.replace(head, (tag) => tag + meta) : meta + text;
    headers.delete('Content-Length');
  }
  return new Response(body, { status: response.status, statusText: response.statusText, headers });
}

/** A cached API answer without the warnings whose `expires` has passed (never shown as current from cache). */
async function withoutExpired(response) {
  if (!(response.headers.get('Content-Type') || '').includes('json')) return response;
  let doc;
  try {
    doc = await response.clone().json();
  } catch (err) {
    return response;
  }
  const now = Date.now();
  const ends = (w) => w && (w.expires || (w.properties && w.properties.expires));  // API item or map feature
  const live = (w) => !(ends(w) && Date.parse(ends(w)) <= now);
  if (doc && Array.isArray(doc.warnings)) {
    doc.warnings = doc.warnings.filter(live);
  } else if (doc && Array.isArray(doc.versions)) {  // one incident: keep it, but say that it has ended
    const latest = doc.versions[doc.versions.length - 1];
    if (latest && !live(latest)) {
      doc.live = false;
      doc.expired = true;
    }
  } else {
    return response;
  }
  const headers = new Headers(response.headers);
  headers.delete('Content-Length');
  return new Response(JSON.stringify(doc), { status: response.status, headers });
}

/** Keep the newest MAX_DATA_ENTRIES (keys come oldest first). */
async function trim(cache) {
  const keys = await cache.keys();
  await Promise.all(keys.slice(0, Math.max(0, keys.length - MAX_DATA_ENTRIES)).map((r) => cache.delete(r)));
}

function notify(event, message) {
  if (!event.clientId) return;
  event.waitUntil(self.clients.get(event.clientId).then((client) => client && client.postMessage(message)));
}

function offlinePage(w = GERMAN) {
  const esc = (text) => text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
  const de = w.lang === 'de';
  const dir = w.lang === 'ar' ? 'rtl' : 'ltr';
  const home = de ? '/' : `/?lang=${encodeURIComponent(w.lang)}`;
  const html = `<!doctype html><html lang="${w.lang}" dir="${dir}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>${esc(w._('Offline'))}</title>
<link rel="stylesheet" href="/static/citizen/citizen.css"></head><body><main>
<h1>${esc(w._('Offline'))}</h1>
<p>${esc(w._('Diese Seite ist auf diesem Gerät nicht gespeichert. Sobald wieder eine Verbindung besteht, bitte neu laden.'))}</p>
<p lang="en" dir="ltr"><small>This page is not saved on this device. Please reload once you are back online.</small></p>
<p><a href="${home}">${esc(w._('Zur Startseite'))}${de ? ' / Home' : ''}</a></p>
<div id="offline-status" role="status" aria-live="polite"></div>
</main><script src="/static/citizen/offline.js" defer></script></body></html>`;
  return new Response(html, { status: 503, headers: { 'Content-Type': 'text/html; charset=utf-8' } });
}
