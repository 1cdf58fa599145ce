"""CI runs what the README tells a developer to run, and that command type-checks ``hub/`` and ``adapters/`` with
mypy (settings in pyproject's ``[tool.mypy]``) before the tests."""

from __future__ import annotations

import re

from tests.kits import paths


def readme_test_command() -> str:
    """The one command in the fenced block after README's "Run the tests"."""
    text = (paths.REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(r"\*\*Run the tests\*\*[^\n]*\n+```sh\n(.*?)\n```", text, re.S)
    assert found, "README.md has no fenced sh block after **Run the tests**"
    lines = [line for line in found.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (paths.REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert readme_test_command() in ci


def test_the_test_command_type_checks_hub_and_adapters_before_the_tests() -> None:
    steps = [step.strip() for step in readme_test_command().split("&&")]
    assert "python -m mypy hub adapters" in steps, steps
    assert steps.index("python -m mypy hub adapters") < steps.index("python -m pytest -q"), steps
