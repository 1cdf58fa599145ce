/* warnhub citizen pages: maps with the vendored Leaflet. Base layer: the configured tile server if any, the district
   boundary always (no request leaves the hub without a tile server). Warning areas in their severity colour; each
   opens its warning. The list on the page holds everything the map shows. */
"use strict";

const CitizenMap = (() => {
  const STROKE = {minor: "#8a7000"};

  function create(element, base) {
    const map = L.map(element, {zoomSnap: 0.25, scrollWheelZoom: false, attributionControl: Boolean(base.tiles),
                                zoomControl: false});
    L.control.zoom({zoomInTitle: Citizen._("Vergrößern"), zoomOutTitle: Citizen._("Verkleinern")}).addTo(map);
    map.on("popupopen", (e) => {  // Leaflet's own label is English
      const close = e.popup.getElement().querySelector(".leaflet-popup-close-button");
      if (close) close.setAttribute("aria-label", Citizen._("Schließen"));
    });
    if (base.tiles && base.tiles.url) {
      L.tileLayer(base.tiles.url, {attribution: base.tiles.attribution || "", maxZoom: 18}).addTo(map);
    }
    let bounds = null;
    if (base.district) {
      const district = L.geoJSON(base.district, {
        style: {color: "#222", weight: 2, fillColor: "#dde5ee", fillOpacity: base.tiles ? 0.05 : 0.7},
        interactive: false,
      }).addTo(map);
      bounds = district.getBounds();
    }
    for (const g of base.regions || []) {
      L.geoJSON(g, {style: {color: "#555", weight: 1, dashArray: "4 3", fill: false}, interactive: false}).addTo(map);
    }
    if (bounds) {
      map.fitBounds(bounds);
    } else {
      map.setView([53.0, 11.1], 9);
    }
    return map;
  }

  function popup(p) {
    const box = document.createElement("div");
    box.className = "map-popup";
    const word = document.createElement("p");
    const strong = document.createElement("strong");
    strong.textContent = p.word;
    word.append(strong);
    const link = document.createElement("a");
    link.href = p.url;
    link.textContent = p.headline;
    box.append(word, link);
    return box;
  }

  /* Draw warning areas (GeoJSON features from the page) into ``group`` (a new one if none). */
  function warnings(map, features, {fit = false, link = true, group = null} = {}) {
    const layers = group || L.featureGroup().addTo(map);
    layers.clearLayers();
    for (const f of [...(features || [])].reverse()) {  // the most severe drawn last: on top
      const p = f.properties;
      const colour = p.colour || "#b35300";
      const layer = L.geoJSON(f, {
        style: {color: STROKE[p.css] || colour, weight: 3, fillColor: colour, fillOpacity: 0.35,
                className: `warning-area sev-${p.css}`},
        interactive: link,
      });
      if (link) layer.bindPopup(() => popup(p));
      layers.addLayer(layer);
    }
    if (fit && layers.getLayers().length) map.fitBounds(layers.getBounds(), {maxZoom: 12, padding: [10, 10]});
    map.getContainer().dataset.warnings = String(layers.getLayers().length);
    return layers;
  }

  return {create, warnings};
})();
