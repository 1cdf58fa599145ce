"""Console templates whose review dates follow the test's clock, not the calendar.

The shipped templates in rules/templates/compose/ carry the date a person last checked them; a year later they are
due for review, which ``warnhub check`` and the console say. A test that composes from copies of them must not
start failing on that day: :func:`review_relative` rewrites the copies' ``reviewed = YYYY-MM-DD`` lines to a day
counted back from today in German local time (the day the hub judges by, hub.rules.templates).
"""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hub.decide.rules.templates import COMPOSE_FOLDER

BERLIN = ZoneInfo("Europe/Berlin")
_REVIEWED = re.compile(r"^reviewed = \d{4}-\d\d-\d\d$", re.M)


def today() -> date:
    """Today in Lüchow, as the hub reckons review dates."""
    return datetime.now(UTC).astimezone(BERLIN).date()


def review_relative(rules: Path, days_ago: int = 10, *, only: str | None = None) -> date:
    """Set ``reviewed`` of the console templates of the rules folder ``rules`` (a copy) to ``days_ago`` days
    before today (only the template ``only``, if given); answers that date."""
    day = today() - timedelta(days=days_ago)
    folder = rules / COMPOSE_FOLDER
    paths = [folder / f"{only}.toml"] if only else sorted(folder.glob("*.toml"))
    for path in paths:
        text = path.read_text(encoding="utf-8")
        new, count = _REVIEWED.subn(f"reviewed = {day.isoformat()}", text)
        if count != 1:
            raise AssertionError(f"{path}: expected one 'reviewed = YYYY-MM-DD' line, found {count}")
        path.write_text(new, encoding="utf-8")
    return day


def reviewed_of(rules: Path, name: str) -> date:
    """The ``reviewed`` date of one console template of ``rules``."""
    with (rules / COMPOSE_FOLDER / f"{name}.toml").open("rb") as f:
        value = tomllib.load(f)["reviewed"]
    assert isinstance(value, date)
    return value
