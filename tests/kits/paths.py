"""Where the tests find the project and their data, wherever a test module sits."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
"""The tests folder (data/, screenshots/)."""
REPO = TESTS.parent
DATA = TESTS / "data"
