/* warnhub offline.js, included on every citizen page (defer).
 *
 * Owns:
 * - registering the service worker /sw.js (scope "/": push and the offline copy, see sw.js);
 * - <div id="offline-status" role="status" aria-live="polite">: "Offline – Stand: 14:05 Uhr (vor 12 Minuten)" when
 *   the page or its data came from the offline copy or the network is down, "Verbindung unterbrochen" when a live
 *   refresh failed; empty while everything is live (class "offline" while it says something);
 * - warnings that have expired: every element with data-expires="<ISO 8601 or empty>" (warning items in lists, the
 *   main article of a warning page) whose time has passed gets class "expired"; list items are hidden (and get the
 *   words "abgelaufen / expired"), so an expired warning is never shown among the current ones; a warning page's
 *   article gets a banner "ABGELAUFEN" before it. Checked on load, every 30 s and whenever the page adds such
 *   elements; then window receives CustomEvent 'warnhub:expired' ({elements, threads}) for the page's own scripts
 *   (counts, map areas).
 *
 * Other scripts may report their live refresh: window.dispatchEvent(new Event('warnhub:live-failed')) /
 * new Event('warnhub:live-ok'). Fetches through the service worker report themselves.
 */
(() => {
  'use strict';

  const TICK_MS = 30000;
  // The page's language first, a second one smaller: English on German pages, German on all others. Texts of the
  // seven other languages come from the page (#script-texts, the pages catalogue), their clocks from Intl.
  const LANG = document.documentElement.lang || 'de';
  const EN = LANG === 'en';
  const DE = LANG === 'de' || LANG === 'de-x-ls';
  const LOCALE = { 'de-x-ls': 'de-DE', ar: 'ar-u-nu-latn' }[LANG] || LANG;  // Latin digits, as the server writes
  const TEXTS = (() => {
    try { return JSON.parse(document.getElementById('script-texts').textContent); } catch (err) { return {}; }
  })();
  const status = document.getElementById('offline-status');
  const state = {
    loadedAt: Date.now(),
    pageCachedAt: cachedAtOfPage(),  // set by sw.js in the offline copy of a page
    dataCachedAt: null,              // the oldest cached API answer this page used
    liveFailed: false,
  };

  function cachedAtOfPage() {
    const meta = document.querySelector('meta[name="warnhub-cached-at"]');
    const at = meta ? Date.parse(meta.getAttribute('content') || '') : NaN;
    return Number.isFinite(at) ? at : null;
  }

  // -- service worker -------------------------------------------------------------------------------------------

  if ('serviceWorker' in navigator && window.isSecureContext) {
    navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch((err) => {
      console.warn('warnhub: service worker not registered:', err);
    });
    // the worker keeps this language's words (/i18n/sw/{lang}.json) for its offline page and unreadable pushes
    navigator.serviceWorker.ready.then((reg) => {
      if (reg.active) reg.active.postMessage({ type: 'warnhub:lang', lang: LANG });
    }).catch(() => {});
    navigator.serviceWorker.addEventListener('message', (event) => {
      const msg = event.data || {};
      if (msg.type === 'warnhub:cached') {
        const at = Date.parse(msg.cachedAt || '');
        if (Number.isFinite(at)) state.dataCachedAt = state.dataCachedAt ? Math.min(state.dataCachedAt, at) : at;
        render();
      } else if (msg.type === 'warnhub:network-failed') {
        state.liveFailed = true;
        render();
      } else if (msg.type === 'warnhub:live') {
        state.dataCachedAt = null;
        state.liveFailed = false;
        render();
        probe();  // the hub answers again: an old copy of the page is replaced by the current one
      }
    });
  }

  window.addEventListener('warnhub:live-failed', () => { state.liveFailed = true; render(); });
  window.addEventListener('warnhub:live-ok', () => { state.liveFailed = false; render(); });
  window.addEventListener('offline', render);
  window.addEventListener('online', () => {  // an old copy on screen: load the current state once the hub answers
    render();
    probe();  // not a reload at once: Chromium fires 'online' spuriously, and online is not "the hub answers"
  });

  // -- the status line ------------------------------------------------------------------------------------------

  function render() {
    markExpired();
    if (!status) return;
    const now = Date.now();
    const cached = [state.pageCachedAt, state.dataCachedAt].filter(Boolean);
    const offline = navigator.onLine === false;
    let de = '';
    let en = '';
    let own = '';
    if (cached.length || offline) {
      const stand = cached.length ? Math.min(...cached) : state.loadedAt;
      de = `Offline – Stand: ${clockDe(stand, now)} (${agoDe(stand, now)})`;
      en = `Offline – as of ${clockEn(stand, now)} (${agoEn(stand, now)})`;
      own = fill('Offline – Stand: %(time)s (%(ago)s)', { time: clockOwn(stand, now), ago: agoOwn(stand, now) });
    } else if (state.liveFailed) {
      de = `Verbindung unterbrochen – Stand: ${clockDe(state.loadedAt, now)} (${agoDe(state.loadedAt, now)})`;
      en = `Connection lost – as of ${clockEn(state.loadedAt, now)} (${agoEn(state.loadedAt, now)})`;
      own = fill('Verbindung unterbrochen – Stand: %(time)s (%(ago)s)',
        { time: clockOwn(state.loadedAt, now), ago: agoOwn(state.loadedAt, now) });
    }
    if (status.dataset.text === de) return;  // unchanged: do not make screen readers repeat it
    status.dataset.text = de;
    status.textContent = '';
    status.classList.toggle('offline', Boolean(de));
    if (!de) return;
    const [first, firstLang, second, secondLang] = pair(de, en, own);
    const main = document.createElement('strong');
    main.lang = firstLang;
    main.textContent = first;
    const small = document.createElement('small');
    small.lang = secondLang;
    small.textContent = second;
    status.append(main, ' ', small);
  }

  /** [first text, its language, second text, its language] for the page's language. */
  function pair(de, en, own) {
    if (DE) return [de, 'de', en, 'en'];
    if (EN) return [en, 'en', de, 'de'];
    return [own, LANG, de, 'de'];
  }

  function fill(id, values) {
    const text = TEXTS[id] || id;
    return text.replace(/%\((\w+)\)s/g, (m, name) => (values && name in values ? String(values[name]) : m));
  }

  function clockOwn(ms, now) {
    const d = new Date(ms);
    const time = d.toLocaleTimeString(LOCALE, { hour: '2-digit', minute: '2-digit' });
    if (sameDay(ms, now)) return fill('%(time)s Uhr', { time });
    return fill('%(day)s, %(time)s Uhr', { day: d.toLocaleDateString(LOCALE, { day: 'numeric', month: 'short',
      year: 'numeric' }), time });
  }

  function agoOwn(ms, now) {
    const rtf = new Intl.RelativeTimeFormat(LOCALE, { numeric: 'auto' });
    const min = Math.floor(Math.max(0, now - ms) / 60000);
    if (min < 120) return rtf.format(-min, 'minute');
    const hours = Math.floor(min / 60);
    if (hours < 48) return rtf.format(-hours, 'hour');
    return rtf.format(-Math.floor(hours / 24), 'day');
  }

  function sameDay(a, b) {
    return new Date(a).toDateString() === new Date(b).toDateString();
  }

  function clockDe(ms, now) {
    const d = new Date(ms);
    const time = d.toLocaleTimeString('de-DE', { hour: '2-digit', minute: '2-digit' });
    if (sameDay(ms, now)) return `${time} Uhr`;
    return `${d.toLocaleDateString('de-DE', { day: '2-digit', month: '2-digit', year: 'numeric' })}, ${time} Uhr`;
  }

  function clockEn(ms, now) {
    const d = new Date(ms);
    const time = d.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' });
    if (sameDay(ms, now)) return time;
    return `${d.toLocaleDateString('en-GB', { day: 'numeric', month: 'short', year: 'numeric' })}, ${time}`;
  }

  function agoDe(ms, now) {
    const min = Math.floor(Math.max(0, now - ms) / 60000);
    if (min < 1) return 'vor weniger als einer Minute';
    if (min === 1) return 'vor 1 Minute';
    if (min < 120) return `vor ${min} Minuten`;
    const hours = Math.floor(min / 60);
    if (hours < 48) return `vor ${hours} Stunden`;
    return `vor ${Math.floor(hours / 24)} Tagen`;
  }

  function agoEn(ms, now) {
    const min = Math.floor(Math.max(0, now - ms) / 60000);
    if (min < 1) return 'less than a minute ago';
    if (min === 1) return '1 minute ago';
    if (min < 120) return `${min} minutes ago`;
    const hours = Math.floor(min / 60);
    if (hours < 48) return `${hours} hours ago`;
    return `${Math.floor(hours / 24)} days ago`;
  }

  // -- expired warnings -----------------------------------------------------------------------------------------

  function markExpired() {
    const now = Date.now();
    const lists = new Set();
    const ended = [];
    for (const el of document.querySelectorAll('[data-expires]')) {
      const expires = Date.parse(el.dataset.expires || '');
      if (!Number.isFinite(expires) || expires > now || el.classList.contains('expired')) continue;
      el.classList.add('expired');
      ended.push(el);
      if (el.matches('li') || (el.parentElement && el.parentElement.matches('ul, ol'))) {
        el.append(' ', bilingual('span', 'expired-note', 'abgelaufen', 'expired', fill('abgelaufen')));
        el.hidden = true;  // not among the current warnings
        lists.add(el.parentElement);
      } else {  // the warning's own page: it stays readable, under a banner saying that it has ended
        const banner = document.createElement('div');
        banner.className = 'state-banner state-banner-ended expired-note';
        const big = document.createElement('p');
        big.className = 'state-big';
        big.textContent = pair('ABGELAUFEN', 'EXPIRED', fill('ABGELAUFEN'))[0];
        banner.append(big, bilingual('p', '',
          `Diese Warnung ist seit ${clockDe(expires, now)} abgelaufen. Sie gilt nicht mehr.`,
          `This warning expired at ${clockEn(expires, now)}. It is no longer in force.`,
          fill('Diese Warnung ist seit %(time)s abgelaufen. Sie gilt nicht mehr.', { time: clockOwn(expires, now) })));
        el.before(banner);
        el.setAttribute('aria-describedby', ensureId(banner));
      }
    }
    for (const list of lists) emptied(list);
    for (const note of document.querySelectorAll('.expired-empty')) {  // current warnings arrived again
      if (note.parentElement && note.parentElement.querySelector('[data-expires]:not([hidden])')) note.remove();
    }
    if (ended.length) {  // for the page's own scripts: a count to correct, map areas to take away
      window.dispatchEvent(new CustomEvent('warnhub:expired', { detail: { elements: ended,
        threads: ended.map((el) => el.dataset.thread).filter(Boolean) } }));
    }
  }

  /** The page's language first, the other one after a slash (marked with its language). */
  function bilingual(tag, className, de, en, own) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    const [one, oneLang, two, twoLang] = pair(de, en, own);
    const first = document.createElement('strong');
    const second = document.createElement('span');
    first.lang = oneLang;
    first.textContent = one;
    second.lang = twoLang;
    second.textContent = two;
    el.append(first, ' / ', second);
    return el;
  }

  let noteIds = 0;
  function ensureId(el) {
    if (!el.id) el.id = `expired-note-${++noteIds}`;
    return el.id;
  }

  /** A list whose every warning has expired says so instead of standing empty. */
  function emptied(list) {
    if (!list || list.querySelector('[data-expires]:not([hidden])') || list.querySelector('.expired-empty')) return;
    const item = document.createElement(list.matches('ul, ol') ? 'li' : 'p');
    item.className = 'expired-empty';
    const [one, oneLang, two, twoLang] = pair('Keine aktuellen Warnungen – die zuletzt bekannten sind abgelaufen.',
      'No current warnings – the last known ones have expired.',
      fill('Keine aktuellen Warnungen – die zuletzt bekannten sind abgelaufen.'));
    const first = document.createElement('span');
    first.lang = oneLang;
    first.textContent = one;
    const second = document.createElement('small');
    second.lang = twoLang;
    second.textContent = two;
    item.append(first, ' ', second);
    list.append(item);
  }

  // Warnings the page adds later (live refresh, rendering cached data) are checked as they arrive.
  new MutationObserver((records) => {
    if (records.some((r) => [...r.addedNodes].some((n) => n.nodeType === 1
      && (n.hasAttribute('data-expires') || n.querySelector('[data-expires]'))))) {
      markExpired();
    }
  }).observe(document.body || document.documentElement, { childList: true, subtree: true });

  /** An offline copy on screen while the browser thinks it is online (the hub was unreachable or slow): once the
   *  hub answers again, load the current page. */
  async function probe() {
    if (!state.pageCachedAt || navigator.onLine === false || document.hidden) return;
    try {
      const response = await fetch(window.location.href, { method: 'HEAD', cache: 'no-store' });
      if (response.ok) window.location.reload();
    } catch (err) { /* still unreachable */ }
  }

  render();
  setInterval(() => { render(); probe(); }, TICK_MS);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) render(); });
})();
