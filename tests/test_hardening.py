"""Hardening: the audit trail is append-only in the database (both engines), the SQLite
file is its owner's alone, and pages run no inline script."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from biobank import SECURITY_HEADERS, create_app
from biobank.custody.models import AuditRecord
from biobank.custody.service import record_audit

TEMPLATES = Path(__file__).resolve().parent.parent / "biobank" / "templates"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_record SET actor = 'someone-else' WHERE id = :id",
        "UPDATE audit_record SET new_values = NULL WHERE id = :id",
        "DELETE FROM audit_record WHERE id = :id",
        "DELETE FROM audit_record",
    ],
)
def test_the_database_refuses_to_rewrite_or_erase_an_audit_record(session, statement):
    """UPDATE and DELETE on audit_record are refused by triggers on SQLite and PostgreSQL;
    the record stays as written."""
    record_audit(
        session,
        "admin-1",
        "user",
        "tech-9",
        "role_changed",
        old_values={"role": "technician"},
        new_values={"role": "manager"},
    )
    session.flush()
    record = session.scalars(select(AuditRecord).order_by(AuditRecord.id.desc())).first()
    with pytest.raises(DBAPIError, match="append-only"):
        with session.begin_nested():
            session.execute(text(statement), {"id": record.id})
    session.expire_all()
    again = session.get(AuditRecord, record.id)
    assert (again.actor, again.new_values) == ("admin-1", {"role": "manager"})


def test_the_sqlite_file_is_created_readable_by_its_owner_only(tmp_path):
    """A new SQLite database (and its WAL and shared-memory files) is created 0600."""
    path = tmp_path / "fresh.db"
    app = create_app({"DATABASE_URL": f"sqlite:///{path}", "TESTING": True})
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert app.test_client().get("/health").status_code == 200
        files = [
            path,
            *(p for p in (tmp_path / "fresh.db-wal", tmp_path / "fresh.db-shm") if p.exists()),
        ]
        modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    app.extensions["biobank.engine"].dispose()
    assert modes["fresh.db"] == "0o600"
    assert set(modes.values()) == {"0o600"}, modes


def test_an_existing_sqlite_file_keeps_its_mode(tmp_path):
    """A database file that exists is opened as it is (its mode is the operator's)."""
    path = tmp_path / "kept.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    app = create_app({"DATABASE_URL": f"sqlite:///{path}", "TESTING": True})
    with app.app_context():
        assert app.test_client().get("/health").status_code == 200
    app.extensions["biobank.engine"].dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_the_content_security_policy_runs_no_inline_script(client):
    """script-src is 'self' alone: no 'unsafe-inline', no 'unsafe-eval'."""
    policy = dict(SECURITY_HEADERS)["Content-Security-Policy"]
    assert policy == client.get("/").headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert "unsafe" not in directives["script-src"]
    assert directives["object-src"] == "'none'"


def test_no_template_has_inline_script_or_event_handlers():
    """Every <script> has a src, and no element carries an on...= handler or a
    javascript: URL (they would not run under the policy)."""
    inline = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
    handler = re.compile(r"\son[a-z]+\s*=|javascript:", re.IGNORECASE)
    found = [
        f"{path.relative_to(TEMPLATES)}: {match.group()}"
        for path in TEMPLATES.rglob("*.html")
        for match in [
            *inline.finditer(path.read_text(encoding="utf-8")),
            *handler.finditer(path.read_text(encoding="utf-8")),
        ]
    ]
    assert found == []


def test_the_api_docs_start_from_a_file(client):
    """/api/docs: Swagger UI started by a script file of ours, the document's URL as data."""
    page = client.get("/api/docs").get_data(as_text=True)
    assert 'src="/static/swagger-start.js"' in page
    assert 'data-spec-url="/api/openapi.json"' in page
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    script = client.get("/static/swagger-start.js")
    script.close()
    assert script.status_code == 200
