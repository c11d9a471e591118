"""Configuration: defaults in code, overridden by BIOBANK_* environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    # SQLite under instance/ unless BIOBANK_DATABASE_URL says otherwise.
    "DATABASE_URL": None,
    "SECRET_KEY": None,
    # Keys the per-sub-study pseudonyms researchers see (biobank.consent.pseudonym); None:
    # derived from SECRET_KEY. Changing it renames every patient in every sub-study.
    "PSEUDONYM_KEY": None,
    # Aliquot barcodes: prefix + zero-padded sequence + ISO 7064 MOD 37,36 check character.
    "BARCODE_PREFIX": "IF",
    "BARCODE_DIGITS": 8,
    "SAMPLE_BARCODE_PREFIX": "SM",
    "SCAN_RECENT_EVENTS": 5,
    "PAGE_SIZE_MAX": 500,
    "SQL_ECHO": False,
    # Browser logins: the cookie is Secure unless BIOBANK_SESSION_COOKIE_SECURE=false
    # (plain-HTTP development); a login lasts SESSION_HOURS.
    "SESSION_COOKIE_SECURE": True,
    "SESSION_HOURS": 8,
    # Failed logins per username and address: LOGIN_FREE_FAILURES go unpunished, then the
    # wait doubles from LOGIN_DELAY_SECONDS up to LOGIN_DELAY_MAX_SECONDS; a quiet
    # LOGIN_FORGET_HOURS clears the count.
    "LOGIN_FREE_FAILURES": 5,
    "LOGIN_DELAY_SECONDS": 2,
    "LOGIN_DELAY_MAX_SECONDS": 900,
    "LOGIN_FORGET_HOURS": 24,
    # Reverse proxies in front of the app whose X-Forwarded-For/-Proto/-Host are believed
    # (werkzeug's ProxyFix): 0 when clients reach the app directly (the headers are then
    # ignored: anyone can send them), 1 behind deploy/'s nginx. Without it every client
    # behind a proxy shares the proxy's address, and the login throttle locks them together.
    "TRUSTED_PROXIES": 0,
    # Label printers: seconds to wait for a printer to take a job; the template folder
    # (default: labels/ beside the biobank package).
    "PRINTER_TIMEOUT": 5.0,
    # Where printers may be (biobank.labels.network): comma-separated CIDRs, and ports or
    # ranges. Loopback, link-local and unspecified addresses only when listed explicitly.
    "PRINTER_NETWORKS": "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16",
    "PRINTER_PORTS": "9100",
    "LABELS_DIR": None,
    # SQLite: how long a writer waits for the one write lock before the request is answered
    # 503 (retry).
    "SQLITE_BUSY_SECONDS": 30.0,
    # PostgreSQL: seconds to wait for a new connection; an unreachable server is then a 503
    # (retry), not a request hanging.
    "DATABASE_CONNECT_TIMEOUT": 5.0,
    # The largest request body, in bytes (413 beyond): JSON bodies are small; an upload
    # route declares its own limit (biobank.guards.body_limit).
    "MAX_BODY_BYTES": 1024 * 1024,
    # The biobank's calendar (biobank.clock): every "today" is the date in this IANA zone.
    "TIMEZONE": "Europe/Amsterdam",
    # FHIR (/fhir and `fhir export`): the URI under which this biobank's identifier systems
    # live (barcodes: <base>/sid/barcode); set it to a URI the biobank controls.
    "FHIR_SYSTEM_BASE": "https://biobank.interfant21.example.org/fhir",
    # MIABIS: the ids and names the BBMRI-ERIC Directory knows the biobank and collection by.
    "MIABIS_BIOBANK_ID": "interfant-21-biobank",
    "MIABIS_BIOBANK_NAME": "Interfant-21 residual-material biobank",
    "MIABIS_COLLECTION_ID": "interfant-21-residual-material",
    "MIABIS_COLLECTION_NAME": "Interfant-21: residual material of infants with KMT2A-r ALL",
    "MIABIS_COUNTRY": "NL",
    "MIABIS_JURISTIC_PERSON": "Princess Máxima Center for Pediatric Oncology",
}

# Values read from the environment are strings; these keys are converted.
_INT_KEYS = {
    "BARCODE_DIGITS",
    "SCAN_RECENT_EVENTS",
    "PAGE_SIZE_MAX",
    "SESSION_HOURS",
    "LOGIN_FREE_FAILURES",
    "LOGIN_DELAY_SECONDS",
    "LOGIN_DELAY_MAX_SECONDS",
    "LOGIN_FORGET_HOURS",
    "MAX_BODY_BYTES",
    "TRUSTED_PROXIES",
}
_BOOL_KEYS = {"SQL_ECHO", "SESSION_COOKIE_SECURE"}
_FLOAT_KEYS = {"PRINTER_TIMEOUT", "SQLITE_BUSY_SECONDS", "DATABASE_CONNECT_TIMEOUT"}


def from_environment(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Return the BIOBANK_* overrides found in the environment, typed."""
    environ = dict(os.environ if environ is None else environ)
    found: dict[str, Any] = {}
    for key in DEFAULTS:
        raw = environ.get(f"BIOBANK_{key}")
        if raw is None:
            continue
        if key in _INT_KEYS:
            found[key] = int(raw)
        elif key in _FLOAT_KEYS:
            found[key] = float(raw)
        elif key in _BOOL_KEYS:
            found[key] = raw.strip().lower() in {"1", "true", "yes", "on"}
        else:
            found[key] = raw
    return found


def default_database_url(instance_path: str) -> str:
    """The embedded default: a SQLite file in the app's instance folder."""
    Path(instance_path).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(instance_path) / 'biobank.db'}"


def instance_secret(instance_path: str) -> str:
    """Without BIOBANK_SECRET_KEY: a random key kept in instance/secret_key (mode 0600).

    Every worker on the machine reads the same file, so sessions survive restarts and work
    across gunicorn workers; several machines need BIOBANK_SECRET_KEY instead.
    """
    import os
    import secrets
    import time

    path = Path(instance_path) / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(100):  # another worker may be between creating and writing it
            key = path.read_text(encoding="ascii").strip()
            if key:
                return key
            time.sleep(0.01)
        raise RuntimeError(f"{path} is empty: delete it or set BIOBANK_SECRET_KEY") from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_hex(32))
    return path.read_text(encoding="ascii").strip()
