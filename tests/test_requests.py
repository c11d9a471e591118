"""Sample requests, end to end: a researcher asks, a manager approves and allocates, a
technician picks, the manager ships, the researcher receives, uses, returns and closes."""

from __future__ import annotations

from requests_helpers import (  # noqa: F401
    SHIPMENT,
    allocated,
    donor,
    event_types,
    freezer,
    give,
    held,
    new_request,
    pick_all,
    researcher,
    statuses,
    studies,
)
from sqlalchemy import select

from biobank.consent.models import ConsentEntry, ReleaseJustification
from biobank.custody.service import audit_trail
from biobank.requests.models import RequestAliquot
from biobank.samples.models import Aliquot
from biobank.storage.models import Container, Position


def test_the_whole_lifecycle_end_to_end(researcher, manager, tech, donor, session):
    """Draft → submitted → approved → allocated → picking → shipped → received → closed."""
    patients = [donor({"DX": 2, "EOI": 1}, "DEMO") for _ in range(3)]
    draft = researcher.post(
        "/api/v1/requests",
        json={
            "substudy": "DEMO",
            "title": "Plasma for cfDNA",
            "purpose": "Kit comparison",
            "criteria": {
                "materials": ["BM"],
                "timepoints": ["DX"],
                "patients": 2,
                "aliquots_per_patient_timepoint": 2,
            },
        },
    )
    assert draft.status_code == 201 and draft.json["state"] == "draft"
    number = draft.json["number"]
    assert researcher.post(f"/api/v1/requests/{number}/submit").json["state"] == "submitted"
    seen = manager.get(f"/api/v1/requests/{number}").json
    assert seen["matching_now"] == {"aliquots": 6, "patients": 3}
    approved = manager.post(f"/api/v1/requests/{number}/approve", json={"note": "fine"})
    assert approved.json["state"] == "approved" and approved.json["decided_by"] == manager.username

    allocated_ = manager.post(f"/api/v1/requests/{number}/allocate", json={}).json
    assert allocated_["state"] == "allocated"
    assert allocated_["allocation"] == {
        "patients_requested": 2,
        "patients_found": 2,
        "aliquots": 4,
        "partial": False,
    }
    codes = held(tech, number)
    assert len(codes) == 4 and set(statuses(session, codes).values()) == {"reserved"}
    assert len({t["study_id"] for t in allocated_["tubes"]}) == 2

    picked = [tech.post(f"/api/v1/requests/{number}/pick", json={"barcode": c}).json for c in codes]
    assert [p["remaining"] for p in picked] == [3, 2, 1, 0] and picked[0]["state"] == "picking"
    assert picked[0]["tube"]["location"]["taken_out_since"] is not None

    shipped = manager.post(f"/api/v1/requests/{number}/ship", json=SHIPMENT)
    assert shipped.status_code == 200
    assert shipped.json == {"number": number, "state": "shipped", "shipped": 4, "dropped": {}}
    assert set(statuses(session, codes).values()) == {"shipped"}
    ids = [a.id for a in session.scalars(select(Aliquot).where(Aliquot.barcode.in_(codes)))]
    assert session.scalars(select(Position).where(Position.aliquot_id.in_(ids))).all() == []

    received = researcher.post(
        f"/api/v1/requests/{number}/receive",
        json={
            "note": "dry ice left",
            "discrepancies": [{"barcode": codes[0], "note": "cap loose"}],
        },
    )
    assert received.status_code == 200 and received.json["state"] == "received"
    assert received.json["shipment"]["received_by"] == researcher.username
    assert {t["barcode"]: t["discrepancy"] for t in received.json["tubes"]}[codes[0]] == "cap loose"

    assert researcher.post(f"/api/v1/requests/{number}/close").status_code == 409
    used = researcher.post(
        f"/api/v1/requests/{number}/consumed", json={"barcodes": codes[:3], "note": "extracted"}
    )
    assert used.json["counts"] == {"received": 1, "consumed": 3}
    back = tech.post(
        f"/api/v1/requests/{number}/returned",
        json={"barcode": codes[3], "box": freezer_box(session, patients[0]), "position": "I9"},
    )
    assert back.status_code == 200, back.json
    closed = researcher.post(f"/api/v1/requests/{number}/close")
    assert closed.json["state"] == "closed" and closed.json["counts"] == {
        "consumed": 3,
        "returned": 1,
    }
    assert statuses(session, codes) == {
        **dict.fromkeys(codes[:3], "consumed"),
        codes[3]: "available",
    }
    history = event_types(session, codes[3])
    for kind in (
        "reserved",
        "taken_out",
        "picked",
        "shipped",
        "unstored",
        "received",
        "returned",
        "stored",
    ):
        assert kind in history, (kind, history)
    assert history.index("shipped") < history.index("received") < history.index("returned")
    steps = [r.action for r in audit_trail(session, "request", number)]
    assert steps == [
        "created",
        "submitted",
        "approved",
        "allocated",
        "allocation",
        "picking",
        "shipped",
        "received",
        "closed",
    ]


def freezer_box(session, world) -> str:  # type: ignore[no-untyped-def]
    """The barcode of the box a donor's tubes were stored in."""
    position = session.scalar(select(Position).where(Position.aliquot_id == world.tubes[-1].id))
    return session.get(Container, position.box_id).barcode


def test_each_shipped_tube_stores_the_consent_entries_that_allowed_it(
    researcher, manager, tech, donor, session
):
    """Release justification: per tube, the storage and sub-study consent entries in force."""
    world = donor({"DX": 1}, "DEMO")
    donor({"DX": 1}, "DEMO")
    number = allocated(researcher, manager)
    pick_all(tech, number)
    manager.post(f"/api/v1/requests/{number}/ship", json=SHIPMENT)
    rows = session.scalars(
        select(ReleaseJustification).where(ReleaseJustification.release_reference == number)
    ).all()
    assert len(rows) == 2 and {r.release_kind for r in rows} == {"request"}
    mine = next(r for r in rows if r.aliquot_id == world.tubes[0].id)
    entries = {
        e.id: e
        for e in session.scalars(
            select(ConsentEntry).where(ConsentEntry.patient_id == world.patient.id)
        )
    }
    assert entries[mine.storage_consent_id].component == "storage"
    assert entries[mine.substudy_consent_id].substudy.code == "DEMO"


def test_researchers_see_only_their_substudies_requests(as_role, researcher, manager, donor):
    """Another sub-study's request is a 404, never a 403, and is missing from the list."""
    donor({"DX": 1}, "DEMO")
    number = new_request(researcher)
    outsider = as_role("researcher", substudies=["MRD-NGS"])
    for method, url in (
        ("get", f"/api/v1/requests/{number}"),
        ("post", f"/api/v1/requests/{number}/cancel"),
        ("get", f"/api/v1/requests/{number}/manifest.csv"),
        ("get", "/api/v1/requests/availability?substudy=DEMO"),
    ):
        body = {"json": {"reason": "x"}} if method == "post" else {}
        assert getattr(outsider, method)(url, **body).status_code == 404, url
    assert outsider.get("/api/v1/requests").json == []
    assert [r["number"] for r in researcher.get("/api/v1/requests").json] == [number]
    assert [r["number"] for r in manager.get("/api/v1/requests").json] == [number]


def test_researchers_get_the_request_without_internal_fields(researcher, manager, tech, donor):
    """Who in the biobank decided, allocated and picked, and what else matches, is staff-only."""
    donor({"DX": 1}, "DEMO")
    donor({"DX": 1}, "DEMO")
    number = allocated(researcher, manager)
    pick_all(tech, number)
    mine = researcher.get(f"/api/v1/requests/{number}").json
    staff = manager.get(f"/api/v1/requests/{number}").json
    for key in ("decided_by", "allocated_by", "allocation", "matching_now"):
        assert key in staff and key not in mine, key
    assert "picked_by" in staff["tubes"][0] and "picked_by" not in mine["tubes"][0]
    assert {"barcode", "patient", "timepoint", "state"} <= set(mine["tubes"][0])
    assert "study_id" not in mine["tubes"][0] and "study_id" in staff["tubes"][0]
    for forbidden in ("accession_number", "notes", "signed_by", "location"):
        assert forbidden not in str(mine), forbidden


def test_a_manager_never_approves_their_own_request(manager, as_role, donor):
    """A manager may file a request for a sub-study; another manager must decide it."""
    donor({"DX": 1}, "DEMO")
    number = new_request(manager)
    own = manager.post(f"/api/v1/requests/{number}/approve", json={})
    assert own.status_code == 403 and "another manager" in own.json["message"]
    assert (
        manager.post(f"/api/v1/requests/{number}/reject", json={"reason": "mine"}).status_code
        == 403
    )
    other = as_role("manager")
    assert other.post(f"/api/v1/requests/{number}/approve", json={}).status_code == 200


def test_a_rejection_needs_a_reason_and_ends_the_request(researcher, manager, donor):
    """Rejected with a reason the researcher reads; nothing can follow."""
    number = new_request(researcher)
    assert manager.post(f"/api/v1/requests/{number}/reject", json={}).status_code == 422
    rejected = manager.post(
        f"/api/v1/requests/{number}/reject", json={"reason": "ethics approval expired"}
    )
    assert rejected.json["state"] == "rejected"
    assert researcher.get(f"/api/v1/requests/{number}").json["decision_reason"] == (
        "ethics approval expired"
    )
    late = manager.post(f"/api/v1/requests/{number}/approve", json={})
    assert late.status_code == 409 and "rejected" in late.json["message"]


def test_the_manager_adjusts_the_allocation_when_approving(researcher, manager, donor):
    """Approve with fewer patients than asked: allocation takes the approved number."""
    for _ in range(3):
        donor({"DX": 2}, "DEMO")
    number = new_request(researcher, patients=3)
    approved = manager.post(
        f"/api/v1/requests/{number}/approve",
        json={"adjust": {"patients": 1}, "note": "pilot first"},
    )
    assert approved.json["approved_criteria"]["patients"] == 1
    assert approved.json["criteria"]["patients"] == 3
    done = manager.post(f"/api/v1/requests/{number}/allocate", json={}).json
    assert done["allocation"]["patients_found"] == 1 and len(done["tubes"]) == 1


def test_allocating_more_than_is_available_says_how_many_were_found(
    researcher, manager, donor, session
):
    """Five patients asked, two have material: a 409 with the counts, nothing reserved; with
    allow_partial the two are taken."""
    worlds = [donor({"DX": 2}, "DEMO") for _ in range(2)]
    donor({"DX": 2})  # no DEMO consent: not counted
    number = new_request(researcher, patients=5)
    manager.post(f"/api/v1/requests/{number}/approve", json={})
    short = manager.post(f"/api/v1/requests/{number}/allocate", json={})
    assert short.status_code == 409
    assert short.json["errors"]["found"] == {"patients": 2, "aliquots": 2}
    assert "only 2 patient(s) with 2 matching aliquot(s)" in short.json["message"]
    every = [c for w in worlds for c in w.barcodes]
    assert set(statuses(session, every).values()) == {"available"}
    partial = manager.post(f"/api/v1/requests/{number}/allocate", json={"allow_partial": True})
    assert partial.json["allocation"] == {
        "patients_requested": 5,
        "patients_found": 2,
        "aliquots": 2,
        "partial": True,
    }


def test_nothing_to_allocate_is_a_409_even_when_partial(researcher, manager, donor):
    """No matching tube at all: the allocation says 0 found."""
    number = new_request(researcher, timepoints=["EOI"])
    manager.post(f"/api/v1/requests/{number}/approve", json={})
    empty = manager.post(f"/api/v1/requests/{number}/allocate", json={"allow_partial": True})
    assert empty.status_code == 409 and "0 patients, 0 aliquots" in empty.json["message"]


def test_allocation_takes_per_patient_and_timepoint_limits(researcher, manager, donor):
    """Two per patient and timepoint, from the patients who fill the most timepoints."""
    rich = donor({"DX": 3, "EOI": 3}, "DEMO")
    donor({"DX": 3}, "DEMO")
    number = allocated(
        researcher, manager, timepoints=["DX", "EOI"], patients=1, aliquots_per_patient_timepoint=2
    )
    tubes = manager.get(f"/api/v1/requests/{number}").json["tubes"]
    assert {t["study_id"] for t in tubes} == {rich.study_id}
    assert sorted(t["timepoint"] for t in tubes) == ["DX", "DX", "EOI", "EOI"]


def test_cancelling_releases_every_reservation(researcher, manager, tech, donor, session):
    """Cancelled while picking: reserved tubes are available again, picked ones listed to put
    back; the cancelled request refuses every further step."""
    donor({"DX": 1}, "DEMO")
    donor({"DX": 1}, "DEMO")
    number = allocated(researcher, manager)
    codes = held(tech, number)
    tech.post(f"/api/v1/requests/{number}/pick", json={"barcode": codes[0]})
    assert researcher.post(f"/api/v1/requests/{number}/cancel", json={}).status_code == 422
    done = researcher.post(
        f"/api/v1/requests/{number}/cancel", json={"reason": "grant not renewed"}
    )
    assert done.json == {
        "number": number,
        "state": "cancelled",
        "released": 2,
        "put_back": [codes[0]],
    }
    assert set(statuses(session, codes).values()) == {"available"}
    assert event_types(session, codes[1])[-1] == "released"
    rows = session.scalars(select(RequestAliquot.state)).all()
    assert set(rows) == {"dropped"}
    for url, body, client in (
        (f"/api/v1/requests/{number}/approve", {}, manager),
        (f"/api/v1/requests/{number}/pick", {"barcode": codes[1]}, tech),
        (f"/api/v1/requests/{number}/ship", SHIPMENT, manager),
        (f"/api/v1/requests/{number}/cancel", {"reason": "x"}, manager),
    ):
        refused = client.post(url, json=body)
        assert refused.status_code == 409 and "cancelled" in refused.json["message"], url


def test_only_the_researcher_who_made_it_submits_or_cancels(researcher, as_role, donor):
    """A colleague in the same sub-study sees the request but cannot act on it."""
    number = new_request(researcher, submit=False)
    colleague = as_role("researcher", substudies=["DEMO"])
    assert colleague.get(f"/api/v1/requests/{number}").status_code == 200
    assert colleague.post(f"/api/v1/requests/{number}/submit").status_code == 403
    assert (
        colleague.post(f"/api/v1/requests/{number}/cancel", json={"reason": "x"}).status_code == 403
    )


def test_a_draft_can_be_edited_and_nothing_else(researcher, manager):
    """PATCH changes a draft's criteria; once submitted it is a 409."""
    number = new_request(researcher, submit=False)
    edited = researcher.patch(
        f"/api/v1/requests/{number}", json={"criteria": {"patients": 4, "materials": ["PB"]}}
    )
    assert edited.json["criteria"] == {
        "patients": 4,
        "materials": ["PB"],
        "aliquots_per_patient_timepoint": 1,
    }
    researcher.post(f"/api/v1/requests/{number}/submit")
    assert (
        researcher.patch(f"/api/v1/requests/{number}", json={"title": "later"}).status_code == 409
    )


def test_bad_requests_are_4xx_naming_the_field(researcher, as_role, studies):  # noqa: F811
    """Unknown codes, missing criteria, another sub-study, a closed one: 422 / 404 / 409."""

    def create(**body):  # type: ignore[no-untyped-def]
        return researcher.post(
            "/api/v1/requests",
            json={
                "substudy": "DEMO",
                "title": "t",
                "purpose": "p",
                "criteria": {"patients": 1},
                **body,
            },
        )

    unknown = create(criteria={"patients": 1, "materials": ["BM", "XX"]})
    assert unknown.status_code == 422
    assert unknown.json["errors"]["json"] == {"criteria.materials.1": ["unknown material 'XX'"]}
    assert create(criteria={"materials": ["BM"]}).status_code == 422
    assert create(substudy="MRD-NGS").status_code == 404
    closed = as_role("researcher", substudies=["OLD"])
    assert (
        closed.post(
            "/api/v1/requests", json={"title": "t", "purpose": "p", "criteria": {"patients": 1}}
        ).status_code
        == 409
    )
    assert researcher.get("/api/v1/requests/RQ0000000").status_code == 404
