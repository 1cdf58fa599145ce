"""Bundled geodata for hub.geo (see README.md); ``python -m hub.geo.data.build`` rebuilds it from the corpus."""
