"""Anonymise instead of destroy: where the country allows it, a storage withdrawal cuts the
tubes loose from the patient for good; the gate then lets them out only to sub-studies that
accept anonymised material, and says so in the release's justification."""

from __future__ import annotations

import pytest
from consent_helpers import ACTOR, NUMBERING, consented, days_ago, give, officer, studies  # noqa: F401
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from biobank.consent import gate, service
from biobank.consent.models import (
    AnonymisationTask,
    ConsentEntry,
    DestructionTask,
    ReleaseJustification,
    Withdrawal,
)
from biobank.custody.audit import verify_aliquot, verify_sample
from biobank.custody.models import CustodyEvent
from biobank.custody.service import aliquot_events
from biobank.errors import Conflict
from biobank.reference import service as reference
from biobank.requests.models import AvailabilityTally
from biobank.samples import service as samples
from biobank.samples.models import Aliquot, Sample
from biobank.storage import operations
from biobank.storage import service as storage

TASKS = "/api/v1/consent/anonymisation-tasks"


def _withdraw(client, study_id: str, scope: str = "storage", dry_run: bool = False, **overrides):  # type: ignore[no-untyped-def]
    body = {
        "scope": scope,
        "date": str(days_ago(1)),
        "requested_by": "mother",
        "reason": "parents no longer wish material to be kept",
        **overrides,
    }
    url = f"/api/v1/patients/{study_id}/consent/withdrawals" + ("?dry_run=true" if dry_run else "")
    return client.post(url, json=body)


def _samples_of(session, tubes):  # type: ignore[no-untyped-def]
    return list(
        session.scalars(
            select(Sample)
            .join(Aliquot, Aliquot.sample_id == Sample.id)
            .where(Aliquot.id.in_([t.id for t in tubes]))
            .distinct()
        )
    )


def _counts(session) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    return tuple(
        session.scalar(select(func.count()).select_from(model))
        for model in (Withdrawal, ConsentEntry, DestructionTask, AnonymisationTask, CustodyEvent)
    )


@pytest.fixture
def accepting(session, studies):  # type: ignore[no-untyped-def]
    """Sub-study ANON-OK, open and accepting anonymised tubes."""
    found = service.create_substudy(
        session,
        ACTOR,
        {
            "code": "ANON-OK",
            "title": "Anonymised material welcome",
            "principal_investigator": "Dr. A. Nonymous",
            "open": True,
            "accepts_anonymised": True,
        },
    )
    session.commit()
    return found


@pytest.fixture
def anonymised(officer, tech, consented, session):  # type: ignore[no-untyped-def]
    """A patient's four tubes anonymised (NL allows it) and relabelled: back in use."""
    world = consented(4, "DEMO")
    response = _withdraw(officer, world.study_id, outcome="anonymise")
    assert response.status_code == 201, response.json
    for task in tech.get(TASKS).json:
        done = tech.post(f"{TASKS}/{task['id']}/done")
        assert done.status_code == 200, done.json
    session.expire_all()
    return world


# --- where the law does not allow it ---------------------------------------------------


def test_anonymise_where_the_country_does_not_allow_it_is_a_422_naming_the_country(
    officer, consented, session
):
    """A country whose reference row says no: 422 on ``outcome`` naming it; nothing written."""
    world = consented(2, "DEMO")
    reference.update(session, ACTOR, "anonymisation_rules", "NL", {"allowed": False})
    session.commit()
    before = _counts(session)
    response = _withdraw(officer, world.study_id, outcome="anonymise")
    assert response.status_code == 422, response.json
    assert "outcome" in response.json["errors"]["json"]
    assert "not allowed in NL" in response.json["message"]
    assert _counts(session) == before
    assert all(s.patient_id == world.patient.id for s in _samples_of(session, world.tubes))


def test_a_country_without_a_row_follows_the_default_row(session):
    """No row of its own: DEFAULT decides (destroy by default); with no rows at all: no."""
    assert reference.anonymisation_allowed(session, "NL") is True
    assert reference.anonymisation_allowed(session, "DE") is False
    reference.update(session, ACTOR, "anonymisation_rules", "DEFAULT", {"allowed": True})
    assert reference.anonymisation_allowed(session, "DE") is True


def test_an_outcome_on_a_withdrawal_that_does_not_end_storage_is_a_422(officer, consented):
    """Withdrawing one sub-study keeps the tubes stored: an outcome makes no sense there."""
    world = consented(2, "DEMO")
    response = _withdraw(officer, world.study_id, scope="DEMO", outcome="anonymise")
    assert response.status_code == 422
    assert "outcome" in response.json["errors"]["json"]


def test_a_storage_withdrawal_destroys_by_default(officer, consented, session):
    """Without an outcome, as before: destruction tasks, the patient's link kept."""
    world = consented(2, "DEMO")
    response = _withdraw(officer, world.study_id)
    assert response.json["outcome"] == "destroy"
    assert len(response.json["destruction"]) == 2 and response.json["anonymisation"] == []
    assert response.json["withdrawal"]["outcome"] == "destroy"


# --- anonymising -----------------------------------------------------------------------


def test_anonymising_cuts_every_sample_loose_from_the_patient(officer, consented, session):
    """No patient, no collection or receipt time, no accession number or notes; material,
    volumes, types and SPREC stay; the withdrawal (the minimal record) keeps the patient."""
    world = consented(3, "DEMO")
    kept = [(t.aliquot_type_id, t.sprec_code, t.volume_ml) for t in world.tubes]
    response = _withdraw(officer, world.study_id, outcome="anonymise")
    assert response.status_code == 201, response.json
    assert response.json["outcome"] == "anonymise"
    assert "anonymised" in response.json["summary"]
    assert [t["barcode"] for t in response.json["anonymisation"]] == [
        t.barcode for t in world.tubes
    ]
    assert response.json["destruction"] == []
    session.expire_all()
    for sample in _samples_of(session, world.tubes):
        assert (
            sample.patient_id,
            sample.collected_at,
            sample.received_at,
            sample.accession_number,
            sample.notes,
        ) == (None, None, None, None, None)
        assert sample.material_id is not None
    assert [(t.aliquot_type_id, t.sprec_code, t.volume_ml) for t in world.tubes] == kept
    withdrawal = session.scalar(select(Withdrawal).where(Withdrawal.patient_id == world.patient.id))
    assert withdrawal.outcome == "anonymise"
    assert not session.scalars(select(Sample).where(Sample.patient_id == world.patient.id)).all()


def test_a_dry_run_of_an_anonymisation_writes_nothing(officer, consented, session):
    """The impact is shown, the samples keep their patient."""
    world = consented(2, "DEMO")
    before = _counts(session)
    response = _withdraw(officer, world.study_id, dry_run=True, outcome="anonymise")
    assert response.status_code == 200, response.json
    assert len(response.json["anonymisation"]) == 2
    assert _counts(session) == before
    assert all(s.patient_id == world.patient.id for s in _samples_of(session, world.tubes))


def test_each_chain_continues_with_an_anonymised_event_and_stays_intact(
    officer, consented, session
):
    """Every tube's and sample's custody chain gets an ``anonymised`` event; both verify."""
    world = consented(2, "DEMO")
    _withdraw(officer, world.study_id, outcome="anonymise")
    for tube in world.tubes:
        types = [e.event_type for e in aliquot_events(session, tube.id, limit=3, newest_first=True)]
        assert "anonymised" in types and "blocked" in types
        assert verify_aliquot(session, tube.id).ok
    for sample in _samples_of(session, world.tubes):
        assert (
            session.scalar(
                select(func.count())
                .select_from(CustodyEvent)
                .where(
                    CustodyEvent.sample_id == sample.id,
                    CustodyEvent.aliquot_id.is_(None),
                    CustodyEvent.event_type == "anonymised",
                )
            )
            == 1
        )
        assert verify_sample(session, sample.id).ok
    blocked = [
        e for e in aliquot_events(session, world.tubes[0].id, limit=5) if e.event_type == "blocked"
    ]
    assert "withdrawal #" not in blocked[-1].reason  # the log does not lead back to it


def test_anonymisation_tasks_are_listed_beside_destruction_tasks(officer, tech, consented, session):
    """One relabelling task per tube in house, with its location, no patient; the
    withdrawal lists them and counts them outstanding until done."""
    world = consented(3, "DEMO")
    samples.change_status(session, ACTOR, world.tubes[0], "destroyed", "cracked")
    session.commit()
    withdrawal = _withdraw(officer, world.study_id, outcome="anonymise").json["withdrawal"]
    tasks = tech.get(TASKS).json
    assert [t["barcode"] for t in tasks] == [t.barcode for t in world.tubes[1:]]
    assert all(t["state"] == "pending" and "location" in t and "study_id" not in t for t in tasks)
    assert tech.get("/api/v1/consent/destruction-tasks").json == []
    detail = officer.get(f"/api/v1/consent/withdrawals/{withdrawal['id']}").json
    assert [t["barcode"] for t in detail["anonymisation_tasks"]] == [
        t.barcode for t in world.tubes[1:]
    ]
    assert detail["anonymisation"] == {"pending": 2, "done": 0} and detail["outstanding"]


def test_completing_a_task_puts_the_tube_back_and_forgets_it(officer, tech, consented, session):
    """Relabelled: the tube is available again (an ``unblocked`` event), and the task keeps
    neither the tube's id nor its code; twice is a 409; unknown is a 404."""
    world = consented(2, "DEMO")
    withdrawal = _withdraw(officer, world.study_id, outcome="anonymise").json["withdrawal"]
    first = tech.get(TASKS).json[0]
    done = tech.post(f"{TASKS}/{first['id']}/done")
    assert done.status_code == 200, done.json
    assert done.json["state"] == "done" and done.json["barcode"] is None
    session.expire_all()
    assert world.tubes[0].status == "available"
    [event] = aliquot_events(session, world.tubes[0].id, limit=1, newest_first=True)
    assert event.event_type == "unblocked" and "relabelled" in event.reason
    task = session.get(AnonymisationTask, first["id"])
    assert (task.aliquot_id, task.barcode) == (None, None)
    assert tech.post(f"{TASKS}/{first['id']}/done").status_code == 409
    assert tech.post(f"{TASKS}/999999/done").status_code == 404
    assert [t["barcode"] for t in tech.get(TASKS).json] == [world.tubes[1].barcode]
    detail = officer.get(f"/api/v1/consent/withdrawals/{withdrawal['id']}").json
    assert detail["anonymisation"] == {"pending": 1, "done": 1}


def test_re_consent_after_anonymisation_does_not_bring_the_link_back(
    officer, anonymised, give, session
):
    """Irreversible: storage consent given again finds no tube of the patient."""
    give(anonymised.patient, "storage", days_ago(0))
    session.expire_all()
    assert all(s.patient_id is None for s in _samples_of(session, anonymised.tubes))


# --- what the service shows -------------------------------------------------------------


def test_the_scan_card_shows_no_patient_for_an_anonymised_tube(tech, anonymised):
    """The scan: no study_id, no risk group, consent 'anonymised'; the sample's card too."""
    card = tech.get(f"/api/v1/scan/{anonymised.tubes[0].barcode}").json
    assert card["study_id"] is None and card["risk_group"] is None
    assert card["consent"]["storage"] == "anonymised"
    assert "anonymised" in card["consent"]["summary"]
    assert card["material"] and card["aliquot_type"]
    sample = tech.get(f"/api/v1/scan/{card['sample']}").json
    assert sample["study_id"] is None and sample["consent"]["storage"] == "anonymised"


def test_the_box_map_shows_an_anonymised_tube_without_a_patient(tech, officer, consented, session):
    """The tube stays in its place on the map, with no study_id and consent 'anonymised'."""
    world = consented(2, "DEMO")
    storage.load_default_box_types(session, ACTOR)
    freezer = storage.create_freezer(
        session,
        ACTOR,
        {"site": "NL-PMC", "name": "F-80-09", "freezer_type": "mechanical-80"},
        NUMBERING,
    )
    box = storage.create_box(
        session, ACTOR, {"box_type": "9X9", "parent": freezer.barcode, "name": "Anon"}, NUMBERING
    )
    operations.place(session, ACTOR, world.tubes[0], box, "A1")
    session.commit()
    _withdraw(officer, world.study_id, outcome="anonymise")
    cell = tech.get(f"/api/v1/boxes/{box.barcode}/map").json["positions"][0]["aliquot"]
    assert cell["barcode"] == world.tubes[0].barcode
    assert cell["study_id"] is None and cell["consent"] == "anonymised"


def test_the_aliquot_view_and_the_tally_follow_the_anonymisation(tech, anonymised, session):
    """The aliquot's own view names no patient; the availability tally moves the tubes to
    the 'no patient' key (0), as a recount does."""
    view = tech.get(f"/api/v1/aliquots/{anonymised.tubes[0].barcode}")
    assert view.status_code == 200, view.json
    assert view.json["study_id"] is None
    assert not session.scalars(
        select(AvailabilityTally).where(
            AvailabilityTally.patient_id == anonymised.patient.id, AvailabilityTally.tubes > 0
        )
    ).all()
    types = {t.aliquot_type_id for t in anonymised.tubes}
    assert sum(
        session.scalars(
            select(AvailabilityTally.tubes).where(
                AvailabilityTally.patient_id == 0, AvailabilityTally.aliquot_type_id.in_(types)
            )
        )
    ) >= len(anonymised.tubes)


# --- the gate ----------------------------------------------------------------------------


def test_an_anonymised_tube_goes_only_to_a_substudy_that_accepts_anonymised_material(
    anonymised, accepting, studies, session
):
    """DEMO (the patient's own sub-study) is refused with the reason; ANON-OK is allowed,
    on the basis 'anonymised', without consent entries."""
    tube = anonymised.tubes[0]
    refused = gate.may_use(session, tube.id, "DEMO")
    assert not refused.allowed
    assert refused.reasons == (gate.not_accepted(studies.demo),)
    allowed = gate.may_use(session, tube.id, "ANON-OK")
    assert (allowed.allowed, allowed.basis, allowed.justification) == (True, "anonymised", ())


def test_the_release_of_an_anonymised_tube_records_its_basis(anonymised, accepting, session):
    """The justification row says 'anonymised' and names no consent entry."""
    [row] = gate.justify_release(
        session, ACTOR, [anonymised.tubes[0].id], "ANON-OK", "request", "RQ-ANON-1"
    )
    assert (row.basis, row.storage_consent_id, row.substudy_consent_id) == (
        "anonymised",
        None,
        None,
    )
    assert row.consent_entry_ids == []
    with pytest.raises(Conflict, match="does not accept anonymised"):
        gate.justify_release(
            session, ACTOR, [anonymised.tubes[1].id], "DEMO", "request", "RQ-ANON-2"
        )


def test_the_check_endpoint_answers_with_the_basis(tech, anonymised, accepting):
    """Staff see why the gate allows: 'anonymised' for these, 'consent' for the others."""
    answer = tech.get(
        "/api/v1/consent/check",
        query_string={"barcode": anonymised.tubes[0].barcode, "substudy": "ANON-OK"},
    ).json
    assert answer["allowed"] is True and answer["basis"] == "anonymised"
    assert answer["justification"] == []


def test_a_consented_tube_is_released_on_the_basis_of_consent(consented, session):
    """The ordinary release: basis 'consent', both entries named."""
    world = consented(1, "DEMO")
    [row] = gate.justify_release(
        session, ACTOR, [world.tubes[0].id], "DEMO", "request", "RQ-CONS-1"
    )
    assert row.basis == "consent" and len(row.consent_entry_ids) == 2


def test_substudies_say_whether_they_accept_anonymised_material(manager, studies):
    """The flag is part of a sub-study: false unless set, editable."""
    assert manager.get("/api/v1/substudies/DEMO").json["accepts_anonymised"] is False
    changed = manager.patch("/api/v1/substudies/DEMO", json={"accepts_anonymised": True})
    assert changed.status_code == 200, changed.json
    assert changed.json["accepts_anonymised"] is True


# --- the database's own rules (the migration) --------------------------------------------


def test_the_database_refuses_an_anonymised_sample_that_keeps_its_dates(consented, session):
    """A sample without a patient must carry no collection date (check constraint)."""
    world = consented(1)
    with pytest.raises(IntegrityError), session.begin_nested():
        session.execute(
            text("UPDATE sample SET patient_id = NULL WHERE id = :id"),
            {"id": world.tubes[0].sample_id},
        )


def test_the_database_refuses_a_consent_release_without_entries(consented, session):
    """basis 'consent' needs both entries; 'anonymised' none (check constraint)."""
    world = consented(1, "DEMO")
    [row] = gate.justify_release(session, ACTOR, [world.tubes[0].id], "DEMO", "request", "RQ-DB-1")
    with pytest.raises(IntegrityError), session.begin_nested():
        session.execute(
            ReleaseJustification.__table__.insert().values(
                release_kind="request",
                release_reference="RQ-DB-2",
                aliquot_id=row.aliquot_id,
                substudy_id=row.substudy_id,
                basis="consent",
                storage_consent_id=None,
                substudy_consent_id=None,
                released_at=row.released_at,
                actor=ACTOR,
            )
        )


def test_fhir_no_longer_links_an_anonymised_tube_to_its_patient(manager, anonymised):
    """The patient's $everything lists none of the tubes, and the tubes (which FHIR can only
    show with a subject) are not served: FHIR and its bulk export cannot join them back."""
    everything = manager.get(f"/fhir/Patient/{anonymised.study_id}/$everything")
    assert everything.status_code == 200
    text = everything.get_data(as_text=True)
    assert not any(t.barcode in text for t in anonymised.tubes)
    assert manager.get(f"/fhir/Specimen/aliquot-{anonymised.tubes[0].id}").status_code == 404


def test_availability_counts_anonymised_tubes_only_for_substudies_that_take_them(
    anonymised, accepting, studies, session
):
    """ANON-OK counts the four tubes, each an unknown donor of its own (from the tally and
    from the tubes alike); DEMO, the patient's own sub-study, counts none of them."""
    from biobank.requests import availability

    for filters in (availability.Filters(), availability.Filters(max_freeze_thaw=5)):
        taking = availability.count(session, accepting, filters)
        assert (taking.aliquots, sum(g.patients for g in taking.groups)) == (4, 4)
        assert availability.count(session, studies.demo, filters).aliquots == 0
    assert availability.matching(session, accepting, availability.Filters()) == {
        "aliquots": 4,
        "patients": 4,
    }


def test_the_scan_card_names_the_substudies_an_anonymised_tube_may_go_to(
    tech, anonymised, accepting
):
    """Its card lists ANON-OK (open, accepting anonymised material) and nothing else."""
    card = tech.get(f"/api/v1/scan/{anonymised.tubes[0].barcode}").json["consent"]
    assert card["anonymised"] is True and card["usable_for"] == ["ANON-OK"]
    assert "ANON-OK" in card["summary"]
