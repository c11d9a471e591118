"""The consent rule's three forms agree over random consent logs: its SQL form
(``rule.consented_patients``, which availability and allocation use) and its JSON-log form
(``rule.log_column`` read back by ``rule.read_log``, which the scan card and the box map use)
give, on every day, the answer of its Python form (``rule.state_on`` and ``rule.standing``,
which the gate uses).

The logs are any the table can hold, not only those the service writes: entries of storage
and a sub-study, given, declined or withdrawn, signed by a parent or the participant, dated
around the day the patient comes of age, several on one day, and corrections of the latest
uncorrected entry. Every day on which the answer can change is asked, and the day before.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from consent_helpers import ACTOR, open_trial_by, studies  # noqa: F401
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from biobank import clock
from biobank.consent import rule, service
from biobank.consent.models import ConsentEntry, Withdrawal

EXAMPLES = int(os.environ.get("BIOBANK_PROPERTY_EXAMPLES", "30"))
SPAN = 40  # the log's days: the patient comes of age somewhere inside them

# (component, decision, day, signed by, whether it corrects the latest uncorrected entry)
LINE = st.tuples(
    st.sampled_from(["storage", "substudy"]),
    st.sampled_from(["given", "given", "declined", "withdrawn"]),
    st.integers(0, SPAN),
    st.sampled_from(["mother", "participant"]),
    st.booleans(),
)


def _patient_of_age_on(session: Any, make_patient: Any, day: dt.date) -> Any:
    """An NL patient (majority 16) who comes of age on ``day`` (or the day after, for a
    29 February)."""
    try:
        born = day.replace(year=day.year - 16)
    except ValueError:
        born = day.replace(year=day.year - 16, day=28)
    diagnosed = born + dt.timedelta(days=100)
    open_trial_by(session, diagnosed)
    return make_patient(site="NL-PMC", diagnosis_date=diagnosed, age_at_diagnosis_days=100)


def _write(
    session: Any,
    patient: Any,
    substudy: Any,
    form: Any,
    lines: list[tuple[str, str, int, str, bool]],
    start: dt.date,
) -> None:
    """The log as rows, straight into the table (a withdrawn entry with its withdrawal)."""
    written: list[ConsentEntry] = []
    for component, decision, day, signed_by, corrects in lines:
        substudy_id = substudy.id if component == "substudy" else None
        target = next(
            (
                e
                for e in reversed(written)
                if (e.component, e.substudy_id) == (component, substudy_id)
                and not any(w.corrects_id == e.id for w in written)
            ),
            None,
        )
        withdrawal = None
        if decision == "withdrawn":
            withdrawal = Withdrawal(
                patient_id=patient.id,
                scope=component,
                substudy_id=substudy_id,
                withdrawn_on=start + dt.timedelta(day),
                requested_by=signed_by,
                recorded_by=ACTOR,
            )
            session.add(withdrawal)
            session.flush()
        entry = ConsentEntry(
            patient_id=patient.id,
            component=component,
            substudy_id=substudy_id,
            decision=decision,
            effective_date=start + dt.timedelta(day),
            form_version_id=None if withdrawal else form.id,
            signed_by=signed_by,
            withdrawal_id=withdrawal.id if withdrawal else None,
            corrects_id=target.id if corrects and target else None,
            reason="corrected" if corrects and target else None,
            recorded_by=ACTOR,
        )
        session.add(entry)
        session.flush()
        written.append(entry)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lines=st.lists(LINE, min_size=1, max_size=8), of_age=st.integers(0, SPAN))
@example(
    lines=[("storage", "given", 0, "mother", False), ("substudy", "given", 0, "mother", False)],
    of_age=SPAN // 2,
)
@example(
    lines=[
        ("storage", "given", 0, "mother", False),
        ("substudy", "given", 0, "mother", False),
        ("storage", "withdrawn", 10, "mother", False),
        ("storage", "given", 10, "mother", True),
    ],
    of_age=SPAN,
)
@example(
    lines=[
        ("storage", "given", 0, "mother", False),
        ("substudy", "given", 0, "mother", False),
        ("storage", "given", 20, "participant", False),
        ("substudy", "given", 20, "participant", False),
    ],
    of_age=20,
)
def test_the_sql_and_json_forms_agree_with_the_python_form_every_day(
    session, make_patient, studies, lines, of_age
):
    """Random logs, every day: the patients consented_patients lets out are those whose
    storage and sub-study entries in force stand "given", and the JSON log reads back the
    same entries with the same answer."""
    start = clock.today() - dt.timedelta(days=SPAN + 30)
    patient = _patient_of_age_on(session, make_patient, start + dt.timedelta(days=of_age))
    comes_of_age = service.comes_of_age(session, patient)
    substudy = studies.demo
    _write(session, patient, substudy, studies.form, lines, start)
    entries = service.patient_entries(session, patient.id)
    raw = session.scalar(select(rule.log_column(ConsentEntry.patient_id == patient.id)))
    logged = rule.read_log(raw).get(patient.id, [])
    assert sorted(
        (e.id, e.component, e.substudy_id, e.decision, e.effective_date, e.corrects_id, e.signed_by)
        for e in entries
    ) == sorted(
        (e.id, e.component, e.substudy_id, e.decision, e.effective_date, e.corrects_id, e.signed_by)
        for e in logged
    )
    keys = (rule.STORAGE, ("substudy", substudy.id))
    # The answer changes only on an entry's day or the day they come of age: ask those days
    # and the days before them.
    turning = {start + dt.timedelta(days=line[2]) for line in lines} | {comes_of_age}
    for day in sorted(turning | {d - dt.timedelta(days=1) for d in turning}):
        python = all(
            rule.standing(rule.state_on(entries, day).get(k), day, comes_of_age) == "given"
            for k in keys
        )
        from_log = all(
            rule.standing(rule.state_on(logged, day).get(k), day, comes_of_age) == "given"
            for k in keys
        )
        in_sql = patient.id in set(session.scalars(rule.consented_patients(substudy, day)))
        assert python == from_log == in_sql, (day, comes_of_age, python, from_log, in_sql)
