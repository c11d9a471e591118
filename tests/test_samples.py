"""Samples and aliquots: registration, splitting, the status machine, events."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from biobank import clock
from biobank.custody.models import CustodyEvent
from biobank.samples.models import Aliquot, Sample


def sample_body(study_id: str, **overrides):  # type: ignore[no-untyped-def]
    """A valid sample registration body."""
    collected = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    body = {
        "study_id": study_id,
        "timepoint": "DX",
        "material": "BM",
        "collected_at": collected.isoformat(),
        "received_at": (collected + dt.timedelta(hours=6)).isoformat(),
        "volume_ml": "3.5",
        "container_code": "PED",
        "precentrifugation_delay_hours": "6",
        "precentrifugation_temperature": "RT",
        "accession_number": "H-2026-0042",
        "notes": "residual",
    }
    body.update(overrides)
    return body


def rows(session, model) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def patient(make_patient):  # type: ignore[no-untyped-def]
    """A patient diagnosed 10 days ago."""
    return make_patient(diagnosis_date=clock.today() - dt.timedelta(days=10))


def test_a_received_sample_gets_a_barcode_and_a_receipt_event(tech, patient):
    """The service issues the sample's barcode and logs its receipt."""
    response = tech.post("/api/v1/samples", json=sample_body(patient.study_id))
    assert response.status_code == 201, response.json
    code = response.json["barcode"]
    assert code.startswith("SM") and len(code) == 11
    assert response.json["volume_remaining_ml"] == 3.5
    events = tech.get(f"/api/v1/samples/{code}/events").json
    assert [e["event_type"] for e in events] == ["received"]
    assert events[0]["actor"] == tech.username


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"received_at": "2020-01-01T00:00:00Z"}, "received_at"),  # before collection
        (
            {"collected_at": "2999-01-01T00:00:00Z", "received_at": "2999-01-02T00:00:00Z"},
            "collected_at",
        ),
        ({"volume_ml": "0"}, "volume_ml"),
        ({"volume_ml": "-1"}, "volume_ml"),
        ({"timepoint": "D99"}, "timepoint"),
        ({"material": "XYZ"}, "material"),
        ({"container_code": "ABC"}, "container_code"),
        ({"timepoint": None}, "timepoint"),  # unscheduled needs a reason
        ({"collected_at": "2026-01-01T10:00:00"}, "collected_at"),  # no time zone
    ],
)
def test_bad_sample_input_is_a_422_naming_the_field(tech, patient, session, overrides, field):
    """Each bad value is refused with its field named, and nothing is written."""
    before = (rows(session, Sample), rows(session, CustodyEvent))
    response = tech.post("/api/v1/samples", json=sample_body(patient.study_id, **overrides))
    assert response.status_code == 422, response.json
    assert field in response.json["errors"]["json"]
    assert (rows(session, Sample), rows(session, CustodyEvent)) == before


def test_received_in_the_future_is_refused(tech, patient):
    """received_at tomorrow is a 422 naming received_at."""
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    response = tech.post(
        "/api/v1/samples", json=sample_body(patient.study_id, received_at=tomorrow)
    )
    assert response.status_code == 422
    assert "received_at" in response.json["errors"]["json"]


def test_an_unscheduled_sample_carries_its_reason(tech, patient):
    """No timepoint, with a reason: accepted and listed as unscheduled on the timeline."""
    response = tech.post(
        "/api/v1/samples",
        json=sample_body(
            patient.study_id,
            timepoint=None,
            unscheduled_reason="suspected CNS relapse",
            material="CSF",
        ),
    )
    assert response.status_code == 201, response.json
    timeline = tech.get(f"/api/v1/patients/{patient.study_id}/timeline").json
    assert timeline["unscheduled"][0]["reason"] == "suspected CNS relapse"


def test_a_split_returns_new_barcodes_in_order_and_debits_the_parent(tech, make_sample):
    """Three aliquots from 4 mL: barcodes in request order, 1.5 mL left, SPREC computed."""
    sample = make_sample()
    response = tech.post(
        f"/api/v1/samples/{sample.barcode}/split",
        json={
            "aliquots": [
                {
                    "aliquot_type": "MNC-V",
                    "volume_ml": "1.0",
                    "cell_count": 10_000_000,
                    "storage": "C",
                },
                {"aliquot_type": "PLASMA", "volume_ml": "0.5"},
                {"aliquot_type": "PELLET", "cell_count": 2_000_000, "source_volume_ml": "1.0"},
            ]
        },
    )
    assert response.status_code == 201, response.json
    made = response.json
    assert [a["aliquot_type"] for a in made] == ["MNC-V", "PLASMA", "PELLET"]
    numbers = [int(a["barcode"][2:-1]) for a in made]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    # Pre-centrifugation 5 h at room temperature is SPREC "E"; EDTA tube is PED.
    assert made[0]["sprec_code"] == "CEL-PED-E-X-X-X-C"
    assert tech.get(f"/api/v1/samples/{sample.barcode}").json["volume_remaining_ml"] == 1.5


def test_splitting_more_than_is_left_is_a_conflict_and_writes_nothing(tech, make_sample, session):
    """Asking 4.5 mL of a 4 mL sample: 409, no aliquot, volume unchanged."""
    sample = make_sample()
    before = (rows(session, Aliquot), rows(session, CustodyEvent))
    response = tech.post(
        f"/api/v1/samples/{sample.barcode}/split",
        json={
            "aliquots": [
                {"aliquot_type": "PLASMA", "volume_ml": "2.5"},
                {"aliquot_type": "PLASMA", "volume_ml": "2.0"},
            ]
        },
    )
    assert response.status_code == 409
    assert "4.000 mL" in response.json["message"] or "4.0" in response.json["message"]
    assert (rows(session, Aliquot), rows(session, CustodyEvent)) == before
    assert tech.get(f"/api/v1/samples/{sample.barcode}").json["volume_remaining_ml"] == 4.0


def test_children_of_an_aliquot_never_exceed_what_it_has_left(tech, make_aliquots):
    """A 0.5 mL aliquot gives 0.3 mL, then refuses another 0.3 mL."""
    [parent] = make_aliquots(1, volume="0.5")
    first = tech.post(
        f"/api/v1/aliquots/{parent.barcode}/split",
        json={"aliquots": [{"aliquot_type": "DNA", "volume_ml": "0.3"}]},
    )
    assert first.status_code == 201
    assert first.json[0]["parent"] == parent.barcode
    second = tech.post(
        f"/api/v1/aliquots/{parent.barcode}/split",
        json={"aliquots": [{"aliquot_type": "DNA", "volume_ml": "0.3"}]},
    )
    assert second.status_code == 409


def test_a_cell_pellet_without_volume_is_used_up_by_dna_extraction(tech, make_sample):
    """A pellet has no volume: splitting it needs consume_parent, and it becomes consumed."""
    sample = make_sample()
    pellet = tech.post(
        f"/api/v1/samples/{sample.barcode}/split",
        json={
            "aliquots": [
                {"aliquot_type": "PELLET", "cell_count": 5_000_000, "source_volume_ml": "1"}
            ]
        },
    ).json[0]
    refused = tech.post(
        f"/api/v1/aliquots/{pellet['barcode']}/split",
        json={"aliquots": [{"aliquot_type": "DNA", "volume_ml": "0.05"}]},
    )
    assert refused.status_code == 409
    assert "consume_parent" in refused.json["errors"]["json"]
    made = tech.post(
        f"/api/v1/aliquots/{pellet['barcode']}/split",
        json={"aliquots": [{"aliquot_type": "DNA", "volume_ml": "0.05"}], "consume_parent": True},
    )
    assert made.status_code == 201
    assert tech.get(f"/api/v1/aliquots/{pellet['barcode']}").json["status"] == "consumed"


def test_an_aliquot_type_from_the_wrong_material_is_refused(tech, make_sample):
    """CSF supernatant cannot come from bone marrow: 422 naming the item's aliquot_type."""
    sample = make_sample()
    response = tech.post(
        f"/api/v1/samples/{sample.barcode}/split",
        json={"aliquots": [{"aliquot_type": "CSF-SUP", "volume_ml": "1"}]},
    )
    assert response.status_code == 422
    assert "aliquots.0.aliquot_type" in response.json["errors"]["json"]


def test_an_unknown_aliquot_type_is_refused(tech, make_sample):
    """An unknown type code is a 422."""
    sample = make_sample()
    response = tech.post(
        f"/api/v1/samples/{sample.barcode}/split",
        json={"aliquots": [{"aliquot_type": "NOPE", "volume_ml": "1"}]},
    )
    assert response.status_code == 422


def test_pre_barcoded_tubes_keep_their_own_code_and_duplicates_conflict(tech, make_sample, session):
    """A 2D tube registers with its code (upper-cased); the same code again is a 409."""
    sample = make_sample()
    body = {"aliquots": [{"aliquot_type": "PLASMA", "volume_ml": "0.5", "barcode": "fx0565370"}]}
    first = tech.post(f"/api/v1/samples/{sample.barcode}/split", json=body)
    assert first.status_code == 201
    assert first.json[0]["barcode"] == "FX0565370"
    assert first.json[0]["barcode_source"] == "external"
    before = rows(session, Aliquot)
    again = tech.post(f"/api/v1/samples/{sample.barcode}/split", json=body)
    assert again.status_code == 409
    assert rows(session, Aliquot) == before


def test_an_external_code_shaped_like_our_own_is_refused(tech, make_sample):
    """A pre-barcoded tube may not carry a code in this service's own series."""
    sample = make_sample()
    response = tech.post(
        f"/api/v1/samples/{sample.barcode}/split",
        json={
            "aliquots": [{"aliquot_type": "PLASMA", "volume_ml": "0.5", "barcode": "IF00000001E"}]
        },
    )
    assert response.status_code == 422


def test_status_changes_follow_the_state_machine(tech, make_aliquots):
    """missing → found → destroyed works; destroyed → available is a 409 naming both states."""
    [aliquot] = make_aliquots(1)
    url = f"/api/v1/aliquots/{aliquot.barcode}/status"
    assert tech.post(url, json={"status": "missing", "reason": "not in box"}).status_code == 200
    assert tech.post(url, json={"status": "available"}).status_code == 200
    assert tech.post(url, json={"status": "destroyed", "reason": "tube cracked"}).status_code == 200
    response = tech.post(url, json={"status": "available"})
    assert response.status_code == 409
    assert "destroyed" in response.json["message"] and "available" in response.json["message"]
    events = [e["event_type"] for e in tech.get(f"/api/v1/aliquots/{aliquot.barcode}/events").json]
    assert events == ["aliquoted", "marked_missing", "found", "destroyed"]


def test_destroying_needs_a_reason(tech, make_aliquots):
    """A destruction without a reason is a 422 naming reason."""
    [aliquot] = make_aliquots(1)
    response = tech.post(f"/api/v1/aliquots/{aliquot.barcode}/status", json={"status": "destroyed"})
    assert response.status_code == 422
    assert "reason" in response.json["errors"]["json"]


def test_reserving_by_hand_is_not_allowed(tech, make_aliquots):
    """Reserved and shipped belong to the request workflow: 422 here."""
    [aliquot] = make_aliquots(1)
    response = tech.post(f"/api/v1/aliquots/{aliquot.barcode}/status", json={"status": "reserved"})
    assert response.status_code == 422


def test_aliquot_lists_filter_by_patient_type_status_and_timepoint(
    tech, make_aliquots, make_sample
):
    """Filters narrow the list; pagination reports the total."""
    mine = make_aliquots(3)
    other_sample = make_sample(timepoint="EOI")
    make_aliquots(2, parent=other_sample, aliquot_type="MNC-V")
    study_id = mine[0].sample.patient.study_id
    assert len(tech.get(f"/api/v1/aliquots?patient={study_id}").json) == 3
    assert len(tech.get("/api/v1/aliquots?aliquot_type=MNC-V").json) == 2
    assert len(tech.get("/api/v1/aliquots?timepoint=EOI&material=BM").json) == 2
    assert len(tech.get("/api/v1/aliquots?status=available&page_size=4").json) == 4
    assert tech.get("/api/v1/aliquots?status=bogus").status_code == 422
    assert len(tech.get(f"/api/v1/samples?patient={study_id}").json) == 1


def test_volumes_are_exact_decimals(make_sample, make_aliquots):
    """Three 1/3-ish volumes subtract exactly (no float drift)."""
    sample = make_sample(volume_ml=Decimal("1.000"))
    make_aliquots(3, parent=sample, volume="0.333")
    assert sample.volume_remaining_ml == Decimal("0.001")


def test_every_named_set_of_statuses_is_made_of_statuses():
    """The named sets (releasable, thawable, departed, in house, manual) use one vocabulary,
    and the tally's triggers count the status the enum calls available."""
    from biobank.requests import tally
    from biobank.samples import states

    for named in (
        states.RELEASABLE,
        states.THAWABLE,
        states.DEPARTED,
        states.IN_HOUSE,
        states.MANUAL,
    ):
        assert set(named) <= set(states.STATUSES)
        assert all(type(s) is str for s in named)  # plain text for SQL parameters
    assert states.IN_HOUSE.isdisjoint(states.DEPARTED)
    assert tally.AVAILABLE == "'available'" == f"'{states.Status.AVAILABLE}'"
