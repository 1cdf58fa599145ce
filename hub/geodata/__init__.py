"""Bundled geodata for hub.geo (see README.md); ``python -m hub.geodata.build`` rebuilds it from the corpus."""
