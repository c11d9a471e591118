"""The code passes the linter (rules in pyproject.toml), so a finding shows in the suite
that every change runs, not only in CI's lint step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing():
    """ruff check over the package, the tests, the benchmarks and the migrations is clean."""
    found = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--output-format",
            "concise",
            "biobank",
            "tests",
            "bench",
            "migrations",
            "dev.py",
            "wsgi.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode == 0, found.stdout + found.stderr
