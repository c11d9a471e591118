"""`flask --app wsgi demo load`: believable demo data, loaded idempotently."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from biobank import clock
from biobank.auth.models import ApiToken, User
from biobank.demo import service as demo
from biobank.patients.models import MrdResult, Patient, RiskGroupChange
from biobank.samples.models import Aliquot, Sample

COUNTED = (Patient, Sample, Aliquot, User, MrdResult, RiskGroupChange)


def _counts(session):  # type: ignore[no-untyped-def]
    return {
        model.__name__: session.scalar(select(func.count()).select_from(model)) for model in COUNTED
    }


def _tokens(output: str) -> dict[str, str]:
    return {
        line.split()[0]: line.split()[-1]
        for line in output.splitlines()
        if line.startswith(demo.USER_PREFIX)
    }


def test_loading_twice_changes_nothing_the_second_time(runner, session):
    """A second load adds nothing, fails on nothing, and still prints working tokens."""
    first = runner.invoke(args=["demo", "load"])
    assert first.exit_code == 0, first.output
    after_first = _counts(session)
    assert after_first["Patient"] == 20
    assert after_first["Sample"] > 40 and after_first["Aliquot"] > after_first["Sample"]

    second = runner.invoke(args=["demo", "load"])
    assert second.exit_code == 0, second.output
    session.expire_all()
    assert _counts(session) == after_first
    assert "0 patients (20 already there)" in second.output
    tokens = _tokens(second.output)
    assert set(tokens) == {
        "demo-technician",
        "demo-researcher",
        "demo-consent-officer",
        "demo-manager",
        "demo-admin",
    }
    live = (
        select(func.count())
        .select_from(ApiToken)
        .where(ApiToken.revoked_at.is_(None), ApiToken.user.has(User.username.like("demo-%")))
    )
    assert session.scalar(live) == 5


def test_printed_tokens_work(runner, client):
    """Every printed token authenticates as the user of that row."""
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    for username, token in _tokens(result.output).items():
        response = client.get("/api/v1/me", headers={"Authorization": "Bearer " + token})
        assert response.status_code == 200, response.json
        assert response.json["username"] == username
    assert "demo-password" in result.output


def test_the_demo_shows_both_risk_groups_and_a_history(runner, session, app):
    """MR and HR patients exist, one moved MR → HR by EOI MRD, tubes in several states."""
    assert runner.invoke(args=["demo", "load"]).exit_code == 0
    groups = set(session.scalars(select(Patient.risk_group)))
    assert groups == {"MR", "HR"}
    escalations = list(
        session.scalars(
            select(RiskGroupChange).where(
                RiskGroupChange.previous == "MR", RiskGroupChange.risk_group == "HR"
            )
        )
    )
    assert len(escalations) == 1 and "MRD" in escalations[0].reason
    statuses = set(session.scalars(select(Aliquot.status)))
    assert {"available", "consumed", "destroyed", "missing"} <= statuses
    dna = session.scalars(select(Aliquot).where(Aliquot.parent_aliquot_id.is_not(None))).all()
    assert dna and all(a.parent.status == "consumed" for a in dna)
    assert session.scalar(select(func.max(Sample.collected_at))) <= dt.datetime.now(dt.UTC)
    assert session.scalar(select(func.max(Patient.diagnosis_date))) <= clock.today()


def test_the_plan_is_deterministic():
    """The same day gives the same patients, all within the trial's age limit."""
    today = dt.date(2026, 11, 21)
    first, second = demo.plan_patients(today), demo.plan_patients(today)
    assert first == second
    assert all(20 <= p.values["age_at_diagnosis_days"] <= 360 for p in first)
    assert len({p.study_id for p in first}) == 20
    assert sum(p.escalate_at_eoi for p in first) == 1


def test_a_deactivated_demo_user_stays_deactivated(runner, session):
    """Reloading leaves a deactivated demo user alone instead of failing."""
    from biobank.auth import service as auth

    assert runner.invoke(args=["demo", "load"]).exit_code == 0
    auth.deactivate(session, auth.get_user(session, "demo-technician"))
    session.commit()
    again = runner.invoke(args=["demo", "load"])
    assert again.exit_code == 0, again.output
    assert _tokens(again.output)["demo-technician"] == "-"
    assert not auth.get_user(session, "demo-technician").active
