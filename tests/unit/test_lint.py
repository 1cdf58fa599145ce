"""ruff keeps the code clean (settings in pyproject.toml, [tool.ruff]): a finding fails the suite, so CI runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.kits import paths

TREES = ("hub", "adapters", "tests", "bench", "scripts")


def ruff(*args: str, cwd: Path = paths.REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=120, check=False)


def test_ruff_finds_nothing() -> None:
    done = ruff(*TREES)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_would_catch_a_finding(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text((paths.REPO / "pyproject.toml").read_text(encoding="utf-8"))
    (tmp_path / "bad.py").write_text("import os\n")  # F401: imported but unused
    done = ruff("bad.py", cwd=tmp_path)
    assert done.returncode == 1 and "F401" in done.stdout, done.stdout + done.stderr
