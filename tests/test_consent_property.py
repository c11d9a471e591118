"""Property: whatever consents, withdrawals, re-consents, birthdays, anonymisations and
releases happen, in whatever order, with the clock moving across midnight while the server
sits in zones far east and west of UTC, no tube is released without a basis (consent in force
on the biobank's day, or the tube anonymised and the sub-study accepting that), and for every
tube at every step the gate, the scan card, the box map and availability agree.

The oracle is written independently of ``biobank.consent.rule``: a component's state on a
day is its latest successful change dated on or before that day (ties: the later change);
from the patient's 16th birthday (an NL patient) only a change signed by the participant on
or after it counts. Once anonymised (a storage withdrawal with outcome anonymise; NL allows
it), a tube has no patient: only ANON-OK (open, accepting anonymised material) may take it,
once it has been relabelled. ``test_the_property_catches_a_broken_rule`` breaks the rule on purpose,
three ways, and expects this property to fail.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from consent_helpers import ACTOR, FORM, open_trial_by, studies  # noqa: F401
from consent_views import agree, verdicts
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank import clock
from biobank.consent import anonymise, gate, rule, service, withdrawal
from biobank.consent.models import AnonymisationTask, ConsentEntry, ReleaseJustification
from biobank.errors import Conflict, DomainError
from biobank.patients import service as patients
from biobank.samples import service as samples
from biobank.samples import states
from biobank.samples.models import Aliquot
from biobank.storage import operations
from biobank.storage import service as storage

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
BASE = dt.date(2026, 3, 2)  # the first day of every history (a Monday, before summer time)
NUMBERING = samples.Numbering()
COMPONENTS = ("storage", "DEMO", "MRD-NGS")
SUBSTUDIES = ("DEMO", "MRD-NGS", "ANON-OK")  # ANON-OK: no consent asked, accepts anonymised
SIGNERS = ("mother", "father", "participant")
# The server's own zone at each step: far east and far west of UTC, and the biobank's.
ZONES = (
    "Pacific/Kiritimati",
    "Asia/Tokyo",
    "Europe/Amsterdam",
    "America/Los_Angeles",
    "Pacific/Pago_Pago",
)
EXAMPLES = int(os.environ.get("BIOBANK_PROPERTY_EXAMPLES", "40"))

# Paperwork arrives up to three days late; the clock moves 0–3 days, to a moment a few
# seconds either side of Amsterdam's midnight, or midday.
lag = st.integers(0, 3)
ARGUMENTS = {
    "give": (st.sampled_from(COMPONENTS), st.sampled_from(SIGNERS)),
    "decline": (st.sampled_from(COMPONENTS), st.just("mother")),
    "withdraw": (st.sampled_from((*COMPONENTS, "all")), st.sampled_from(SIGNERS)),
    "anonymise": (st.sampled_from(("storage", "all")), st.sampled_from(SIGNERS)),
    "relabel": (st.integers(0, 2), st.just(None)),
    "release": (st.integers(0, 2), st.sampled_from(SUBSTUDIES)),
    "tick": (
        st.integers(0, 3),
        st.tuples(st.sampled_from(ZONES), st.sampled_from((-2, 1, 43_200))),
    ),
}
operation = st.sampled_from(
    ("give",) * 3
    + ("release",) * 3
    + ("tick",) * 3
    + ("decline", "withdraw", "anonymise", "relabel")
).flatmap(lambda kind: st.tuples(st.just(kind), ARGUMENTS[kind][0], lag, ARGUMENTS[kind][1]))
prologue = st.lists(st.sampled_from(("storage", "storage", *COMPONENTS)), max_size=3).map(
    lambda components: [("give", c, 0, "mother") for c in dict.fromkeys(components)]
)
# Day of the window on which the patient turns 16 (the NL age of majority).
birthday = st.integers(2, 30)
histories = st.tuples(birthday, prologue, st.lists(operation, min_size=3, max_size=30))


@pytest.fixture
def anon_ok(session: Session, studies: Any) -> Any:  # noqa: F811
    """ANON-OK: open, accepting anonymised tubes; nobody ever consents to it."""
    found = service.create_substudy(
        session,
        ACTOR,
        {
            "code": "ANON-OK",
            "title": "Anonymised material",
            "principal_investigator": "Dr. A",
            "open": True,
            "accepts_anonymised": True,
        },
    )
    session.commit()
    return found


class Oracle:
    """The rule, written again: each component's changes (date, order, decision, signer)."""

    def __init__(self, of_age: dt.date) -> None:
        self.changes: dict[str, list[tuple[dt.date, int, str, str]]] = {c: [] for c in COMPONENTS}
        self.of_age = of_age
        self.seq = 0
        self.anonymised = False

    def record(self, component: str, on: dt.date, decision: str, signer: str) -> None:
        self.seq += 1
        self.changes[component].append((on, self.seq, decision, signer))

    def latest(self, component: str, on: dt.date | None = None) -> tuple[Any, ...] | None:
        known = [c for c in self.changes[component] if on is None or c[0] <= on]
        return max(known) if known else None

    def state(self, component: str) -> str | None:
        found = self.latest(component)
        return found[2] if found else None

    def counts(self, component: str, on: dt.date) -> bool:
        found = self.latest(component, on)
        if found is None or found[2] != "given":
            return False
        return on < self.of_age or (found[3] == "participant" and found[0] >= self.of_age)

    def allows(self, substudy: str, on: dt.date) -> bool:
        if self.anonymised:  # no patient, no consent: only the sub-study taking anonymised
            return substudy == "ANON-OK"
        if substudy not in COMPONENTS:
            return False  # ANON-OK: nobody consents to it
        return self.counts("storage", on) and self.counts(substudy, on)


def _moment(day: dt.date, seconds: int) -> dt.datetime:
    """Seconds after (or, negative, before) midnight starting ``day`` in Amsterdam."""
    return dt.datetime.combine(day, dt.time(), AMSTERDAM) + dt.timedelta(seconds=seconds)


def _world(session: Session, of_age: dt.date) -> tuple[Any, list[Any], Any]:
    """An NL patient turning 16 on ``of_age``, three tubes stored in a box (never committed)."""
    born = of_age.replace(year=of_age.year - 16)
    diagnosed = born + dt.timedelta(days=90)
    open_trial_by(session, diagnosed)
    patient = patients.register(
        session,
        ACTOR,
        {
            "study_id": "IF21-PROP-001",
            "site": "NL-PMC",
            "sex": "M",
            "diagnosis": "B-ALL",
            "fusion_partner": "AFF1",
            "diagnosis_date": diagnosed,
            "age_at_diagnosis_days": 90,
            "wbc_at_diagnosis": Decimal("50"),
            "day8_blasts_per_ul": None,
            "prednisone_response": "good",
        },
    )
    collected = dt.datetime.combine(diagnosed, dt.time(9), dt.UTC)
    sample = samples.register_sample(
        session,
        ACTOR,
        {
            "study_id": patient.study_id,
            "timepoint": "DX",
            "unscheduled_reason": None,
            "material": "BM",
            "collected_at": collected,
            "received_at": collected,
            "volume_ml": Decimal("2"),
            "container_code": "PED",
            "precentrifugation_delay_hours": None,
            "precentrifugation_temperature": None,
            "accession_number": None,
            "notes": None,
        },
        NUMBERING,
    )
    tubes = samples.split(
        session,
        ACTOR,
        sample,
        [{"aliquot_type": "PLASMA", "volume_ml": Decimal("0.2")} for _ in range(3)],
        NUMBERING,
    )
    freezer = storage.create_freezer(
        session,
        ACTOR,
        {"site": "NL-PMC", "name": "F-PROP", "freezer_type": "mechanical-80"},
        NUMBERING,
    )
    box = storage.create_box(
        session, ACTOR, {"box_type": "10X10", "parent": freezer.barcode}, NUMBERING
    )
    operations.relocate(
        session, ACTOR, [operations.Target(t, box, 1, i + 1) for i, t in enumerate(tubes)]
    )
    return patient, tubes, box


def _all_agree(session: Session, tubes: list[Any], box: Any, history: Any) -> None:
    """Every reader gives one answer for every available tube and sub-study."""
    for tube in tubes:
        if session.scalar(select(Aliquot.status).where(Aliquot.id == tube.id)) != "available":
            continue
        for code in SUBSTUDIES:
            found = verdicts(session, tube, code, box)
            assert agree(found), (history, tube.barcode, code, found)


def check_history(
    session: Session, birthday_offset: int, ops: list[tuple[str, Any, int, Any]]
) -> None:
    """Run one history and hold the gate, the card, the map and availability to the oracle."""
    of_age = BASE + dt.timedelta(days=birthday_offset)
    oracle = Oracle(of_age)
    day = BASE
    released: list[tuple[int, str, dt.date]] = []
    now = _moment(day, 43_200)
    with time_machine.travel(now.astimezone(ZoneInfo("Asia/Tokyo")), tick=False) as traveller:
        patient, tubes, box = _world(session, of_age)
        for index, (kind, what, late, extra) in enumerate(ops):
            history = ops[: index + 1]
            assert clock.today() == day, history
            if kind == "tick":
                zone, seconds = extra
                day += dt.timedelta(days=what)
                # -2: two seconds before the midnight that ends ``day``; 1: one second after
                # the one that starts it; 43,200: midday. The clock never runs back.
                moment = (
                    _moment(day + dt.timedelta(days=1), -2)
                    if seconds < 0
                    else _moment(day, seconds)
                )
                now = max(moment, now)
                traveller.move_to(now.astimezone(ZoneInfo(zone)))
                _all_agree(session, tubes, box, history)
                continue
            on = max(BASE, day - dt.timedelta(days=late))
            if kind == "relabel":
                task = session.scalar(
                    select(AnonymisationTask.id).where(
                        AnonymisationTask.aliquot_id == tubes[what].id
                    )
                )
                if task is not None:
                    anonymise.complete_task(session, ACTOR, task)
                    _all_agree(session, tubes, box, history)
                continue
            if kind == "release":
                tube = tubes[what]
                status = session.scalar(select(Aliquot.status).where(Aliquot.id == tube.id))
                expected = status in states.RELEASABLE and oracle.allows(extra, day)
                try:
                    with session.begin_nested():
                        gate.justify_release(
                            session, ACTOR, [tube.id], extra, "request", f"R-{index}"
                        )
                except Conflict:
                    assert not expected, (history, "refused a release consent allowed")
                else:
                    assert expected, (history, "released without consent in force")
                    released.append((tube.id, extra, day))
                continue
            current = {c: oracle.state(c) for c in COMPONENTS}
            try:
                with session.begin_nested():
                    if kind in ("withdraw", "anonymise"):
                        withdrawal.withdraw(
                            session,
                            ACTOR,
                            patient,
                            {
                                "scope": what,
                                "date": on,
                                "requested_by": extra,
                                "outcome": "anonymise" if kind == "anonymise" else None,
                            },
                        )
                    else:
                        service.record_consent(
                            session,
                            ACTOR,
                            patient,
                            {
                                "component": what,
                                "decision": "given" if kind == "give" else "declined",
                                "signed_on": on,
                                "form_version": FORM,
                                "signed_by": extra,
                            },
                        )
            except DomainError:
                continue
            if kind == "anonymise":
                oracle.anonymised = oracle.anonymised or oracle.state("storage") == "given"
            if kind in ("withdraw", "anonymise"):
                for component in COMPONENTS if what == "all" else (what,):
                    if what != "all" or current[component] == "given":
                        oracle.record(component, on, "withdrawn", extra)
            else:
                oracle.record(what, on, "given" if kind == "give" else "declined", extra)
            _all_agree(session, tubes, box, history)
    _check_justifications(session, released)


def _check_justifications(session: Session, released: list[tuple[int, str, dt.date]]) -> None:
    """Every stored release names a given storage entry and a given entry of its sub-study,
    signed by the participant when the release came after the 16th birthday."""
    rows = session.scalars(select(ReleaseJustification).order_by(ReleaseJustification.id)).all()
    assert [r.aliquot_id for r in rows] == [tube for tube, _, _ in released]
    for row, (_, code, on) in zip(rows, released, strict=True):
        assert clock.day_of(row.released_at) == on
        if row.basis == "anonymised":  # no consent entry: the tube had no patient by then
            assert code == "ANON-OK" and row.consent_entry_ids == []
            continue
        assert row.basis == "consent"
        storage_entry = session.get(ConsentEntry, row.storage_consent_id)
        own = session.get(ConsentEntry, row.substudy_consent_id)
        assert storage_entry and storage_entry.component == "storage"
        assert own and own.component_code == code
        for entry in (storage_entry, own):
            assert entry.decision == "given" and entry.effective_date <= on


def _in_a_fresh_biobank(
    session: Session, birthday_offset: int, ops: list[tuple[str, Any, int, Any]]
) -> None:
    example_ = session.begin_nested()  # each example starts from the same empty biobank
    try:
        check_history(session, birthday_offset, ops)
    finally:
        example_.rollback()


def _property(ops_and_birthday: tuple[int, list[Any], list[Any]], session: Session) -> None:
    birthday_offset, first, rest = ops_and_birthday
    _in_a_fresh_biobank(session, birthday_offset, first + rest)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(
    history=(
        20,
        [],
        [  # a sub-study withdrawn: its releases stop, the other's go on
            ("give", "storage", 0, "mother"),
            ("give", "DEMO", 0, "mother"),
            ("give", "MRD-NGS", 0, "mother"),
            ("release", 0, 0, "DEMO"),
            ("tick", 1, 0, ("Pacific/Kiritimati", 1)),
            ("withdraw", "DEMO", 0, "mother"),
            ("release", 1, 0, "DEMO"),
            ("release", 1, 0, "MRD-NGS"),
        ],
    )
)
@example(
    history=(
        3,
        [],
        [  # the 16th birthday passes: the parents' consent stops counting
            ("give", "storage", 0, "mother"),
            ("give", "DEMO", 0, "mother"),
            ("release", 0, 0, "DEMO"),
            ("tick", 3, 0, ("Pacific/Pago_Pago", -2)),
            ("tick", 1, 0, ("Pacific/Pago_Pago", 1)),
            ("release", 1, 0, "DEMO"),
            ("give", "storage", 0, "mother"),
            ("give", "storage", 0, "participant"),
            ("release", 1, 0, "DEMO"),
            ("give", "DEMO", 0, "participant"),
            ("release", 1, 0, "DEMO"),
        ],
    )
)
@example(
    history=(
        25,
        [],
        [  # everything withdrawn, late paperwork, a day boundary
            ("give", "storage", 0, "mother"),
            ("give", "DEMO", 0, "mother"),
            ("tick", 2, 0, ("America/Los_Angeles", -2)),
            ("withdraw", "all", 1, "mother"),
            ("release", 0, 0, "DEMO"),
            ("tick", 0, 0, ("Asia/Tokyo", 1)),
            ("release", 0, 0, "DEMO"),
        ],
    )
)
@example(
    history=(
        20,
        [],
        [  # anonymised: only ANON-OK, once relabelled; re-consent no undo
            ("give", "storage", 0, "mother"),
            ("give", "DEMO", 0, "mother"),
            ("release", 0, 0, "DEMO"),
            ("anonymise", "storage", 0, "mother"),
            ("release", 1, 0, "ANON-OK"),
            ("relabel", 1, 0, None),
            ("release", 1, 0, "DEMO"),
            ("release", 1, 0, "ANON-OK"),
            ("give", "storage", 0, "mother"),
            ("tick", 1, 0, ("Asia/Tokyo", 1)),
            ("relabel", 2, 0, None),
            ("release", 2, 0, "DEMO"),
            ("release", 2, 0, "ANON-OK"),
        ],
    )
)
@given(history=histories)
def test_no_release_without_consent_in_force(session, anon_ok, history):
    """Random histories keep the gate's promise, and every reader agrees at every step."""
    _property(history, session)


# --- the property catches a broken rule ---------------------------------------------------


def _ignore_majority(original: Any) -> Any:
    def broken(entry: Any, day: dt.date, of_age: dt.date | None) -> str:
        found = original(entry, day, of_age)
        return "given" if found == rule.RECONSENT else found

    return broken


def _sql_a_day_late(original: Any) -> Any:
    def broken(substudy: Any, day: dt.date) -> Any:
        return original(substudy, day - dt.timedelta(days=1))

    return broken


def _state_ignores_withdrawals(original: Any) -> Any:
    def broken(entries: Any, day: dt.date | None = None) -> Any:
        return original([e for e in entries if e.decision != "withdrawn"], day)

    return broken


def _anonymised_go_anywhere(_original: Any) -> Any:
    def broken(substudy: Any) -> bool:
        return True

    return broken


MUTANTS = {
    "standing ignores the age of majority": ("standing", _ignore_majority),
    "anonymised tubes go to any sub-study": ("takes_anonymised", _anonymised_go_anywhere),
    "the SQL form reads yesterday": ("consented_patients", _sql_a_day_late),
    "state_on ignores withdrawals": ("state_on", _state_ignores_withdrawals),
}


@pytest.mark.parametrize("mutant", MUTANTS)
def test_the_property_catches_a_broken_rule(session, anon_ok, monkeypatch, mutant):
    """With the rule broken on purpose, the property above fails."""
    name, make = MUTANTS[mutant]
    monkeypatch.setattr(rule, name, make(getattr(rule, name)))

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @example(
        history=(
            3,
            [],
            [
                ("give", "storage", 0, "mother"),
                ("give", "DEMO", 0, "mother"),
                ("give", "MRD-NGS", 0, "mother"),
                ("withdraw", "DEMO", 0, "mother"),
                ("tick", 3, 0, ("Asia/Tokyo", 1)),
                ("release", 0, 0, "MRD-NGS"),
            ],
        )
    )
    @example(
        history=(
            20,
            [],
            [
                ("give", "storage", 0, "mother"),
                ("give", "DEMO", 0, "mother"),
                ("anonymise", "storage", 0, "mother"),
                ("relabel", 0, 0, None),
                ("release", 0, 0, "DEMO"),
            ],
        )
    )
    @given(history=histories)
    def run(history: Any) -> None:
        _property(history, session)

    with pytest.raises(AssertionError):
        run()
