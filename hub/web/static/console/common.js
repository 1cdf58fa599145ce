/* warnhub console: what every page shares. The session's CSRF token (meta csrf-token) goes with every change. */
"use strict";

const Console = (() => {
  const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content || "";
  const csrf = meta("csrf-token");
  const prefix = meta("console-prefix") || "/console";

  async function api(method, url, body) {
    const opts = {method, credentials: "same-origin", headers: {"Accept": "application/json"}};
    if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(url, opts);
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (res.status === 401) {
      location.href = `${prefix}/login?next=${encodeURIComponent(location.pathname + location.search)}`;
    }
    if (!res.ok) {
      const err = new Error((data && data.message) || `HTTP ${res.status}`);
      err.status = res.status;
      err.data = data || {};
      throw err;
    }
    return data;
  }

  function flash(message, kind) {
    const box = document.getElementById("flash");
    if (!box) return;
    box.textContent = message;
    box.className = `flash flash-${kind || "error"}`;
    box.hidden = false;
    box.scrollIntoView({block: "nearest"});
  }

  function clearFlash() {
    const box = document.getElementById("flash");
    if (box) box.hidden = true;
  }

  function pageData(id) {
    const el = document.getElementById(id || "page-data");
    return el ? JSON.parse(el.textContent) : {};
  }

  /* Keep a button from being pressed twice while its request runs. */
  async function busy(button, fn) {
    if (button.dataset.busy === "1") return undefined;
    button.dataset.busy = "1";
    const was = button.disabled;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      return await fn();
    } finally {
      button.dataset.busy = "0";
      button.disabled = was;
      button.removeAttribute("aria-busy");
    }
  }

  return {api, flash, clearFlash, pageData, busy, csrf, prefix};
})();
