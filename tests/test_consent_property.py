"""Property: whatever consents, withdrawals and releases happen, in whatever order and with
whatever dates, no tube is ever released without consent in force for that sub-study then."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank import clock
from biobank.consent import gate, service, withdrawal
from biobank.consent.models import ConsentEntry, ReleaseJustification
from biobank.errors import Conflict, DomainError
from biobank.patients import service as patients
from biobank.samples import service as samples
from biobank.samples.models import Aliquot
from consent_helpers import ACTOR, FORM, studies  # noqa: F401

BASE = clock.today() - dt.timedelta(days=60)
NUMBERING = samples.Numbering()
COMPONENTS = ("storage", "DEMO", "MRD-NGS")
SUBSTUDIES = ("DEMO", "MRD-NGS")

# Days mostly move forward (a few days per step) but may jump back: late paperwork.
step = st.integers(-3, 6)
ARGUMENTS = {
    "give": (st.sampled_from(COMPONENTS), st.sampled_from(("mother", "father", "participant"))),
    "decline": (st.sampled_from(COMPONENTS), st.just("mother")),
    "withdraw": (st.sampled_from((*COMPONENTS, "all")), st.just("mother")),
    "release": (st.integers(0, 2), st.sampled_from(SUBSTUDIES)),
}
# Weighted towards consent being given and tubes being released, so releases do happen.
operation = st.sampled_from(("give",) * 3 + ("release",) * 4 + ("decline", "withdraw")).flatmap(
    lambda kind: st.tuples(st.just(kind), ARGUMENTS[kind][0], step, ARGUMENTS[kind][1]))
# Most histories start with the parents' signature at diagnosis.
prologue = st.lists(st.sampled_from(("storage", "storage", *COMPONENTS)), max_size=3).map(
    lambda components: [("give", c, 0, "mother") for c in dict.fromkeys(components)])
sequences = st.tuples(prologue, st.lists(operation, min_size=3, max_size=30)).map(
    lambda parts: parts[0] + parts[1])


def _dated(ops: list[tuple[str, Any, int, str]]) -> list[tuple[str, Any, dt.date, str]]:
    """Steps → dates between BASE and today."""
    day, dated = 0, []
    for kind, what, delta, extra in ops:
        day = max(0, min(60, day + delta))
        dated.append((kind, what, BASE + dt.timedelta(days=day), extra))
    return dated


class Oracle:
    """The rule, written independently: a component's state on a day is its latest
    successful change dated on or before that day (ties: the later change)."""

    def __init__(self) -> None:
        self.changes: dict[str, list[tuple[dt.date, int, str]]] = {c: [] for c in COMPONENTS}
        self.seq = 0

    def record(self, component: str, on: dt.date, decision: str) -> None:
        self.seq += 1
        self.changes[component].append((on, self.seq, decision))

    def state(self, component: str, on: dt.date | None = None) -> str | None:
        known = [c for c in self.changes[component] if on is None or c[0] <= on]
        return max(known)[2] if known else None

    def allows(self, substudy: str, on: dt.date) -> bool:
        return self.state("storage", on) == "given" and self.state(substudy, on) == "given"


def _run(session: Session, patient: Any, tubes: list[Any],
         ops: list[tuple[str, Any, dt.date, str]]) -> None:
    oracle = Oracle()
    released: list[tuple[int, str, dt.date]] = []
    for index, (kind, what, on, extra) in enumerate(ops):
        if kind == "release":
            tube, at = tubes[what], dt.datetime.combine(on, dt.time(12), dt.UTC)
            status = session.scalar(select(Aliquot.status).where(Aliquot.id == tube.id))
            expected = status in gate.USABLE and oracle.allows(extra, on)
            try:
                with session.begin_nested():
                    gate.justify_release(session, ACTOR, [tube.id], extra, "request",
                                         f"R-{index}", at)
            except Conflict:
                assert not expected, (ops[:index + 1], "refused a release consent allowed")
            else:
                assert expected, (ops[:index + 1], "released without consent in force")
                released.append((tube.id, extra, on))
            continue
        try:
            with session.begin_nested():
                if kind == "withdraw":
                    current = {c: oracle.state(c) for c in COMPONENTS}
                    withdrawal.withdraw(session, ACTOR, patient,
                                        {"scope": what, "date": on, "requested_by": extra})
                else:
                    service.record_consent(session, ACTOR, patient, {
                        "component": what, "decision": "given" if kind == "give" else "declined",
                        "signed_on": on, "form_version": FORM, "signed_by": extra})
        except DomainError:
            continue
        if kind == "withdraw":
            for component in COMPONENTS if what == "all" else (what,):
                if what != "all" or current[component] == "given":
                    oracle.record(component, on, "withdrawn")
        else:
            oracle.record(what, on, "given" if kind == "give" else "declined")
    _check_justifications(session, released)


def _check_justifications(session: Session, released: list[tuple[int, str, dt.date]]) -> None:
    """Every stored release names a given storage entry and a given entry of its sub-study."""
    rows = session.scalars(select(ReleaseJustification).order_by(ReleaseJustification.id)).all()
    assert [(r.aliquot_id, r.released_at.date()) for r in rows] == [
        (tube, on) for tube, _, on in released]
    for row, (_, code, on) in zip(rows, released, strict=True):
        storage = session.get(ConsentEntry, row.storage_consent_id)
        own = session.get(ConsentEntry, row.substudy_consent_id)
        assert storage and storage.component == "storage" and storage.decision == "given"
        assert own and own.component_code == code and own.decision == "given"
        assert storage.effective_date <= on and own.effective_date <= on


def _patient_with_tubes(session: Session) -> tuple[Any, list[Any]]:
    """A patient with three tubes, made through the services (flushed, never committed)."""
    diagnosed = BASE - dt.timedelta(days=30)
    patient = patients.register(session, ACTOR, {
        "study_id": "IF21-PROP-001", "site": "NL-PMC", "sex": "M", "diagnosis": "B-ALL",
        "fusion_partner": "AFF1", "diagnosis_date": diagnosed, "age_at_diagnosis_days": 90,
        "wbc_at_diagnosis": Decimal("50"), "day8_blasts_per_ul": None,
        "prednisone_response": "good"})
    collected = dt.datetime.combine(diagnosed, dt.time(9), dt.UTC)
    sample = samples.register_sample(session, ACTOR, {
        "study_id": patient.study_id, "timepoint": "DX", "unscheduled_reason": None,
        "material": "BM", "collected_at": collected, "received_at": collected,
        "volume_ml": Decimal("2"), "container_code": "PED",
        "precentrifugation_delay_hours": None, "precentrifugation_temperature": None,
        "accession_number": None, "notes": None}, NUMBERING)
    tubes = samples.split(session, ACTOR, sample, [
        {"aliquot_type": "PLASMA", "volume_ml": Decimal("0.2")} for _ in range(3)], NUMBERING)
    return patient, tubes


@settings(max_examples=50, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@example(ops=[  # a sub-study withdrawn: its releases stop, the other's go on
    ("give", "storage", 0, "mother"), ("give", "DEMO", 0, "mother"),
    ("give", "MRD-NGS", 0, "mother"), ("release", 0, 2, "DEMO"),
    ("withdraw", "DEMO", 2, "mother"), ("release", 1, 0, "DEMO"), ("release", 1, 0, "MRD-NGS"),
    ("release", 2, -3, "DEMO")])
@example(ops=[  # storage withdrawn, then given again by the participant
    ("give", "storage", 0, "mother"), ("give", "MRD-NGS", 0, "mother"),
    ("withdraw", "storage", 3, "father"), ("release", 0, 1, "MRD-NGS"),
    ("give", "storage", 2, "participant"), ("release", 0, 0, "MRD-NGS"),
    ("release", 1, -6, "MRD-NGS")])
@example(ops=[  # everything withdrawn, a release dated before the withdrawal still allowed
    ("give", "storage", 0, "mother"), ("give", "DEMO", 0, "mother"),
    ("withdraw", "all", 5, "mother"), ("release", 0, -2, "DEMO"), ("release", 0, 2, "DEMO")])
@given(ops=sequences)
def test_no_release_without_consent_in_force(session, studies, ops):
    """Random sequences of consents, withdrawals and releases keep the gate's promise."""
    example = session.begin_nested()  # each example starts from the same empty biobank
    try:
        _run(session, *_patient_with_tubes(session), _dated(ops))
    finally:
        example.rollback()
