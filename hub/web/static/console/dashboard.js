/* warnhub console dashboard: re-reads the inbox every few seconds and replaces only the sections that changed
   (so keyboard focus stays where it is unless its own section really changed). */
"use strict";

(() => {
  const live = document.getElementById("live");
  const every = Number(live && live.dataset.pollMs) || 2500;
  const last = Console.pageData().html || {};
  let failures = 0;

  function replace(name, html) {
    const section = document.getElementById(`inbox-${name}`);
    if (!section || last[name] === html) return;
    const focused = section.contains(document.activeElement);
    section.innerHTML = html;
    last[name] = html;
    if (focused) {
      const heading = section.querySelector("h2");
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
  }

  async function poll() {
    if (!document.hidden) {
      try {
        const res = await Console.api("GET", `${Console.prefix}/api/inbox`);
        for (const [name, html] of Object.entries(res.html)) replace(name, html);
        failures = 0;
        live.textContent = "live";
        live.className = "live";
        live.dataset.updated = String(Date.now());
      } catch (err) {
        failures += 1;
        if (failures > 1) {
          live.textContent = "Verbindung gestört / connection lost";
          live.className = "live live-down";
        }
      }
    }
    setTimeout(poll, every);
  }
  setTimeout(poll, every);
})();
