"""The age of majority in the gate: from the day a patient comes of age, a parent's consent no
longer lets material out; consent signed by the participant then restores what it covers."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from consent_helpers import ACTOR, give, officer, open_trial_by, studies  # noqa: F401
from consent_views import agree, verdicts

from biobank import clock
from biobank.consent import gate, withdrawal
from biobank.reference import service as reference
from biobank.samples import service as samples
from biobank.storage import operations
from biobank.storage import service as storage

NUMBERING = samples.Numbering()


def _years_before(day: dt.date, years: int) -> dt.date:
    return day.replace(year=day.year - years)


@pytest.fixture
def grown(session, make_patient, make_sample, make_aliquots, give):  # type: ignore[no-untyped-def]
    """``grown(17)``: an NL patient (majority 16) now 17, consent given by the mother two days
    after diagnosis for storage, DEMO and MRD-NGS; one tube, stored in a box."""

    def make(age: int, site: str = "NL-PMC") -> SimpleNamespace:
        today = clock.today()
        born = _years_before(today, age) - dt.timedelta(days=10)
        diagnosed = born + dt.timedelta(days=100)
        open_trial_by(session, diagnosed)
        patient = make_patient(site=site, diagnosis_date=diagnosed, age_at_diagnosis_days=100)
        [tube] = make_aliquots(1, parent=make_sample(patient))
        for component in ("storage", "DEMO", "MRD-NGS"):
            give(patient, component, diagnosed + dt.timedelta(days=2))
        freezer = storage.create_freezer(
            session,
            ACTOR,
            {"site": site, "name": f"F-{patient.study_id}", "freezer_type": "mechanical-80"},
            NUMBERING,
        )
        box = storage.create_box(
            session, ACTOR, {"box_type": "10X10", "parent": freezer.barcode}, NUMBERING
        )
        operations.relocate(session, ACTOR, [operations.Target(tube, box, 1, 1)])
        session.commit()
        return SimpleNamespace(
            patient=patient, tube=tube, box=box, born=born, of_age=born.replace(year=born.year + 16)
        )

    return make


@pytest.mark.parametrize("age", [17, 19, 30])
def test_a_parent_s_consent_no_longer_counts_once_the_patient_is_of_age(grown, session, age):
    """NL patient (majority 16) at 17, 19, 30 without re-consent: refused, saying when they
    came of age; the same tube was allowed the day before."""
    world = grown(age)
    decision = gate.may_use(session, world.tube, "DEMO")
    assert not decision.allowed
    assert decision.reasons == (f"came of age on {world.of_age}: re-consent needed",)
    day_before = dt.datetime.combine(world.of_age - dt.timedelta(days=1), dt.time(12), clock.zone())
    assert gate.may_use(session, world.tube, "DEMO", day_before).allowed


def test_every_reader_gives_the_same_answer_after_majority(grown, session):
    """Gate, scan card, box map and availability all refuse the grown-up's tube."""
    world = grown(17)
    found = verdicts(session, world.tube, "DEMO", world.box)
    assert agree(found) and not found["gate"], found


def test_the_participant_s_own_consent_restores_what_it_covers(grown, give, session):
    """Re-consent for storage and DEMO by the participant: DEMO allowed again, MRD-NGS (not
    renewed) still refused; every reader agrees."""
    world = grown(19)
    today = clock.today()
    give(world.patient, "storage", today, signed_by="participant")
    assert not gate.may_use(session, world.tube, "DEMO").allowed
    give(world.patient, "DEMO", today, signed_by="participant")
    demo = verdicts(session, world.tube, "DEMO", world.box)
    assert agree(demo) and demo["gate"], demo
    mrd = verdicts(session, world.tube, "MRD-NGS", world.box)
    assert agree(mrd) and not mrd["gate"], mrd
    assert gate.may_use(session, world.tube, "MRD-NGS").reasons == (
        f"came of age on {world.of_age}: re-consent needed",
    )


def test_a_country_s_own_majority_age_applies(grown, session):
    """A German patient of 17 (no row for DE: the DEFAULT majority, 18) still uses the
    parents' consent; at 18 they need their own."""
    reference.create(
        session, ACTOR, "sites", {"code": "DE-T", "name": "Test site, Berlin", "country": "DE"}
    )
    assert gate.may_use(session, grown(17, site="DE-T").tube, "DEMO").allowed
    assert not gate.may_use(session, grown(18, site="DE-T").tube, "DEMO").allowed


def test_re_consent_after_majority_signed_by_a_parent_is_refused(grown, officer):
    """After coming of age only the participant signs: a parent's signature is a 422."""
    world = grown(17)
    answer = officer.post(
        f"/api/v1/patients/{world.patient.study_id}/consent",
        json={
            "component": "storage",
            "decision": "given",
            "form_version": "ICF-IF21-NL-3",
            "signed_on": str(clock.today()),
            "signed_by": "mother",
        },
    )
    assert answer.status_code == 422, answer.json
    assert list(answer.json["errors"]["json"]) == ["signed_by"]
    assert str(world.of_age) in answer.json["message"]
    ok = officer.post(
        f"/api/v1/patients/{world.patient.study_id}/consent",
        json={
            "component": "storage",
            "decision": "given",
            "form_version": "ICF-IF21-NL-3",
            "signed_on": str(clock.today()),
            "signed_by": "participant",
        },
    )
    assert ok.status_code == 201, ok.json


def test_withdrawal_impact_counts_no_sub_study_the_gate_refuses(grown, session):
    """A grown-up withdrawing DEMO: MRD-NGS is not "still usable" without re-consent."""
    world = grown(17)
    impact = withdrawal.plan(
        session,
        ACTOR,
        world.patient,
        {"scope": "DEMO", "date": clock.today(), "requested_by": "participant"},
        dry_run=True,
    )
    assert impact.stays_usable_for == []
