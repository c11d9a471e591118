"""Withdrawal: storage (or all) blocks and recalls at once; one sub-study only ends that use."""

from __future__ import annotations

import datetime as dt

import pytest
from consent_helpers import ACTOR, NUMBERING, consented, days_ago, give, officer, studies  # noqa: F401
from sqlalchemy import func, select

from biobank import clock
from biobank.consent import gate, service
from biobank.consent.models import ConsentEntry, DestructionTask, RecallNotice, Withdrawal
from biobank.custody.models import CustodyEvent
from biobank.custody.service import aliquot_events, audit_trail
from biobank.samples import service as samples
from biobank.samples.models import Aliquot


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


def _ship(session, tube, substudy: str, reference: str) -> None:  # type: ignore[no-untyped-def]
    gate.justify_release(session, ACTOR, [tube.id], substudy, "request", reference)
    samples.change_status(session, ACTOR, tube, "reserved")
    samples.change_status(session, ACTOR, tube, "shipped")
    session.commit()


def _statuses(session, tubes) -> list[str]:  # type: ignore[no-untyped-def]
    return list(
        session.scalars(
            select(Aliquot.status).where(Aliquot.id.in_([t.id for t in tubes])).order_by(Aliquot.id)
        )
    )


def _counts(session) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    return tuple(
        session.scalar(select(func.count()).select_from(model))
        for model in (Withdrawal, ConsentEntry, DestructionTask, RecallNotice, CustodyEvent)
    )


# --- storage --------------------------------------------------------------------------


def test_withdrawing_storage_blocks_every_tube_at_once(officer, consented, session):
    """Available and reserved tubes become blocked, each with a custody event saying why."""
    world = consented(4, "DEMO")
    samples.change_status(session, ACTOR, world.tubes[1], "reserved")
    session.commit()
    response = _withdraw(officer, world.study_id)
    assert response.status_code == 201, response.json
    assert _statuses(session, world.tubes) == ["blocked"] * 4
    assert [b["status"] for b in response.json["blocked"]] == [
        "available",
        "reserved",
        "available",
        "available",
    ]
    [event] = aliquot_events(session, world.tubes[1].id, limit=1, newest_first=True)
    assert (event.event_type, event.actor) == ("blocked", officer.username)
    assert event.old_values == {"status": "reserved"}
    assert "consent withdrawn (storage)" in event.reason


def test_each_tube_still_in_house_gets_a_destruction_task_with_its_location(
    officer, tech, consented, session
):
    """One task per tube (blocked ones too); destroyed tubes get none; the list shows where."""
    world = consented(4, "DEMO")
    samples.change_status(session, ACTOR, world.tubes[0], "destroyed", "cracked")
    samples.change_status(session, ACTOR, world.tubes[1], "blocked", "haemolysed")
    session.commit()
    response = _withdraw(officer, world.study_id)
    assert [t["barcode"] for t in response.json["destruction"]] == [
        t.barcode for t in world.tubes[1:]
    ]
    tasks = tech.get("/api/v1/consent/destruction-tasks").json
    assert [t["barcode"] for t in tasks] == [t.barcode for t in world.tubes[1:]]
    assert all(t["state"] == "pending" and "location" in t for t in tasks)
    assert tasks[0]["study_id"] == world.study_id


def test_a_destruction_task_shows_where_the_tube_is_now(officer, tech, consented, session):
    """The location comes from storage when the task is read: path, box and position."""
    from biobank.storage import operations
    from biobank.storage import service as storage

    storage.load_default_box_types(session, ACTOR)
    freezer = storage.create_freezer(
        session,
        ACTOR,
        {"site": "NL-PMC", "name": "F-80-09", "freezer_type": "mechanical-80"},
        NUMBERING,
    )
    box = storage.create_box(
        session, ACTOR, {"box_type": "9X9", "parent": freezer.barcode}, NUMBERING
    )
    world = consented(2, "DEMO")
    operations.place(session, ACTOR, world.tubes[0], box, "C4")
    session.commit()
    preview = _withdraw(officer, world.study_id, dry_run=True).json["destruction"]
    assert preview[0]["location"]["position"] == "C4" and preview[1]["location"] is None
    _withdraw(officer, world.study_id)
    placed, loose = tech.get("/api/v1/consent/destruction-tasks").json
    assert placed["location"]["path"].startswith("NL-PMC / F-80-09 / ")
    assert (placed["location"]["box"], placed["location"]["position"]) == (box.barcode, "C4")
    assert loose["location"] is None


def test_a_missing_tube_is_named_and_the_gate_refuses_it_if_found(officer, consented, session):
    """A tube marked missing cannot be blocked; if found later the gate still says no."""
    world = consented(2, "DEMO")
    samples.change_status(session, ACTOR, world.tubes[0], "missing", "not in its box")
    session.commit()
    response = _withdraw(officer, world.study_id)
    assert [t["barcode"] for t in response.json["missing"]] == [world.tubes[0].barcode]
    samples.change_status(session, ACTOR, world.tubes[0], "available")
    decision = gate.may_use(session, world.tubes[0], "DEMO")
    assert not decision.allowed and any("withdrawn" in r for r in decision.reasons)


def test_shipped_tubes_get_recall_notices_naming_request_and_recipient(
    officer, consented, session, monkeypatch
):
    """A tube already shipped is not blocked: its recipient gets a recall notice."""
    world = consented(2, "DEMO")
    _ship(session, world.tubes[0], "DEMO", "REQ-2026-007")
    monkeypatch.setattr(
        service,
        "SHIPMENT_LOOKUPS",
        [lambda _session, ids: {i: service.Shipment(None, "Kiel ALL lab") for i in ids}],
    )
    response = _withdraw(officer, world.study_id)
    assert response.json["recalls"] == [
        {
            "barcode": world.tubes[0].barcode,
            "request_reference": "REQ-2026-007",
            "recipient": "Kiel ALL lab",
        }
    ]
    assert _statuses(session, world.tubes) == ["shipped", "blocked"]
    notice = session.scalar(select(RecallNotice))
    assert (notice.request_reference, notice.recipient) == ("REQ-2026-007", "Kiel ALL lab")


def test_other_domains_effects_run_in_the_withdrawal(officer, consented, monkeypatch):
    """A registered effect (open requests losing tubes) sees the tubes, in dry run and for real."""
    calls = []

    def drop_from_requests(_session, context):  # type: ignore[no-untyped-def]
        calls.append(
            (
                context.dry_run,
                context.withdrawal_id,
                context.storage_ended,
                len(context.aliquot_ids),
            )
        )
        return [service.EffectAction(None, f"{len(context.aliquot_ids)} tubes taken out")]

    monkeypatch.setitem(service.WITHDRAWAL_EFFECTS, "requests", drop_from_requests)
    world = consented(3, "DEMO")
    preview = _withdraw(officer, world.study_id, dry_run=True)
    done = _withdraw(officer, world.study_id)
    assert calls[0] == (True, None, True, 3)
    assert calls[1][0] is False and calls[1][1] == done.json["withdrawal"]["id"]
    assert (
        preview.json["effects"]
        == done.json["effects"]
        == {"requests": [{"barcode": None, "description": "3 tubes taken out"}]}
    )


def test_withdrawing_all_ends_every_given_component(officer, consented, give):
    """Scope "all" writes a withdrawn entry for storage, data and each given sub-study."""
    world = consented(1, "DEMO", "MRD-NGS")
    give(world.patient, "data")
    response = _withdraw(officer, world.study_id, "all")
    assert sorted(e["component"] for e in response.json["ends"]) == [
        "DEMO",
        "MRD-NGS",
        "data",
        "storage",
    ]
    current = officer.get(f"/api/v1/patients/{world.study_id}/consent").json["current"]
    assert {e["decision"] for e in current} == {"withdrawn"}


def test_a_withdrawal_is_in_the_patients_audit_trail(officer, consented, session):
    """The audit record names the scope, the date and how many tubes were blocked."""
    world = consented(2, "DEMO")
    _withdraw(officer, world.study_id)
    [record] = [
        r
        for r in audit_trail(session, "patient", world.study_id)
        if r.action == "consent_withdrawn"
    ]
    assert (record.actor, record.new_values["scope"]) == (officer.username, "storage")
    assert record.new_values["blocked"] == 2


# --- one sub-study ----------------------------------------------------------------------


def test_withdrawing_one_substudy_keeps_the_tubes_for_the_others(officer, consented, session):
    """After withdrawing DEMO the tubes stay available and usable for MRD-NGS, not for DEMO."""
    world = consented(2, "DEMO", "MRD-NGS")
    response = _withdraw(officer, world.study_id, "DEMO")
    assert response.status_code == 201
    assert response.json["blocked"] == [] and response.json["stays_usable_for"] == ["MRD-NGS"]
    assert response.json["summary"].endswith("tubes stay stored, still usable for MRD-NGS")
    assert _statuses(session, world.tubes) == ["available", "available"]
    assert gate.may_use(session, world.tubes[0], "MRD-NGS").allowed
    refused = gate.may_use(session, world.tubes[0], "DEMO")
    assert refused.reasons == (f"consent for sub-study DEMO withdrawn on {days_ago(1)}",)


def test_a_substudy_withdrawal_recalls_only_what_was_shipped_for_it(officer, consented, session):
    """Of two shipped tubes, only the one released for DEMO gets a recall notice."""
    world = consented(2, "DEMO", "MRD-NGS")
    _ship(session, world.tubes[0], "DEMO", "REQ-1")
    _ship(session, world.tubes[1], "MRD-NGS", "REQ-2")
    response = _withdraw(officer, world.study_id, "DEMO")
    assert [r["request_reference"] for r in response.json["recalls"]] == ["REQ-1"]


def test_a_substudy_withdrawal_tells_effects_which_substudy_ended(officer, consented, monkeypatch):
    """Open requests of that sub-study (and only those) can drop the tubes."""
    seen = []
    monkeypatch.setitem(
        service.WITHDRAWAL_EFFECTS,
        "requests",
        lambda _s, c: seen.append((c.storage_ended, c.substudies_ended)) or [],
    )
    _withdraw(officer, consented(1, "DEMO", "MRD-NGS").study_id, "DEMO")
    assert seen == [(False, ["DEMO"])]


# --- dry run ----------------------------------------------------------------------------


def test_a_dry_run_shows_the_impact_and_writes_nothing(officer, consented, session):
    """?dry_run=true answers 200 with what would happen; tubes, log and events are untouched."""
    world = consented(3, "DEMO")
    before = _counts(session)
    preview = _withdraw(officer, world.study_id, dry_run=True)
    assert preview.status_code == 200
    assert preview.json["dry_run"] is True and preview.json["withdrawal"] is None
    assert preview.json["summary"].startswith("dry run, nothing written: ")
    assert "3 tube(s) blocked, 3 destruction task(s)" in preview.json["summary"]
    session.expire_all()
    assert _counts(session) == before
    assert _statuses(session, world.tubes) == ["available"] * 3
    done = _withdraw(officer, world.study_id)
    assert done.json["blocked"] == preview.json["blocked"]
    assert done.json["destruction"] == preview.json["destruction"]


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "scope", "field", "status"),
    [
        ({"date": str(days_ago(200))}, "storage", "date", 422),  # before the consent
        ({"date": str(clock.today() + dt.timedelta(days=1))}, "storage", "date", 422),
        ({"date": "2026-13-01"}, "storage", "date", 422),
        ({}, "MRD-NGS", "scope", 422),  # never given
        ({}, "NOPE", "scope", 422),  # no such sub-study
        ({"requested_by": "the lab"}, "storage", "requested_by", 422),
    ],
)
def test_bad_withdrawals_are_4xx_and_write_nothing(
    officer, consented, session, overrides, scope, field, status
):
    """Dated before the consent or in the future, a bad date, never given, unknown scope."""
    world = consented(2, "DEMO")
    before = _counts(session)
    response = _withdraw(officer, world.study_id, scope, **overrides)
    assert response.status_code == status, response.json
    assert field in response.json["errors"]["json"]
    session.expire_all()
    assert _counts(session) == before and _statuses(session, world.tubes) == ["available"] * 2


def test_withdrawing_a_declined_consent_is_a_422(officer, consented, give):
    """Declined is not given: there is nothing to withdraw."""
    world = consented(1)
    give(world.patient, "DEMO", decision="declined")
    response = _withdraw(officer, world.study_id, "DEMO")
    assert response.status_code == 422 and "declined" in response.json["message"]


def test_a_second_identical_withdrawal_is_a_409(officer, consented, session):
    """Withdrawing storage twice: the second answer is 409 and nothing more is written."""
    world = consented(2, "DEMO")
    assert _withdraw(officer, world.study_id).status_code == 201
    after_first = _counts(session)
    second = _withdraw(officer, world.study_id)
    assert second.status_code == 409 and "already withdrawn" in second.json["message"]
    assert _withdraw(officer, world.study_id, "all", dry_run=False).status_code == 201  # DEMO
    assert _withdraw(officer, world.study_id, "all").status_code == 409
    assert _counts(session)[2] == after_first[2]  # no second round of destruction tasks


def test_only_consent_officers_and_admins_withdraw(tech, manager, consented):
    """Technicians and managers are refused (403)."""
    world = consented(1)
    assert _withdraw(tech, world.study_id).status_code == 403
    assert _withdraw(manager, world.study_id).status_code == 403


# --- after the withdrawal ---------------------------------------------------------------


def test_re_consent_unblocks_the_tubes_still_waiting_for_destruction(
    officer, consented, give, session
):
    """Storage given again: tubes the withdrawal blocked go back; a tube held before stays held."""
    world = consented(3, "DEMO")
    samples.change_status(session, ACTOR, world.tubes[2], "blocked", "haemolysed")
    session.commit()
    _withdraw(officer, world.study_id, date=str(days_ago(3)))
    give(world.patient, "storage", days_ago(1), signed_by="participant")
    session.expire_all()
    assert _statuses(session, world.tubes) == ["available", "available", "blocked"]
    [event] = aliquot_events(session, world.tubes[0].id, limit=1, newest_first=True)
    assert event.event_type == "unblocked" and "given again" in event.reason
    tasks = officer.get("/api/v1/consent/destruction-tasks?pending=false").json
    assert {t["state"] for t in tasks} == {"cancelled"}


def test_a_technician_closes_a_destruction_task_and_the_tube_is_destroyed(
    tech, officer, consented, session
):
    """POST .../done destroys the tube (a custody event) and closes the task."""
    world = consented(1, "DEMO")
    _withdraw(officer, world.study_id)
    [task] = tech.get("/api/v1/consent/destruction-tasks").json
    done = tech.post(f"/api/v1/consent/destruction-tasks/{task['id']}/done")
    assert done.status_code == 200 and done.json["state"] == "done"
    assert done.json["completed_by"] == tech.username
    assert _statuses(session, world.tubes) == ["destroyed"]
    assert tech.post(f"/api/v1/consent/destruction-tasks/{task['id']}/done").status_code == 409
    assert tech.get("/api/v1/consent/destruction-tasks").json == []


def test_the_officer_follows_outstanding_actions_until_all_are_done(
    officer, tech, consented, session
):
    """Pending tasks and unanswered recalls keep a withdrawal outstanding; then it drops off."""
    world = consented(2, "DEMO")
    _ship(session, world.tubes[0], "DEMO", "REQ-9")
    wid = _withdraw(officer, world.study_id).json["withdrawal"]["id"]
    [listed] = officer.get("/api/v1/consent/withdrawals?outstanding=true").json
    assert listed["tasks"] == {"pending": 1, "done": 0, "cancelled": 0}
    assert listed["recalls"]["unacknowledged"] == 1 and listed["outstanding"] is True
    detail = officer.get(f"/api/v1/consent/withdrawals/{wid}").json
    [task], [notice] = detail["destruction_tasks"], detail["recall_notices"]
    assert notice["request_reference"] == "REQ-9" and notice["acknowledged_at"] is None
    assert officer.post(f"/api/v1/consent/recalls/{notice['id']}/acknowledge").status_code == 200
    assert officer.post(f"/api/v1/consent/recalls/{notice['id']}/acknowledge").status_code == 409
    tech.post(f"/api/v1/consent/destruction-tasks/{task['id']}/done")
    assert officer.get("/api/v1/consent/withdrawals?outstanding=true").json == []
    reported = officer.post(f"/api/v1/consent/recalls/{notice['id']}/destroyed")
    assert reported.json["destruction_reported_at"] is not None
    assert _statuses(session, world.tubes) == ["destroyed", "destroyed"]


def test_technicians_see_withdrawals_without_who_asked(tech, officer, consented):
    """requested_by is for consent officers only."""
    world = consented(1)
    _withdraw(officer, world.study_id)
    [as_officer] = officer.get(f"/api/v1/patients/{world.study_id}/consent/withdrawals").json
    [as_tech] = tech.get(f"/api/v1/patients/{world.study_id}/consent/withdrawals").json
    assert as_officer["withdrawal"]["requested_by"] == "mother"
    assert "requested_by" not in as_tech["withdrawal"]


def test_unknown_withdrawals_tasks_and_notices_are_404s(officer, tech):
    """Ids that name nothing, numeric or not."""
    assert officer.get("/api/v1/consent/withdrawals/999999").status_code == 404
    assert officer.get("/api/v1/consent/withdrawals/abc").status_code == 404
    assert tech.post("/api/v1/consent/destruction-tasks/999999/done").status_code == 404
    assert officer.post("/api/v1/consent/recalls/x/acknowledge").status_code == 404
