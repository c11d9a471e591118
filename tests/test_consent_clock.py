"""One clock: the biobank's day is the day in BIOBANK_TIMEZONE, whatever zone the server is in.

Each test runs with the process's TZ far east (Kiritimati +14, Tokyo +9) and far west (Los
Angeles −8, Pago Pago −11) of UTC, one second before and one second after midnight in
Amsterdam, and asks the gate, the scan card, the box map and availability the same question.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
import time_machine
from consent_helpers import consented, give, officer, studies  # noqa: F401
from consent_views import agree, verdicts

from biobank import clock
from biobank.samples import service as samples
from biobank.storage import operations
from biobank.storage import service as storage

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
MIDNIGHT = dt.datetime(2026, 1, 16, tzinfo=AMSTERDAM)  # 2026-01-15 23:00 UTC
SIDES = {
    "before": (MIDNIGHT - dt.timedelta(seconds=1), dt.date(2026, 1, 15)),
    "after": (MIDNIGHT + dt.timedelta(seconds=1), dt.date(2026, 1, 16)),
}
SERVER_ZONES = ("Pacific/Kiritimati", "Asia/Tokyo", "America/Los_Angeles", "Pacific/Pago_Pago")
NUMBERING = samples.Numbering()


@pytest.fixture(
    params=[(z, s) for z in SERVER_ZONES for s in SIDES], ids=lambda p: f"{p[0]}-{p[1]}"
)
def moment(request: pytest.FixtureRequest) -> Iterator[dt.date]:
    """The server in a far zone at one side of midnight in Amsterdam; yields the biobank's day."""
    zone, side = request.param
    instant, day = SIDES[side]
    # An instant in a ZoneInfo zone: time-machine sets the process's TZ to that zone too.
    with time_machine.travel(instant.astimezone(ZoneInfo(zone)), tick=False):
        assert (
            time.localtime().tm_gmtoff
            == instant.astimezone(ZoneInfo(zone)).utcoffset().total_seconds()
        )
        yield day


def _boxed(session, tube):  # type: ignore[no-untyped-def]
    freezer = storage.create_freezer(
        session,
        "clock-test",
        {"site": "NL-PMC", "name": "F-CLOCK", "freezer_type": "mechanical-80"},
        NUMBERING,
    )
    box = storage.create_box(
        session, "clock-test", {"box_type": "10X10", "parent": freezer.barcode}, NUMBERING
    )
    operations.relocate(session, "clock-test", [operations.Target(tube, box, 1, 1)])
    session.commit()
    return box


def test_today_is_the_day_in_amsterdam_not_the_server_s(moment, app):
    """clock.today() is Amsterdam's date on both sides of its midnight, from any server zone."""
    assert clock.today() == moment


def test_a_withdrawal_dated_today_counts_everywhere_at_once(moment, session, consented, officer):
    """A sub-study withdrawal dated the biobank's today: gate, card, map and availability all
    refuse that sub-study at once and still allow the other; tomorrow is refused (422)."""
    world = consented(1, "DEMO", "MRD-NGS", on=moment - dt.timedelta(days=100))
    tube = world.tubes[0]
    box = _boxed(session, tube)
    assert verdicts(session, tube, "DEMO", box) == dict.fromkeys(
        ("gate", "card", "availability", "map_storage", "card_storage"), True
    )
    url = f"/api/v1/patients/{world.study_id}/consent/withdrawals"
    tomorrow = officer.post(
        url, json={"scope": "DEMO", "date": str(moment + dt.timedelta(1)), "requested_by": "mother"}
    )
    assert tomorrow.status_code == 422, tomorrow.json
    assert tomorrow.json["errors"]["json"] == {
        "date": ["a withdrawal cannot be dated in the future"]
    }
    today = officer.post(url, json={"scope": "DEMO", "date": str(moment), "requested_by": "mother"})
    assert today.status_code == 201, today.json
    demo = verdicts(session, tube, "DEMO", box)
    assert agree(demo) and not demo["gate"], demo
    other = verdicts(session, tube, "MRD-NGS", box)
    assert agree(other) and other["gate"], other


def test_consent_signed_today_is_in_force_today_everywhere(
    moment, session, make_patient, make_aliquots, make_sample, give
):
    """Consent signed on the biobank's today (not the server's) is accepted and in force."""
    patient = make_patient(diagnosis_date=moment - dt.timedelta(days=30))
    [tube] = make_aliquots(1, parent=make_sample(patient))
    give(patient, "storage", moment)
    give(patient, "DEMO", moment)
    found = verdicts(session, tube, "DEMO")
    assert agree(found) and found["gate"], found


def test_a_consent_dated_tomorrow_in_amsterdam_is_refused(moment, officer, make_patient, studies):
    """ "Not in the future" is judged by the biobank's day: tomorrow there is a 422."""
    patient = make_patient(diagnosis_date=moment - dt.timedelta(days=30))
    answer = officer.post(
        f"/api/v1/patients/{patient.study_id}/consent",
        json={
            "component": "storage",
            "decision": "given",
            "form_version": "ICF-IF21-NL-3",
            "signed_on": str(moment + dt.timedelta(days=1)),
            "signed_by": "mother",
        },
    )
    assert answer.status_code == 422 and "signed_on" in answer.json["errors"]["json"]
    ok = officer.post(
        f"/api/v1/patients/{patient.study_id}/consent",
        json={
            "component": "storage",
            "decision": "given",
            "form_version": "ICF-IF21-NL-3",
            "signed_on": str(moment),
            "signed_by": "mother",
        },
    )
    assert ok.status_code == 201, ok.json


def test_a_diagnosis_dated_the_biobank_s_today_is_accepted(moment, tech):
    """Patients: "the diagnosis date is in the future" follows the biobank's day too."""
    body = {
        "study_id": "IF21-CLOCK-1",
        "site": "NL-PMC",
        "sex": "F",
        "diagnosis": "B-ALL",
        "fusion_partner": "AFF1",
        "diagnosis_date": str(moment),
        "age_at_diagnosis_days": 100,
        "wbc_at_diagnosis": "50",
        "prednisone_response": "good",
    }
    assert tech.post("/api/v1/patients", json=body).status_code == 201
    late = {
        **body,
        "study_id": "IF21-CLOCK-2",
        "diagnosis_date": str(moment + dt.timedelta(days=1)),
    }
    answer = tech.post("/api/v1/patients", json=late)
    assert answer.status_code == 422 and "diagnosis_date" in answer.json["errors"]["json"]
