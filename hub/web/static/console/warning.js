/* warnhub console: one warning. The send and approve buttons stay disabled until the sender has ticked the
   audience and the channels (and, where a picked region has no boundary of its own, the widening to its Kreis);
   what was ticked goes to the server, which refuses it unless it is this version's.
   Delivery counts are re-read every few seconds; if the version changes meanwhile, sending is blocked until the
   page is reloaded (the server would refuse the old preview anyway). */
"use strict";

(() => {
  const page = Console.pageData();
  const api = `${page.api}/warnings/${page.id}`;
  const $ = (id) => document.getElementById(id);
  const audience = $("confirm-audience");
  const channels = $("confirm-channels");
  const widen = $("confirm-widen");  // only when a picked region has no boundary of its own
  const reason = $("alone-reason");
  const sendButtons = ["btn-approve", "btn-send", "btn-send-alone"].map($).filter(Boolean);
  let changed = false;

  function update() {
    const ticked = Boolean(audience && channels && audience.checked && channels.checked && page.token && !changed
                           && (!widen || widen.checked));
    for (const b of sendButtons) {
      b.disabled = !(ticked && (b.id !== "btn-send-alone" || reason.value.trim().length >= page.min_reason));
    }
  }
  [audience, channels, widen, reason].forEach((el) => el && el.addEventListener("input", update));
  [audience, channels, widen].forEach((el) => el && el.addEventListener("change", update));

  function confirmation() {
    return {status: audience.dataset.status, audience: audience.dataset.audience, topic: audience.dataset.topic || null,
            channels: channels.dataset.channels.split(",").filter(Boolean)};
  }

  function markChanged() {
    changed = true;
    $("changed").hidden = false;
    update();
  }
  $("reload").addEventListener("click", () => location.reload());

  async function post(button, action, body) {
    Console.clearFlash();
    try {
      const res = await Console.busy(button, () => Console.api("POST", `${api}/${action}`, body));
      location.href = res.next;
    } catch (err) {
      Console.flash(err.message);
      if (err.status === 409) markChanged();
      update();
    }
  }

  const on = (id, fn) => { const b = $(id); if (b) b.addEventListener("click", () => fn(b)); };
  const widened = () => Boolean(widen && widen.checked);
  on("btn-approve", (b) => post(b, "approve", {token: page.token, confirm: confirmation(), widen: widened()}));
  on("btn-send", (b) => post(b, "send", {token: page.token, confirm: confirmation(), widen: widened()}));
  on("btn-send-alone", (b) => post(b, "send", {token: page.token, confirm: confirmation(), widen: widened(),
                                                reason: reason.value.trim()}));
  on("btn-submit", (b) => post(b, "submit", {}));
  on("btn-withdraw", (b) => post(b, "withdraw", {}));
  on("btn-reject", (b) => {
    const text = $("reject-reason").value.trim();
    if (text.length < 5) {
      Console.flash("Bitte eine Begründung angeben / please give a reason");
      $("reject-reason").focus();
      return;
    }
    post(b, "reject", {reason: text});
  });
  ["btn-update", "btn-cancel", "btn-all-clear"].forEach((id) => on(id, (b) => post(b, "follow-up", {action: b.dataset.action})));

  // -- live delivery status ---------------------------------------------------------------------------------------
  let shown = null;
  async function poll() {
    if (!document.hidden) {
      try {
        const res = await Console.api("GET", `${api}/status`);
        if (res.html !== shown) {
          $("delivery").innerHTML = res.html;
          shown = res.html;
        }
        if (res.state !== page.state || res.revision !== page.revision) markChanged();
      } catch (err) {
        /* the next poll tries again */
      }
    }
    setTimeout(poll, 2500);
  }
  setTimeout(poll, 2500);

  // -- the area on a map --------------------------------------------------------------------------------------------
  const area = Console.pageData("area-data");
  const map = ConsoleMap.create($("area-map"));
  window.warnhubMap = map;
  const shapes = L.featureGroup().addTo(map);
  ConsoleMap.base(map).then(async () => {
    for (const f of area.features || []) shapes.addLayer(ConsoleMap.feature(f));
    // the server names the shapes to draw: a region without a boundary of its own is shown as its Kreis
    for (const ars of Console.pageData("map-regions") || []) {
      const layer = await ConsoleMap.region(ars);
      if (layer) shapes.addLayer(layer);
    }
    if (shapes.getLayers().length) map.fitBounds(shapes.getBounds(), {maxZoom: 13});
  }).catch((err) => Console.flash(`Karte / map: ${err.message}`));
  update();
})();
