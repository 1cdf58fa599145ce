/* warnhub widget (/widget/{ars}): optional freshness. The widget works without this script; with it, it reloads
   itself only when nobody is reading it (the tab is hidden) or when the reader comes back after a while, so the list
   never changes under someone's eyes (no meta refresh: WCAG 2.2.1). */
"use strict";

(() => {
  const STALE_MS = 120000;
  const loaded = Date.now();
  const reload = () => window.location.reload();
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && Date.now() - loaded > STALE_MS) reload();
  });
  setInterval(() => {
    if (document.hidden && Date.now() - loaded > STALE_MS) reload();
  }, STALE_MS);
})();
