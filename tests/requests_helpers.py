"""Fixtures shared by the request tests (imported by name into each tests/test_requests*.py):
consented, stored tubes and a request taken through its lifecycle by the API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from consent_helpers import ACTOR, NUMBERING, days_ago, give, studies  # noqa: F401
from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank.custody.models import CustodyEvent
from biobank.samples import service as samples
from biobank.samples.models import Aliquot
from biobank.storage import naming, operations
from biobank.storage import service as storage
from biobank.storage.models import Position

SHIPMENT = {
    "courier": "World Courier",
    "tracking_number": "WC123456789",
    "condition": "dry_ice",
    "recipient_name": "Dr. K. Researcher",
    "recipient_institution": "ALL lab, Kiel",
    "recipient_address": "Arnold-Heller-Str. 3, 24105 Kiel, DE",
}


@pytest.fixture
def researcher(as_role: Callable[..., Any], studies: SimpleNamespace) -> Any:  # noqa: F811
    """A researcher of sub-study DEMO (the sub-studies exist)."""
    return as_role("researcher", substudies=["DEMO"])


@pytest.fixture
def freezer(session: Session) -> SimpleNamespace:
    """NL-PMC / F-80-01 / Rack 2 and Rack 10, a 9×9 box in each (Rack 10 sorts after 2)."""
    storage.load_default_box_types(session, ACTOR)
    made = storage.create_freezer(
        session,
        ACTOR,
        {"site": "NL-PMC", "name": "F-80-01", "freezer_type": "mechanical-80"},
        NUMBERING,
    )
    racks = [
        storage.create_container(
            session, ACTOR, {"kind": "rack", "name": name, "parent": made.barcode}, NUMBERING
        )
        for name in ("Rack 10", "Rack 2")
    ]
    boxes = [
        storage.create_box(
            session, ACTOR, {"box_type": "9X9", "parent": rack.barcode, "name": "Plasma"}, NUMBERING
        )
        for rack in racks
    ]
    session.commit()
    return SimpleNamespace(freezer=made, late=boxes[0], early=boxes[1])


def store(session: Session, tubes: list[Aliquot], box: Any) -> None:
    """Put tubes in the next free positions of a box."""
    taken = {
        (p.row_no, p.col_no)
        for p in session.scalars(select(Position).where(Position.box_id == box.id))
    }
    places, _ = naming.free_positions(9, 9, taken, len(tubes))
    operations.relocate(
        session,
        ACTOR,
        [
            operations.Target(tube, box, row, col)
            for (row, col), tube in zip(places, tubes, strict=True)
        ],
    )
    session.commit()


@pytest.fixture
def donor(
    session: Session,
    make_patient: Callable[..., Any],
    make_sample: Callable[..., Any],
    give: Callable[..., Any],
    freezer: SimpleNamespace,
) -> Callable[..., Any]:  # noqa: F811
    """``donor({"DX": 3, "EOI": 2}, "DEMO")``: a patient with plasma tubes per timepoint,
    storage and those sub-studies consented, the tubes stored (in the late box if asked)."""

    def make(
        per_timepoint: dict[str, int] | None = None,
        *substudies: str,
        box: str = "early",
        volume: str = "0.5",
        **patient: Any,
    ) -> SimpleNamespace:
        person = make_patient(**patient)
        tubes: dict[str, list[Aliquot]] = {}
        for timepoint, count in (per_timepoint or {"DX": 2}).items():
            collected = dt.datetime.combine(person.diagnosis_date, dt.time(9), dt.UTC) + (
                dt.timedelta(days=33) if timepoint != "DX" else dt.timedelta()
            )
            sample = make_sample(
                person,
                timepoint=timepoint,
                collected_at=collected,
                received_at=collected + dt.timedelta(hours=2),
            )
            tubes[timepoint] = samples.split(
                session,
                ACTOR,
                sample,
                [{"aliquot_type": "PLASMA", "volume_ml": Decimal(volume)} for _ in range(count)],
                NUMBERING,
            )
        session.commit()
        give(person, "storage", days_ago(150))
        for code in substudies:
            give(person, code, days_ago(150))
        every = [t for group in tubes.values() for t in group]
        store(session, every, getattr(freezer, box))
        return SimpleNamespace(
            patient=person,
            study_id=person.study_id,
            tubes=every,
            by_timepoint=tubes,
            barcodes=[t.barcode for t in every],
        )

    return make


def criteria(**overrides: Any) -> dict[str, Any]:
    """Request criteria: one DX plasma tube from each of two patients, unless overridden."""
    return {
        "materials": ["BM"],
        "aliquot_types": ["PLASMA"],
        "timepoints": ["DX"],
        "aliquots_per_patient_timepoint": 1,
        "patients": 2,
        **overrides,
    }


def new_request(client: Any, submit: bool = True, **overrides: Any) -> str:
    """Create (and submit) a request through the API; returns its number."""
    body = {
        "substudy": "DEMO",
        "title": "Plasma for cfDNA method development",
        "purpose": "Compare two cfDNA extraction kits on infant plasma.",
        "criteria": criteria(**overrides),
        "submit": submit,
    }
    response = client.post("/api/v1/requests", json=body)
    assert response.status_code == 201, response.json
    return response.json["number"]


def allocated(researcher: Any, manager: Any, **overrides: Any) -> str:
    """A request submitted, approved and allocated; returns its number."""
    number = new_request(researcher, **overrides)
    assert manager.post(f"/api/v1/requests/{number}/approve", json={}).status_code == 200
    response = manager.post(f"/api/v1/requests/{number}/allocate", json={})
    assert response.status_code == 200, response.json
    return number


def held(client: Any, number: str) -> list[str]:
    """Barcodes of the tubes a request holds (allocated or picked), from its pick list."""
    return [t["barcode"] for t in client.get(f"/api/v1/requests/{number}/pick-list").json["tubes"]]


def pick_all(tech: Any, number: str) -> list[str]:
    """Scan every tube of the pick list; returns their barcodes."""
    codes = held(tech, number)
    for code in codes:
        response = tech.post(f"/api/v1/requests/{number}/pick", json={"barcode": code})
        assert response.status_code == 200, response.json
    return codes


def shipped(researcher: Any, manager: Any, tech: Any, **overrides: Any) -> tuple[str, list[str]]:
    """A request allocated, picked and shipped; returns its number and barcodes."""
    number = allocated(researcher, manager, **overrides)
    codes = pick_all(tech, number)
    response = manager.post(f"/api/v1/requests/{number}/ship", json=SHIPMENT)
    assert response.status_code == 200, response.json
    return number, codes


def statuses(session: Session, codes: list[str]) -> dict[str, str]:
    """Each barcode's aliquot status."""
    return dict(
        session.execute(
            select(Aliquot.barcode, Aliquot.status).where(Aliquot.barcode.in_(codes))
        ).all()
    )


def event_types(session: Session, code: str) -> list[str]:
    """A tube's custody event types, oldest first."""
    return list(
        session.scalars(
            select(CustodyEvent.event_type)
            .join(Aliquot, Aliquot.id == CustodyEvent.aliquot_id)
            .where(Aliquot.barcode == code)
            .order_by(CustodyEvent.id)
        )
    )
