"""A withdrawal entered in error is corrected through the append-only correction path: the
consent in force before it comes back, what it set in motion is undone where it can be, and
nothing recorded is erased."""

from __future__ import annotations

import pytest
from consent_helpers import ACTOR, NUMBERING, consented, days_ago, give, officer, studies  # noqa: F401
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from biobank.consent import gate
from biobank.consent.models import ConsentEntry, Withdrawal, WithdrawalCorrection
from biobank.custody.service import aliquot_events, audit_trail
from biobank.samples import service as samples
from biobank.samples.models import Aliquot


def _withdraw(client, study_id: str, scope: str = "storage"):  # type: ignore[no-untyped-def]
    response = client.post(
        f"/api/v1/patients/{study_id}/consent/withdrawals",
        json={
            "scope": scope,
            "date": str(days_ago(1)),
            "requested_by": "mother",
            "reason": "parents no longer wish material to be kept",
        },
    )
    assert response.status_code == 201, response.json
    return response.json["withdrawal"]["id"]


def _correct(client, withdrawal_id, reason="recorded on the wrong patient"):  # type: ignore[no-untyped-def]
    return client.post(
        f"/api/v1/consent/withdrawals/{withdrawal_id}/correction", json={"reason": reason}
    )


def _ship(session, tube, substudy: str, reference: str) -> None:  # type: ignore[no-untyped-def]
    gate.justify_release(session, ACTOR, [tube.id], substudy, "request", reference)
    samples.change_status(session, ACTOR, tube, "reserved")
    samples.change_status(session, ACTOR, tube, "shipped")
    session.commit()


def _statuses(session, tubes) -> list[str]:  # type: ignore[no-untyped-def]
    session.expire_all()
    return list(
        session.scalars(
            select(Aliquot.status).where(Aliquot.id.in_([t.id for t in tubes])).order_by(Aliquot.id)
        )
    )


def test_correcting_a_storage_withdrawal_puts_the_tubes_back_and_the_gate_allows_them(
    officer, consented, session
):
    """The blocked tubes are available again, their tasks cancelled, the gate says yes."""
    world = consented(3, "DEMO")
    wid = _withdraw(officer, world.study_id)
    assert _statuses(session, world.tubes) == ["blocked"] * 3
    response = _correct(officer, wid)
    assert response.status_code == 201, response.json
    assert response.json["tubes_back_in_use"] == 3 and response.json["tasks_cancelled"] == 3
    assert [e["component"] for e in response.json["restored"]] == ["storage"]
    assert "entered in error" in response.json["summary"]
    assert _statuses(session, world.tubes) == ["available"] * 3
    assert gate.may_use(session, world.tubes[0], "DEMO").allowed
    tasks = officer.get("/api/v1/consent/destruction-tasks?pending=false").json
    assert {t["state"] for t in tasks} == {"cancelled"}
    [event] = aliquot_events(session, world.tubes[0].id, limit=1, newest_first=True)
    assert event.event_type == "unblocked" and "entered in error" in event.reason


def test_the_correction_erases_nothing_and_the_consent_log_shows_both(officer, consented, session):
    """The withdrawal and its withdrawn entry stay; a correcting entry replaces the latter."""
    world = consented(1)
    wid = _withdraw(officer, world.study_id)
    entries_before = session.scalar(select(func.count()).select_from(ConsentEntry))
    _correct(officer, wid)
    assert session.scalar(select(func.count()).select_from(ConsentEntry)) == entries_before + 1
    assert session.get(Withdrawal, wid) is not None
    consent = officer.get(f"/api/v1/patients/{world.study_id}/consent").json
    [current] = [c for c in consent["current"] if c["component"] == "storage"]
    assert current["decision"] == "given" and current["corrects"] is not None
    withdrawn = next(h for h in consent["history"] if h["decision"] == "withdrawn")
    assert withdrawn["replaced_by"] == current["id"]
    [listed] = officer.get(f"/api/v1/patients/{world.study_id}/consent/withdrawals").json
    assert listed["corrected"]["reason"] == "recorded on the wrong patient"
    assert listed["corrected"]["recorded_by"] == officer.username
    [entry] = [
        r
        for r in audit_trail(session, "patient", world.study_id)
        if r.action == "consent_withdrawal_corrected"
    ]
    assert entry.new_values["withdrawal"] == wid and entry.actor == officer.username


def test_a_substudy_withdrawal_corrected_gives_the_substudy_back(officer, consented, session):
    """Only that sub-study's consent returns; the tubes were never blocked."""
    world = consented(1, "DEMO", "MRD-NGS")
    wid = _withdraw(officer, world.study_id, scope="DEMO")
    assert not gate.may_use(session, world.tubes[0], "DEMO").allowed
    response = _correct(officer, wid)
    assert response.status_code == 201, response.json
    assert [e["component"] for e in response.json["restored"]] == ["DEMO"]
    assert gate.may_use(session, world.tubes[0], "DEMO").allowed


def test_unanswered_recalls_are_cancelled_and_answered_ones_are_counted(
    officer, consented, session
):
    """The recipient who has not answered is asked nothing more; one who has is to be told."""
    world = consented(3, "DEMO")
    _ship(session, world.tubes[0], "DEMO", "REQ-1")
    _ship(session, world.tubes[1], "DEMO", "REQ-2")
    wid = _withdraw(officer, world.study_id)
    notices = officer.get(f"/api/v1/consent/withdrawals/{wid}").json["recall_notices"]
    answered = next(n for n in notices if n["request_reference"] == "REQ-1")
    officer.post(f"/api/v1/consent/recalls/{answered['id']}/acknowledge")
    response = _correct(officer, wid)
    assert (response.json["recalls_cancelled"], response.json["recalls_already_answered"]) == (1, 1)
    detail = officer.get(f"/api/v1/consent/withdrawals/{wid}").json
    assert detail["recalls"]["cancelled"] == 1 and detail["outstanding"] is False
    still_open = next(n for n in detail["recall_notices"] if n["request_reference"] == "REQ-2")
    assert still_open["cancelled_at"] is not None
    refused = officer.post(f"/api/v1/consent/recalls/{still_open['id']}/acknowledge")
    assert refused.status_code == 409 and "cancelled" in refused.json["message"]


def test_a_tube_already_destroyed_stays_destroyed_and_is_named(officer, tech, consented, session):
    """Destruction cannot be undone: the answer lists the tube."""
    world = consented(2)
    wid = _withdraw(officer, world.study_id)
    task = tech.get("/api/v1/consent/destruction-tasks").json[0]
    tech.post(f"/api/v1/consent/destruction-tasks/{task['id']}/done")
    response = _correct(officer, wid)
    assert response.json["already_destroyed"] == [task["barcode"]]
    assert sorted(_statuses(session, world.tubes)) == ["available", "destroyed"]


def test_a_second_correction_is_a_409(officer, consented):
    """One correction per withdrawal."""
    wid = _withdraw(officer, consented(1).study_id)
    assert _correct(officer, wid).status_code == 201
    second = _correct(officer, wid)
    assert second.status_code == 409 and "withdrawal" in second.json["errors"]["json"]


def test_a_withdrawal_followed_by_new_consent_is_not_corrected(officer, consented, give):
    """Only the latest entry of a component can be corrected: re-consent came after it."""
    world = consented(1)
    wid = _withdraw(officer, world.study_id)
    give(world.patient, "storage", days_ago(0), signed_by="participant")
    response = _correct(officer, wid)
    assert response.status_code == 409 and "changed after" in response.json["message"]


def test_an_anonymising_withdrawal_cannot_be_corrected(officer, consented, session):
    """The link to the patient is gone; the correction is refused and writes nothing."""
    world = consented(1)
    response = officer.post(
        f"/api/v1/patients/{world.study_id}/consent/withdrawals",
        json={
            "scope": "storage",
            "date": str(days_ago(1)),
            "requested_by": "mother",
            "outcome": "anonymise",
        },
    )
    if response.status_code == 422:
        pytest.skip("anonymisation is not allowed for this patient's country in the fixtures")
    wid = response.json["withdrawal"]["id"]
    refused = _correct(officer, wid)
    assert refused.status_code == 409 and "anonymised" in refused.json["message"]
    assert session.scalar(select(func.count()).select_from(WithdrawalCorrection)) == 0


@pytest.mark.parametrize(
    "body, field", [({}, "reason"), ({"reason": ""}, "reason"), ({"reason": "x" * 151}, "reason")]
)
def test_a_correction_needs_a_reason(officer, consented, body, field):
    """422 naming the field."""
    wid = _withdraw(officer, consented(1).study_id)
    response = officer.post(f"/api/v1/consent/withdrawals/{wid}/correction", json=body)
    assert response.status_code == 422 and field in str(response.json)


def test_only_consent_officers_and_admins_correct(tech, manager, officer, consented):
    """Technicians and managers are refused; an unknown withdrawal is a 404."""
    wid = _withdraw(officer, consented(1).study_id)
    assert _correct(tech, wid).status_code == 403
    assert _correct(manager, wid).status_code == 403
    assert _correct(officer, 999999).status_code == 404
    assert _correct(officer, "abc").status_code == 404


def test_the_correction_record_is_append_only(officer, consented, session):
    """The database refuses to rewrite or erase a correction."""
    wid = _withdraw(officer, consented(1).study_id)
    _correct(officer, wid)
    session.commit()
    for statement in (
        "UPDATE consent_withdrawal_correction SET reason = 'x'",
        "DELETE FROM consent_withdrawal_correction",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            with session.begin_nested():
                session.execute(text(statement))
