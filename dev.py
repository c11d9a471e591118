#!/usr/bin/env python3
"""Development launcher (standard library only).

    python3 dev.py serve            set up .venv, migrate, load the demo data, serve on :5000
    python3 dev.py test [ARGS...]   set up .venv, run pytest with ARGS

The virtual environment lives in .venv; the project is reinstalled into it only when
pyproject.toml has changed since the last install. Nothing here needs activation: the
venv's programs are run by path.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
FLASK = BIN / ("flask.exe" if os.name == "nt" else "flask")
STAMP = VENV / ".biobank-install-stamp"
HOST, PORT = "127.0.0.1", 5000
# The demo printer listens nowhere at 127.0.0.1:9 (the error path): the printer rule must
# list that address and port (biobank/labels/demo.py says the same).
DEMO_PRINTER_RULE = {
    "BIOBANK_PRINTER_NETWORKS": "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,127.0.0.1/32",
    "BIOBANK_PRINTER_PORTS": "9100,9",
}


def say(message: str) -> None:
    """Print a progress line, flushed so it shows before a child's output."""
    print(f"dev.py: {message}", flush=True)


def run(*args: object) -> None:
    """Run a command in the repository root; stop with its exit code if it fails."""
    code = subprocess.call([str(a) for a in args], cwd=ROOT)
    if code != 0:
        say(f"failed (exit {code}): {' '.join(str(a) for a in args)}")
        sys.exit(code)


def _pyproject_digest() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_venv() -> None:
    """Create .venv if missing; (re)install the project when pyproject.toml changed."""
    if not PYTHON.exists():
        say(f"creating {VENV.relative_to(ROOT)}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = _pyproject_digest()
    if STAMP.exists() and STAMP.read_text(encoding="utf-8").strip() == digest:
        return
    say("installing the project and its test tools into .venv (pip install -e .[test])")
    run(PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", ".[test]")
    STAMP.write_text(digest + "\n", encoding="utf-8")


def serve() -> None:
    """Migrate the database, load the demo data and serve the app on 127.0.0.1:5000."""
    ensure_venv()
    for name, value in DEMO_PRINTER_RULE.items():
        os.environ.setdefault(name, value)
    where = os.environ.get("BIOBANK_DATABASE_URL") or "SQLite in instance/biobank.db"
    say(f"database: {where}")
    run(FLASK, "--app", "wsgi", "db", "upgrade")
    run(FLASK, "--app", "wsgi", "demo", "load")
    say(
        f"serving; open http://{HOST}:{PORT}/ (API docs: http://{HOST}:{PORT}/api/docs); "
        "Ctrl+C stops"
    )
    args = [str(FLASK), "--app", "wsgi", "run", "--host", HOST, "--port", str(PORT)]
    os.chdir(ROOT)
    if os.name == "nt":
        sys.exit(subprocess.call(args))
    os.execv(args[0], args)  # the server takes this process over: signals reach it directly


def test(pytest_args: list[str]) -> None:
    """Run the test suite in .venv, exiting with pytest's code."""
    ensure_venv()
    sys.exit(subprocess.call([str(PYTHON), "-m", "pytest", *pytest_args], cwd=ROOT))


USAGE = __doc__.split("\n\n")[1]


def main(argv: list[str]) -> None:
    """Dispatch the subcommand."""
    if sys.version_info < (3, 11):
        sys.exit("dev.py: Python 3.11 or newer is needed")
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print("usage:\n" + USAGE)
        sys.exit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command == "serve" and not rest:
        serve()
    elif command == "test":
        test(rest)
    else:
        print("usage:\n" + USAGE, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
