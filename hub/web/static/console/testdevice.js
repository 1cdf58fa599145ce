/* warnhub console: issue a link that registers a staff test device for exercises (single use, 24 h). */
"use strict";

(() => {
  const button = document.getElementById("test-device-issue");
  const out = document.getElementById("test-device-link");
  if (!button || !out) return;
  button.addEventListener("click", () => Console.busy(button, async () => {
    try {
      const data = await Console.api("POST", `${Console.prefix}/api/exercise-token`);
      const link = out.querySelector("a");
      link.href = new URL(data.link, location.origin).href;
      link.textContent = link.href;
      out.querySelector(".en").textContent = `gültig bis / valid until ${new Date(data.expires).toLocaleString("de-DE")}`;
      out.hidden = false;
    } catch (err) {
      Console.flash(err.message, "error");
    }
  }));
})();
