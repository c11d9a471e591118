"""Fixtures shared by the page tests (imported by name into each tests/test_web*.py):
browsers logged in by role, and a small lab with a freezer, boxes and consented tubes."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from biobank import clock
from biobank.auth import service as auth
from biobank.consent import service as consent
from biobank.samples import service as samples
from biobank.storage import operations
from biobank.storage import service as storage

ACTOR = "web-fixture"
PASSWORD = "a long enough passphrase"
NUMBERING = samples.Numbering()
FORM = "ICF-WEB-1"
FRAGMENT = {"X-Fragment": "1"}
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def csrf_of(page: Any) -> str:
    """The CSRF token a rendered page carries (its meta tag)."""
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.get_data(as_text=True))
    assert match, "no CSRF token on the page"
    return match.group(1)


class Browser:
    """A test client logged in through the login form, like a person at a browser."""

    def __init__(self, client: FlaskClient, username: str) -> None:
        self.client = client
        self.username = username
        self.csrf = csrf_of(client.get("/", headers=HTML))

    def get(self, url: str, **kw: Any):  # type: ignore[no-untyped-def]
        return self.client.get(url, headers={**HTML, **kw.pop("headers", {})}, **kw)

    def post(self, url: str, data: dict[str, Any] | None = None, **kw: Any):  # type: ignore[no-untyped-def]
        return self.client.post(
            url,
            data={"csrf_token": self.csrf, **(data or {})},
            headers={**HTML, **kw.pop("headers", {})},
            **kw,
        )


@pytest.fixture
def login(app: Flask, session: Session) -> Callable[..., Browser]:
    """``login("technician")`` → a browser logged in as a new user of that role."""
    counter = iter(range(1, 1000))

    def make(role: str, substudies: list[str] | None = None) -> Browser:
        name = f"page-{role}-{next(counter)}"
        auth.create_user(
            session,
            name,
            role,
            password=PASSWORD,
            full_name=f"Page {role}",
            substudies=substudies or (["DEMO"] if role == "researcher" else []),
        )
        session.commit()
        client = app.test_client()
        form = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        answer = client.post(
            "/login", data={"username": name, "password": PASSWORD, "csrf_token": token}
        )
        assert answer.status_code == 302, answer.get_data(as_text=True)
        return Browser(client, name)

    return make


@pytest.fixture
def lab(
    session: Session,
    make_patient: Callable[..., Any],
    make_sample: Callable[..., Any],
    make_aliquots: Callable[..., Any],
) -> SimpleNamespace:
    """NL-PMC / F-80-01 / Rack A with two 9×9 boxes; a patient with storage and DEMO consent
    and four tubes, the first stored at A1 of the first box; a patient without consent."""
    storage.load_default_box_types(session, ACTOR)
    freezer = storage.create_freezer(
        session,
        ACTOR,
        {"site": "NL-PMC", "name": "F-80-01", "freezer_type": "mechanical-80"},
        NUMBERING,
    )
    rack = storage.create_container(
        session, ACTOR, {"kind": "rack", "name": "Rack A", "parent": freezer.barcode}, NUMBERING
    )
    box = storage.create_box(
        session, ACTOR, {"box_type": "9X9", "parent": rack.barcode, "name": "Plasma 01"}, NUMBERING
    )
    spare = storage.create_box(
        session, ACTOR, {"box_type": "9X9", "parent": rack.barcode, "name": "Spare"}, NUMBERING
    )
    consent.create_substudy(
        session,
        ACTOR,
        {
            "code": "DEMO",
            "title": "Demo sub-study",
            "principal_investigator": "Dr. Demo",
            "open": True,
        },
    )
    consent.create_form(
        session,
        ACTOR,
        {
            "code": FORM,
            "title": "Biobank consent",
            "version": "1",
            "language": "en",
            "covers": ["storage", "data", "DEMO"],
        },
    )
    patient = make_patient()
    tubes = make_aliquots(4, parent=make_sample(patient), volume="0.2")
    signed = clock.today() - dt.timedelta(days=60)
    for component in ("storage", "DEMO"):
        consent.record_consent(
            session,
            ACTOR,
            patient,
            {
                "component": component,
                "decision": "given",
                "signed_on": signed,
                "form_version": FORM,
                "signed_by": "mother",
            },
        )
    operations.place(session, ACTOR, tubes[0], box, "A1")
    stranger = make_patient()
    unconsented = make_aliquots(1, parent=make_sample(stranger), volume="0.2")[0]
    session.commit()
    return SimpleNamespace(
        freezer=freezer,
        rack=rack,
        box=box,
        spare=spare,
        patient=patient,
        tubes=tubes,
        stranger=stranger,
        unconsented=unconsented,
    )
