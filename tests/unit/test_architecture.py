"""The import contracts in pyproject.toml ([tool.importlinter]) hold: the flow's layers, ``hub`` never importing
``adapters``, sources and channels independent of each other. And the check can fail: a copy of the code with one
violation of each contract is refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.kits import paths

LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())",
        "--no-cache"]


def lint(repo: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(repo))
    return subprocess.run(LINT, cwd=repo, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_import_contracts_hold() -> None:
    done = lint(paths.REPO)
    assert done.returncode == 0, f"lint-imports failed:\n{done.stdout}\n{done.stderr}"
    assert "Contracts: 3 kept, 0 broken." in done.stdout, done.stdout


def _copy(tmp: Path) -> Path:
    repo = tmp / "repo"
    only_code = shutil.ignore_patterns("data", "static", "templates", "__pycache__", "*.gz", "*.zip")
    for package in ("hub", "adapters"):
        shutil.copytree(paths.REPO / package, repo / package, ignore=only_code)
    shutil.copy(paths.REPO / "pyproject.toml", repo / "pyproject.toml")
    return repo


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")


def test_each_contract_refuses_a_violation(tmp_path: Path) -> None:
    repo = _copy(tmp_path)
    assert lint(repo).returncode == 0  # the copy itself is clean: what follows is refused for the added lines
    _append(repo / "hub" / "deliver" / "outbox.py", "import adapters.channels.webhooks  # noqa: E402")
    _append(repo / "adapters" / "sources" / "feed.py", "import adapters.channels.boards  # noqa: E402")
    _append(repo / "hub" / "store" / "audit.py", "import hub.web.live  # noqa: E402")
    done = lint(repo)
    out = done.stdout
    assert done.returncode != 0, out
    assert "Contracts: 0 kept, 3 broken." in out, out
    assert "hub.deliver.outbox -> adapters.channels.webhooks" in out
    assert "adapters.sources.feed -> adapters.channels.boards" in out
    assert "hub.store.audit -> hub.web.live" in out
