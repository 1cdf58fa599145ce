"""Regions and areas: Germany's ARS hierarchy, DWD warncells, Kreis boundaries, and resolving CAP areas against them.

* :mod:`hub.geo.registry`: :class:`~hub.geo.registry.Registry`, every Land, Regierungsbezirk, Kreis,
  Gemeindeverband and Gemeinde by its 12-digit Amtlicher Regionalschlüssel (ARS = Land 2 + Bezirk 1 + Kreis 2 +
  Verband 4 + Gemeinde 3 digits), from the Destatis list (2025-07-31), with parent and child lookups, and the DWD
  warncell scheme mapped onto it (:meth:`~hub.geo.registry.Registry.warncell`).
* :mod:`hub.geo.geography`: :class:`~hub.geo.geography.Geography`, the registry plus boundaries. Bundled are the 402
  DWD Kreis warncells (all Kreise; 32 kreisfreie Städte share one cell with the Landkreis around them, see
  :meth:`~hub.geo.geography.Geography.shared_boundary`), 23 lake cells, and BKG's Gemeinden, Gemeindeverbände and
  Kreis outlines (:mod:`hub.geo.boundaries`: :class:`~hub.geo.boundaries.BundledBoundaries`, read per Kreis when
  needed; attribution :data:`~hub.geo.boundaries.BOUNDARY_ATTRIBUTION`). Operators add finer GeoJSON per ARS with
  :func:`~hub.geo.boundaries.load_extra_boundaries` and :meth:`~hub.geo.geography.Geography.with_boundaries`;
  theirs replace the bundled boundary of the same region.
* :mod:`hub.geo.resolve`: :func:`~hub.geo.resolve.resolve`, what a CAP alert's areas cover (Kreise, and the
  Gemeinden codes name or the areas touch near the district), whether they touch the district, and which share of
  the alert's area lies outside it; :meth:`~hub.geo.geography.Geography.concerns`: whether a warning concerns a
  region (a place, a widget, a feed).
* :mod:`hub.geo.projection`: geometry is measured on the WGS 84 ellipsoid: shapes are projected with an equal-area
  Lambert azimuthal projection (authalic sphere, centre 52° N 10° E, as EPSG:3035), so planar areas in metres² are
  true areas. CAP circles are geodesic circles (Vincenty's direct formula), not circles in degrees.

Data files live in ``hub/geo/data/`` (see its README for provenance and attribution). This package re-exports
nothing: import from the submodule that defines a name.
"""
