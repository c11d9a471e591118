"""Availability: what a sub-study may receive, counted in one query by timepoint × material ×
aliquot type, pseudonymised; and the SQL rule agreeing with the gate on random data."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest
from requests_helpers import ACTOR, NUMBERING, donor, freezer, give, researcher, statuses, studies  # noqa: F401
from sqlalchemy import delete, func, insert, select

from biobank import clock
from biobank.consent import gate, rule
from biobank.consent.models import ConsentEntry, Substudy, Withdrawal
from biobank.patients import service as patients
from biobank.reference.models import AliquotType, Material, Timepoint
from biobank.requests import availability
from biobank.requests.models import AvailabilityTally
from biobank.samples import service as samples
from biobank.samples import states
from biobank.samples.models import Aliquot, Sample

URL = "/api/v1/requests/availability"


def test_counts_only_available_tubes_that_pass_the_gate(researcher, donor, session):
    """By timepoint, material and aliquot type, with patients per group; tubes without DEMO
    consent, reserved tubes and other statuses do not count."""
    first = donor({"DX": 3, "EOI": 2}, "DEMO")
    donor({"DX": 2}, "DEMO")
    donor({"DX": 4}, "MRD-NGS")  # storage, but not DEMO: not counted
    donor({"DX": 4})  # storage only
    held = first.by_timepoint["DX"][0]
    held.status = "reserved"
    session.commit()
    answer = researcher.get(URL).json  # their only sub-study, unnamed
    assert answer["substudy"] == "DEMO" and answer["aliquots"] == 6
    assert answer["as_of"] == str(clock.today())
    assert answer["groups"] == [
        {
            "timepoint": "DX",
            "material": "BM",
            "aliquot_type": "PLASMA",
            "aliquots": 4,
            "patients": 2,
        },
        {
            "timepoint": "EOI",
            "material": "BM",
            "aliquot_type": "PLASMA",
            "aliquots": 2,
            "patients": 1,
        },
    ]
    for private in ("study_id", "accession", "notes", "signed_by", "barcode"):
        assert private not in str(answer)


def test_filters_narrow_the_counts(researcher, donor, session):
    """Risk group, diagnosis, minimum volume, freeze–thaw count and MRD status."""
    hr = donor({"DX": 2, "EOI": 1}, "DEMO", age_at_diagnosis_days=60, wbc_at_diagnosis=Decimal(400))
    mr = donor({"DX": 2, "EOI": 1}, "DEMO", volume="0.1", diagnosis="B-MPAL")
    assert (hr.patient.risk_group, mr.patient.risk_group) == ("HR", "MR")
    mr.tubes[0].freeze_thaw_count = 2
    patients.record_mrd(
        session,
        ACTOR,
        hr.patient,
        {
            "timepoint": "EOI",
            "value_percent": Decimal("0.5"),
            "method": "PCR",
            "measured_on": clock.today(),
        },
    )
    patients.record_mrd(
        session,
        ACTOR,
        mr.patient,
        {
            "timepoint": "EOI",
            "value_percent": Decimal("0.005"),
            "method": "PCR",
            "measured_on": clock.today(),
        },
    )
    session.commit()

    def total(**query):  # type: ignore[no-untyped-def]
        response = researcher.get(URL, query_string=query)
        assert response.status_code == 200, response.json
        return response.json["aliquots"]

    assert total() == 6
    assert total(risk_groups="HR") == 3
    assert total(diagnoses="B-MPAL") == 3
    assert total(min_volume_ml="0.25") == 3
    assert total(max_freeze_thaw=0) == 5
    assert total(mrd_status="positive") == 1  # HR's EOI tube (MRD at its own timepoint)
    assert total(mrd_status="unknown") == 4  # nobody measures MRD at diagnosis
    assert total(mrd_status="negative", mrd_timepoint="EOI") == 3  # all of MR's tubes
    assert total(timepoints=["DX", "EOI"], materials="BM", aliquot_types="PLASMA") == 6


def test_criteria_that_match_nothing_are_a_200_with_zero(researcher, donor):
    """Nothing matches: zero groups, not an error; an unknown code is a 422 naming it."""
    donor({"DX": 2}, "DEMO")
    empty = researcher.get(URL, query_string={"materials": "CSF"})
    assert empty.status_code == 200 and empty.json["aliquots"] == 0 and empty.json["groups"] == []
    wrong = researcher.get(URL, query_string={"timepoints": ["DX", "NOPE"]})
    assert wrong.status_code == 422 and "timepoints.1" in wrong.json["errors"]["json"]
    lonely = researcher.get(URL, query_string={"mrd_timepoint": "EOI"})
    assert lonely.status_code == 422


def test_only_researchers_of_the_substudy_see_its_availability(as_role, manager, studies):  # noqa: F811
    """Another sub-study is a 404 to a researcher; managers name any; technicians are 403."""
    outsider = as_role("researcher", substudies=["MRD-NGS", "OLD"])
    assert outsider.get(URL, query_string={"substudy": "DEMO"}).status_code == 404
    assert outsider.get(URL).status_code == 422  # two sub-studies: say which
    assert manager.get(URL, query_string={"substudy": "DEMO"}).status_code == 200
    assert manager.get(URL, query_string={"substudy": "NOPE"}).status_code == 404
    assert as_role("technician").get(URL, query_string={"substudy": "DEMO"}).status_code == 403


def test_a_closed_substudy_has_nothing_available(manager, donor):
    """The gate refuses every tube of a closed sub-study, and so does the count."""
    donor({"DX": 2}, "OLD")
    assert manager.get(URL, query_string={"substudy": "OLD"}).json["aliquots"] == 0


def test_availability_is_one_aggregate_query(researcher, donor, session, count_queries):
    """However many tubes: the sub-study, then one query (consent rule inside)."""
    for _ in range(3):
        donor({"DX": 3, "EOI": 2}, "DEMO")
    substudy = session.scalar(select(Substudy).where(Substudy.code == "DEMO"))
    filters = availability.resolve(session, {})
    with count_queries() as counted:
        found = availability.count(session, substudy, filters)
    assert found.aliquots == 15 and counted.count == 1


# --- the SQL rule and the gate agree ---------------------------------------------------


def _random_log(
    session,
    rng,
    patient_id: int,
    substudies: dict[str, int],  # type: ignore[no-untyped-def]
    form: int,
) -> None:
    """Entries in any order and date (some in the future), withdrawals, corrections."""
    entries: list[ConsentEntry] = []
    today = clock.today()
    # Most parents sign storage and some sub-studies at first; then anything may happen.
    plan = [
        (c, "given", rng.randint(-60, -30))
        for c in ("storage", *substudies)
        if rng.random() < (0.85 if c == "storage" else 0.6)
    ]
    plan += [
        (
            rng.choice(["storage", "storage", *substudies]),
            rng.choice(["given", "given", "declined", "withdrawn", "withdrawn"]),
            rng.randint(-30, 3),
        )
        for _ in range(rng.randint(0, 4))
    ]
    for component, decision, offset in plan:
        substudy_id = substudies.get(component)
        day = today + dt.timedelta(days=offset)
        withdrawal_id = None
        if decision == "withdrawn":
            withdrawal = Withdrawal(
                patient_id=patient_id,
                withdrawn_on=day,
                scope="substudy" if substudy_id else "storage",
                substudy_id=substudy_id,
                requested_by="mother",
                recorded_by=ACTOR,
            )
            session.add(withdrawal)
            session.flush()
            withdrawal_id = withdrawal.id
        same = [
            e
            for e in entries
            if e.substudy_id == substudy_id
            and e.corrects_id is None
            and e.id not in {x.corrects_id for x in entries}
        ]
        corrects = rng.choice(same).id if same and rng.random() < 0.25 else None
        entry = ConsentEntry(
            patient_id=patient_id,
            component="substudy" if substudy_id else "storage",
            substudy_id=substudy_id,
            decision=decision,
            effective_date=day,
            form_version_id=None if decision == "withdrawn" else form,
            signed_by="mother",
            withdrawal_id=withdrawal_id,
            corrects_id=corrects,
            reason="correction" if corrects else None,
            recorded_by=ACTOR,
        )
        session.add(entry)
        session.flush()
        entries.append(entry)


@pytest.mark.parametrize("seed", range(6))
def test_the_sql_rule_counts_exactly_what_the_gate_allows(
    seed,
    studies,
    make_patient,  # noqa: F811
    make_aliquots,
    make_sample,
    session,
):
    """Random consent logs and tube statuses: availability == tubes may_use allows and that
    are available, for each sub-study (open or closed)."""
    rng = random.Random(seed)
    substudies = {s.code: s.id for s in (studies.demo, studies.mrd_ngs, studies.old)}
    tubes = []
    for _ in range(12):
        patient = make_patient()
        made = make_aliquots(rng.randint(1, 4), parent=make_sample(patient), volume="0.1")
        for tube in made:
            tube.status = rng.choice(["available", "available", "reserved", "blocked", "shipped"])
        tubes += made
        _random_log(session, rng, patient.id, substudies, studies.form.id)
    session.commit()
    ids = [t.id for t in tubes]
    owner = dict(
        session.execute(
            select(Aliquot.id, Sample.patient_id)
            .join(Sample, Sample.id == Aliquot.sample_id)
            .where(Aliquot.id.in_(ids))
        ).all()
    )
    status = dict(
        session.execute(select(Aliquot.id, Aliquot.status).where(Aliquot.id.in_(ids))).all()
    )
    for code in substudies:
        decisions = gate.may_use(session, ids, code)
        expected = sum(1 for i, d in decisions.items() if d.allowed and status[i] == "available")
        substudy = session.scalar(select(Substudy).where(Substudy.code == code))
        counted = availability.count(session, substudy, availability.resolve(session, {}))
        assert counted.aliquots == expected, (seed, code)
        in_sql = set(session.scalars(rule.consented_patients(substudy, availability.today())))
        for tube in tubes:
            if status[tube.id] in states.RELEASABLE:  # the gate judges consent, tube by tube
                assert decisions[tube.id].allowed == (owner[tube.id] in in_sql), (seed, code)


# --- the tally the counts are read from ---------------------------------------------------


def _tally(session, patients) -> dict[tuple[int, int, int, int], int]:  # type: ignore[no-untyped-def]
    tally = AvailabilityTally
    return {
        (t.timepoint_key, t.material_id, t.aliquot_type_id, t.patient_id): t.tubes
        for t in session.scalars(
            select(tally).where(tally.tubes > 0, tally.patient_id.in_([p.id for p in patients]))
        )
    }


def _recount(session, patients) -> dict[tuple[int, int, int, int], int]:  # type: ignore[no-untyped-def]
    key = (
        func.coalesce(Sample.timepoint_id, 0),
        Sample.material_id,
        Aliquot.aliquot_type_id,
        Sample.patient_id,
    )
    return {
        tuple(row[:4]): row[4]
        for row in session.execute(
            select(*key, func.count())
            .join(Sample, Sample.id == Aliquot.sample_id)
            .where(Aliquot.status == "available", Sample.patient_id.in_([p.id for p in patients]))
            .group_by(*key)
        )
    }


def test_the_tally_follows_every_change_to_tubes_and_samples(
    session, make_patient, make_sample, make_aliquots
):
    """New tubes, status changes both ways, a type corrected, a tube moved to another sample,
    samples corrected to another timepoint, to none, to another material or patient, a tube
    deleted: after each, the tally is a recount of the available tubes."""
    first, second = make_patient(), make_patient()
    dx = make_sample(first)
    unscheduled = make_sample(first, timepoint=None, unscheduled_reason="suspected relapse")
    tubes = make_aliquots(4, parent=dx) + make_aliquots(2, parent=unscheduled)
    assert _tally(session, (first, second)) == _recount(session, (first, second)) != {}
    types = dict(session.execute(select(AliquotType.code, AliquotType.id)).all())
    timepoints = dict(session.execute(select(Timepoint.code, Timepoint.id)).all())
    materials = dict(session.execute(select(Material.code, Material.id)).all())
    changes = [
        lambda: setattr(tubes[0], "status", "reserved"),
        lambda: setattr(tubes[0], "status", "available"),
        lambda: setattr(tubes[1], "status", "shipped"),
        lambda: setattr(tubes[2], "aliquot_type_id", types["PLASMA2"]),
        lambda: setattr(tubes[1], "aliquot_type_id", types["PELLET"]),  # not available: no-op
        lambda: setattr(tubes[3], "sample_id", unscheduled.id),
        lambda: setattr(dx, "timepoint_id", timepoints["EOI"]),
        lambda: (
            setattr(dx, "timepoint_id", None),
            setattr(dx, "unscheduled_reason", "moved by a correction"),
        ),
        lambda: setattr(unscheduled, "timepoint_id", timepoints["D15"]),
        lambda: setattr(unscheduled, "material_id", materials["PB"]),
        lambda: setattr(dx, "patient_id", second.id),
        lambda: setattr(tubes[1], "status", "available"),
        # Tubes with a custody log are never deleted; a bare row written in SQL may be.
        lambda: session.execute(
            insert(Aliquot).values(
                barcode="TALLY-BARE",
                sample_id=unscheduled.id,
                aliquot_type_id=types["PLASMA"],
                volume_ml=Decimal("0.1"),
                volume_remaining_ml=Decimal("0.1"),
                status="available",
            )
        ),
        lambda: session.execute(delete(Aliquot).where(Aliquot.barcode == "TALLY-BARE")),
    ]
    for number, change in enumerate(changes):
        change()
        session.flush()
        assert _tally(session, (first, second)) == _recount(session, (first, second)), number


@pytest.mark.parametrize("seed", range(4))
def test_the_tally_and_the_tubes_count_the_same(
    seed,
    studies,
    make_patient,
    make_sample,  # noqa: F811
    session,
):
    """Random samples (some unscheduled), tube types and statuses, consent logs and MRD:
    availability read from the tally == counted from the tubes, for every sub-study and
    criteria the tally answers."""
    rng = random.Random(seed)
    substudies = {s.code: s.id for s in (studies.demo, studies.mrd_ngs, studies.old)}
    for _ in range(10):
        patient = make_patient(
            age_at_diagnosis_days=rng.choice((60, 250)),
            wbc_at_diagnosis=Decimal(rng.choice((100, 400))),
            diagnosis=rng.choice(("B-ALL", "B-MPAL")),
        )
        for _ in range(rng.randint(1, 3)):
            timepoint = rng.choice(("DX", "EOI", None))
            sample = make_sample(
                patient,
                timepoint=timepoint,
                material=rng.choice(("BM", "PB")),
                unscheduled_reason=None if timepoint else "clinical question",
            )
            made = samples.split(
                session,
                ACTOR,
                sample,
                [
                    {"aliquot_type": rng.choice(("PLASMA", "PLASMA2")), "volume_ml": Decimal("0.1")}
                    for _ in range(rng.randint(1, 4))
                ],
                NUMBERING,
            )
            for tube in made:
                tube.status = rng.choice(["available", "available", "reserved", "shipped"])
        if rng.random() < 0.6:
            patients.record_mrd(
                session,
                ACTOR,
                patient,
                {
                    "timepoint": "EOI",
                    "value_percent": Decimal(rng.choice(("0.005", "0.5"))),
                    "method": "PCR",
                    "measured_on": clock.today(),
                },
            )
        _random_log(session, rng, patient.id, substudies, studies.form.id)
    session.commit()
    every = [
        {},
        {"materials": ["PB"]},
        {"timepoints": ["DX", "EOI"]},
        {"aliquot_types": ["PLASMA2"]},
        {"risk_groups": ["HR"]},
        {"diagnoses": ["B-MPAL"]},
        {"mrd_status": "positive"},
        {"mrd_status": "unknown"},
        {"mrd_status": "negative", "mrd_timepoint": "EOI"},
    ]
    day = availability.today()
    for code in substudies:
        substudy = session.scalar(select(Substudy).where(Substudy.code == code))
        for criteria in every:
            filters = availability.resolve(session, criteria)
            assert not availability.has_tube_conditions(filters)
            tally = availability.named(
                session, substudy, day, availability.counted_from_tally(filters, substudy, day)
            )
            tubes = availability.named(
                session, substudy, day, availability.counted_from_tubes(filters, substudy, day)
            )
            assert tally == tubes, (seed, code, criteria)
            assert tally == availability.count(session, substudy, filters)
