/* warnhub console: the map (vendored Leaflet). Base layer: the configured tile server if any, otherwise the
   district boundary and the finer boundaries the hub knows (no request leaves the hub without a tile server). */
"use strict";

const ConsoleMap = (() => {
  const AREA = {color: "#b00020", weight: 3, fillOpacity: 0.25, interactive: false};
  const REGION = {color: "#0b4ea2", weight: 2, fillOpacity: 0.2, interactive: false};
  const DRAFT = {color: "#b00020", weight: 2, dashArray: "6 4", interactive: false};

  function create(element) {
    const map = L.map(element, {zoomSnap: 0.25});
    map.setView([53.0, 11.1], 10);
    return map;
  }

  async function base(map) {
    const layers = await Console.api("GET", `${Console.prefix}/api/map`);
    if (layers.tiles && layers.tiles.url) {
      L.tileLayer(layers.tiles.url, {attribution: layers.tiles.attribution || "", maxZoom: 19}).addTo(map);
    }
    if (layers.attribution && map.attributionControl) {  // the boundaries are BKG's (dl-de/by-2.0)
      map.attributionControl.addAttribution(layers.attribution);
    }
    if (layers.district) {
      const district = L.geoJSON(layers.district, {
        style: {color: "#222", weight: 2, fillColor: "#dde5ee", fillOpacity: layers.tiles ? 0.1 : 0.6},
        interactive: false,
      }).addTo(map);
      map.fitBounds(district.getBounds());
    }
    for (const f of layers.regions || []) {
      L.geoJSON(f, {style: {color: "#666", weight: 1, dashArray: "4 3", fill: false}, interactive: false}).addTo(map);
    }
    map.getContainer().dataset.ready = "1";  // the base is drawn and the view set
    return layers;
  }

  /* A console area feature (GeoJSON lon/lat; a Point with properties.radius_m is a circle) as a layer. */
  function feature(f) {
    if (f.geometry.type === "Point") {
      const [lon, lat] = f.geometry.coordinates;
      return L.circle([lat, lon], {radius: f.properties.radius_m, ...AREA});
    }
    return L.geoJSON(f, {style: AREA, interactive: false});
  }

  async function region(ars) {
    try {
      return L.geoJSON(await Console.api("GET", `${Console.prefix}/api/regions/${ars}/shape`),
                       {style: REGION, interactive: false});
    } catch (err) {
      return null;  // no boundary known (a Gemeinde without [geo] boundaries): the key alone decides
    }
  }

  return {create, base, feature, region, AREA, REGION, DRAFT};
})();
