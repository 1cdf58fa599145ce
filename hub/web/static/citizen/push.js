/* warnhub push.js, on /abonnieren (defer): subscribe this browser to warnings by Web Push, without an account.
 *
 * Markup it expects (the page's): <form id="subscribe-form"> with #place-search, <ul id="places"> whose <li> carry
 * data-place='{"lat":..,"lon":..,"radius_m":..}' or data-place='{"ars":".."}' (and optionally data-label), checkboxes
 * name="topic", text input #event-topic (an event → topic "event:<slug>"), <select name="min_severity">,
 * checkboxes name="language", button #subscribe-button; <div id="subscription-list">, <p id="push-status">.
 *
 * Flow: VAPID key from GET /api/v1/push/key → service worker ready → pushManager.subscribe() → POST
 * /api/v1/subscriptions (or PUT with the stored token when this browser is subscribed already: same push endpoint,
 * new settings). The answer's id and token, the endpoint and the chosen settings are kept in this browser's
 * localStorage only ("warnhub.subscriptions"), nothing else about the person; the list below the form reads, checks
 * (GET) and deletes (DELETE) them with the token.
 */
(() => {
  'use strict';

  const STORE = 'warnhub.subscriptions';
  const form = document.getElementById('subscribe-form');
  const statusEl = document.getElementById('push-status');
  const listEl = document.getElementById('subscription-list');
  const button = document.getElementById('subscribe-button');
  // The page's language first, a second one smaller: German pages English, English pages German; the seven other
  // languages take their words from the page (#script-texts: the pages catalogue by German id), German smaller.
  const LANG = document.documentElement.lang || 'de';
  const EN = LANG === 'en';
  const TEXTS = (() => {
    try { return JSON.parse(document.getElementById('script-texts').textContent); } catch (err) { return {}; }
  })();
  const own = (de) => (LANG !== 'de' && !EN && TEXTS[de]) || null;  // the catalogue's text for a German text
  const fill = (de, values) => (own(de) || de).replace(/%\((\w+)\)s/g, (m, name) => (name in values ? values[name] : m));
  const t = (de, en) => (EN ? en : own(de) || de);
  // The words for a severity as the page's own <select name="min_severity"> says them (the hub's one table).
  const severityWord = (value) => {
    const option = form && Array.from(form.querySelectorAll('select[name=min_severity] option'))
      .find((o) => o.value === value);
    return option ? option.textContent : value;
  };

  // -- status line ------------------------------------------------------------------------------------------------

  function say(de, en, kind = 'info') {
    if (!statusEl) return;
    statusEl.textContent = '';
    statusEl.dataset.kind = kind;
    const mine = own(de);
    const first = EN && en ? en : mine || de;
    const second = EN && en ? de : mine ? de : en;
    const main = document.createElement('span');
    main.textContent = first;
    statusEl.append(main);
    if (second) {
      const small = document.createElement('small');
      small.lang = EN || mine ? 'de' : 'en';
      small.textContent = second;
      statusEl.append(' ', small);
    }
  }

  // -- what this browser keeps --------------------------------------------------------------------------------------

  function stored() {
    try {
      const list = JSON.parse(window.localStorage.getItem(STORE) || '[]');
      return Array.isArray(list) ? list.filter((s) => s && s.id && s.token) : [];
    } catch (err) {
      return [];
    }
  }

  function keep(list) {
    try {
      window.localStorage.setItem(STORE, JSON.stringify(list));
      return true;
    } catch (err) {
      return false;
    }
  }

  // -- support and permission -----------------------------------------------------------------------------------------

  function unsupported() {
    if (!window.isSecureContext) {
      return ['Push-Benachrichtigungen gehen nur über eine sichere Verbindung (https).',
              'Push notifications need a secure connection (https).'];
    }
    if (!('serviceWorker' in navigator) || !('PushManager' in window) || !('Notification' in window)) {
      return ['Dieser Browser kann keine Push-Benachrichtigungen empfangen. Auf iPhone und iPad (ab iOS 16.4): '
              + 'die Seite über „Teilen → Zum Home-Bildschirm“ hinzufügen und von dort öffnen.',
              'This browser cannot receive push notifications. On iPhone/iPad (iOS 16.4+): add the page to the '
              + 'home screen and open it from there.'];
    }
    return null;
  }

  const DENIED = ['Benachrichtigungen sind für diese Seite blockiert. Erlauben Sie sie in den Website-Einstellungen '
                  + 'des Browsers (Symbol links neben der Adresse) und versuchen Sie es erneut.',
                  'Notifications are blocked for this site. Allow them in the browser\'s site settings (icon left '
                  + 'of the address) and try again.'];

  const NOT_ASKED = ['Ohne Ihre Erlaubnis für Benachrichtigungen kann diese Seite Sie nicht warnen. Bitte erneut '
                     + '„Abonnieren“ wählen und die Frage des Browsers mit „Zulassen“ beantworten.',
                     'Without your permission for notifications this site cannot warn you. Press “Subscribe” '
                     + 'again and answer the browser\'s question with “Allow”.'];

  async function permission() {
    if (Notification.permission === 'granted' || Notification.permission === 'denied') {
      return Notification.permission;
    }
    return Notification.requestPermission();
  }

  // -- the form -------------------------------------------------------------------------------------------------------

  function slug(text) {
    return text.trim().toLowerCase()
      .replace(/ä/g, 'ae').replace(/ö/g, 'oe').replace(/ü/g, 'ue').replace(/ß/g, 'ss')
      .replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40).replace(/-+$/, '');
  }

  function labelOf(li) {
    if (li.dataset.label) return li.dataset.label;
    const copy = li.cloneNode(true);
    for (const el of copy.querySelectorAll('button, input, select, [aria-hidden="true"]')) el.remove();
    return copy.textContent.replace(/\s+/g, ' ').trim();
  }

  function readForm() {
    const places = [];
    const labels = [];
    for (const li of document.querySelectorAll('#places li[data-place]')) {
      try {
        places.push(JSON.parse(li.dataset.place));
        labels.push(labelOf(li));
      } catch (err) { /* a broken item is skipped, the others still count */ }
    }
    const topics = [...form.querySelectorAll('input[name="topic"]:checked')].map((el) => el.value);
    const eventInput = document.getElementById('event-topic');
    const event = eventInput ? slug(eventInput.value || '') : '';
    if (event) topics.push(`event:${event}`);
    const severity = form.querySelector('[name="min_severity"]');
    const languages = [...form.querySelectorAll('input[name="language"]:checked')].map((el) => el.value);
    return {
      places, labels, topics: [...new Set(topics)],
      min_severity: (severity && severity.value) || 'Minor',
      languages: languages.length ? languages : ['de'],
    };
  }

  // -- push subscription ------------------------------------------------------------------------------------------

  function keyBytes(base64url) {
    const pad = '='.repeat((4 - (base64url.length % 4)) % 4);
    const raw = atob((base64url + pad).replace(/-/g, '+').replace(/_/g, '/'));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  function sameKey(buffer, bytes) {
    if (!buffer) return false;
    const a = new Uint8Array(buffer);
    return a.length === bytes.length && a.every((v, i) => v === bytes[i]);
  }

  async function pushSubscription() {
    const answer = await api('GET', '/api/v1/push/key');
    if (answer.status !== 200 || !answer.data || !answer.data.publicKey) {
      throw new Problem('Push ist beim Warn-Hub gerade nicht bereit. Bitte später erneut versuchen.',
                        'Push is not ready at the hub. Please try again later.');
    }
    const key = keyBytes(answer.data.publicKey);
    await navigator.serviceWorker.register('/sw.js', { scope: '/' });
    const registration = await navigator.serviceWorker.ready;
    const existing = await registration.pushManager.getSubscription();
    if (existing) {
      if (sameKey(existing.options && existing.options.applicationServerKey, key)) return existing;
      await existing.unsubscribe();  // made for another hub key: push would never reach it
    }
    return registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  }

  class Problem extends Error {
    constructor(de, en) {
      super(de);
      this.en = en;
    }
  }

  async function api(method, url, token, body) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(url, { method, headers, body: body ? JSON.stringify(body) : undefined,
                                    cache: 'no-store' });
    } catch (err) {
      throw new Problem('Keine Verbindung zum Warn-Hub. Bitte später erneut versuchen.',
                        'No connection to the warning hub. Please try again later.');
    }
    let data = null;
    if (response.status !== 204) {
      try { data = await response.json(); } catch (err) { data = null; }
    }
    return { status: response.status, data };
  }

  function refused(result) {
    const text = (result.data && result.data.error) || `Fehler ${result.status}`;
    const [de, en] = text.includes(' / ') ? [text.slice(0, text.indexOf(' / ')), text.slice(text.indexOf(' / ') + 3)]
      : [text, ''];
    const problem = new Problem(`Der Warn-Hub hat das Abo nicht angenommen: ${de}`, en && `Not accepted: ${en}`);
    if (own('Der Warn-Hub hat das Abo nicht angenommen: %(reason)s')) {  // the hub's reason stays as it said it
      problem.message = fill('Der Warn-Hub hat das Abo nicht angenommen: %(reason)s', { reason: text });
      problem.en = '';
    }
    return problem;
  }

  async function subscribe(event) {
    event.preventDefault();
    const missing = unsupported();
    if (missing) return say(...missing, 'error');
    const choice = readForm();
    if (!choice.places.length) {
      return say('Bitte wählen Sie mindestens einen Ort (Suche oder Karte).',
                 'Please choose at least one place (search or map).', 'error');
    }
    if (button) button.disabled = true;
    form.setAttribute('aria-busy', 'true');
    say('Abo wird eingerichtet …', 'Subscribing …');
    try {
      const allowed = await permission();
      if (allowed === 'denied') return say(...DENIED, 'error');
      if (allowed !== 'granted') return say(...NOT_ASKED, 'error');
      const sub = await pushSubscription();
      const json = typeof sub.toJSON === 'function' ? sub.toJSON() : sub;
      const body = {
        subscription: { endpoint: json.endpoint, keys: json.keys },
        places: choice.places, topics: choice.topics, min_severity: choice.min_severity,
        languages: choice.languages, exercise: false,
        ...(window.SubscribeFilters ? window.SubscribeFilters.read() : {}),  // subscribe.js: sources, quiet hours
      };
      // A staff test device opens this page through the console's link (?exercise_token=...): exercises only.
      const exerciseToken = new URLSearchParams(location.search).get('exercise_token');
      if (exerciseToken) Object.assign(body, { exercise: true, exercise_token: exerciseToken });
      const list = stored();
      const mine = list.find((s) => s.endpoint === json.endpoint);
      let result = mine ? await api('PUT', `/api/v1/subscriptions/${encodeURIComponent(mine.id)}`, mine.token, body)
        : null;
      let token = mine && mine.token;
      if (!result || result.status === 404) {
        result = await api('POST', '/api/v1/subscriptions', null, body);
        token = result.data && result.data.token;
      }
      if (result.status !== 200 && result.status !== 201) throw refused(result);
      const entry = {
        id: result.data.id, token, endpoint: json.endpoint, places: choice.places, labels: choice.labels,
        topics: choice.topics, min_severity: choice.min_severity, languages: choice.languages,
        saved: new Date().toISOString(),
      };
      // One push endpoint is one subscription at the hub: an entry for another endpoint is an old one (the
      // browser renewed its subscription, or the hub's key changed). Deleted at the hub while we hold its token.
      const old = list.filter((s) => s.id !== entry.id && s.endpoint !== entry.endpoint);
      await Promise.allSettled(old.map((s) => api('DELETE', `/api/v1/subscriptions/${encodeURIComponent(s.id)}`,
                                                  s.token)));
      const saved = keep([entry]);
      renderList();
      if (!saved) {
        return say('Abonniert. Dieser Browser kann das Abo aber nicht speichern (privater Modus?): Zum Abbestellen '
                   + 'die Benachrichtigungen in den Website-Einstellungen blockieren.',
                   'Subscribed, but this browser cannot store it (private mode?): to stop, block notifications '
                   + 'in the site settings.', 'warning');
      }
      say(mine ? 'Abo geändert. Sie erhalten Warnungen für die gewählten Orte.'
        : 'Abonniert. Sie erhalten Warnungen für die gewählten Orte auf diesem Gerät.',
          mine ? 'Subscription updated.' : 'Subscribed: you will get warnings for these places on this device.',
          'ok');
    } catch (err) {
      if (err instanceof Problem) {
        say(err.message, err.en, 'error');
      } else if (err && err.name === 'NotAllowedError') {
        say(...DENIED, 'error');
      } else {
        const why = err && err.message ? err.message : String(err);
        say(own('Das Abo konnte nicht eingerichtet werden: %(reason)s')
          ? fill('Das Abo konnte nicht eingerichtet werden: %(reason)s', { reason: why })
          : `Das Abo konnte nicht eingerichtet werden: ${why}`, 'The subscription could not be set up.', 'error');
      }
    } finally {
      if (button) button.disabled = false;
      form.removeAttribute('aria-busy');
    }
    return undefined;
  }

  // -- the list of this browser's subscriptions ----------------------------------------------------------------------

  function placeText(entry) {
    return (entry.places || []).map((p, i) => {
      const label = entry.labels && entry.labels[i];
      if (label) return label;
      if (p.ars) return `${t('Gebiet', 'Area')} ${p.ars}`;
      return `${Number(p.lat).toFixed(3)}, ${Number(p.lon).toFixed(3)} (${p.radius_m || 1000} m)`;
    }).join('; ');
  }

  function topicText(entry) {
    if (!entry.topics || !entry.topics.length) return t('alle Themen', 'all topics');
    return entry.topics.map((topic) => {
      if (topic.startsWith('event:')) return `${t('Veranstaltung', 'Event')} „${topic.slice(6)}“`;
      return labelFor('topic', topic);
    }).join(', ');
  }

  /** The form's label of a checkbox value (the page's language), else the value itself. */
  function labelFor(name, value) {
    const box = form && form.querySelector(`input[name="${name}"][value="${CSS.escape(value)}"]`);
    const label = box && box.labels && box.labels[0];
    return label ? label.textContent.replace(/\s+/g, ' ').trim() : value;
  }

  function renderList() {
    if (!listEl) return;
    const list = stored();
    listEl.textContent = '';
    if (!list.length) {
      const p = document.createElement('p');
      p.className = 'subscriptions-empty';
      p.textContent = t('Dieser Browser hat kein Abo.', 'This browser has no subscription.');
      listEl.append(p);
      return;
    }
    const ul = document.createElement('ul');
    ul.className = 'subscriptions';
    for (const entry of list) {
      const li = document.createElement('li');
      li.dataset.subscription = entry.id;
      const dl = document.createElement('dl');
      for (const [term, value] of [[t('Orte', 'Places'), placeText(entry)], [t('Themen', 'Topics'), topicText(entry)],
        [t('Warnen ab', 'Warn from'), severityWord(entry.min_severity)],
        [t('Sprachen', 'Languages'), (entry.languages || []).map((l) => labelFor('language', l)).join(', ')]]) {
        const dt = document.createElement('dt');
        dt.textContent = term;
        const dd = document.createElement('dd');
        dd.textContent = value;
        dl.append(dt, dd);
      }
      const del = document.createElement('button');
      del.type = 'button';
      del.className = 'button small subscription-delete';
      del.textContent = t('Abo löschen', 'Delete subscription');
      del.setAttribute('aria-label', `${del.textContent}: ${placeText(entry)}`);
      del.addEventListener('click', () => remove(entry.id, del));
      const hint = document.createElement('p');
      hint.className = 'subscription-hint';
      hint.textContent = t('Ändern: oben Orte und Themen wählen und erneut „Abonnieren“ – das ersetzt dieses Abo.',
                           'To change it, choose places and topics above and press “Subscribe” again.');
      li.append(dl, del, hint);
      ul.append(li);
    }
    listEl.append(ul);
  }

  async function remove(id, control) {
    const entry = stored().find((s) => s.id === id);
    if (!entry) return renderList();
    control.disabled = true;
    try {
      const result = await api('DELETE', `/api/v1/subscriptions/${encodeURIComponent(id)}`, entry.token);
      if (result.status !== 204 && result.status !== 404) throw refused(result);
      const rest = stored().filter((s) => s.id !== id);
      keep(rest);
      await unsubscribeIfUnused(entry.endpoint, rest);
      renderList();
      say('Abo gelöscht. Über dieses Abo kommen keine Warnungen mehr.',
          'Subscription deleted: no more warnings through it.', 'ok');
    } catch (err) {
      control.disabled = false;
      say(err.message || String(err), err.en || '', 'error');
    }
    return undefined;
  }

  async function unsubscribeIfUnused(endpoint, rest) {
    if (rest.some((s) => s.endpoint === endpoint) || !('serviceWorker' in navigator)) return;
    try {
      const registration = await navigator.serviceWorker.getRegistration('/');
      const sub = registration && await registration.pushManager.getSubscription();
      if (sub && sub.endpoint === endpoint) await sub.unsubscribe();
    } catch (err) { /* the hub has forgotten it already; the browser's own copy is harmless */ }
  }

  /** Ask the hub about every stored subscription: settings from the hub, entries it no longer knows dropped. */
  async function check() {
    const list = stored();
    if (!list.length || navigator.onLine === false) return;
    let dropped = 0;
    for (const entry of list) {
      let result;
      try {
        result = await api('GET', `/api/v1/subscriptions/${encodeURIComponent(entry.id)}`, entry.token);
      } catch (err) {
        return;  // offline: keep what is stored
      }
      if (result.status === 404) {
        dropped += 1;
        keep(stored().filter((s) => s.id !== entry.id));
      } else if (result.status === 200 && result.data && result.data.subscription) {
        const s = result.data.subscription;
        const same = JSON.stringify(s.places) === JSON.stringify(entry.places);
        Object.assign(entry, { places: s.places, labels: same ? entry.labels : [], topics: s.topics,
                               min_severity: s.min_severity, languages: s.languages });
        keep(stored().map((x) => (x.id === entry.id ? entry : x)));
      }
    }
    renderList();
    if (dropped) {
      say('Ein gespeichertes Abo gibt es beim Warn-Hub nicht mehr (der Browser hat es beendet oder es wurde '
          + 'gelöscht). Bitte bei Bedarf neu abonnieren.',
          'A stored subscription no longer exists at the hub. Please subscribe again if needed.', 'warning');
    }
  }

  // -- start ------------------------------------------------------------------------------------------------------------

  if (!form) return;
  form.addEventListener('submit', subscribe);
  renderList();
  const missing = unsupported();
  if (missing) {
    say(...missing, 'error');
  } else if (Notification.permission === 'denied') {
    say(...DENIED, 'error');
  } else if (new URLSearchParams(location.search).get('exercise_token')) {
    say('Testgerät der Leitstelle: dieses Abo erhält nur Übungen, keine echten Warnungen.',
        'Control-room test device: this subscription receives exercises only, no real warnings.', 'warning');
  }
  check();
})();
