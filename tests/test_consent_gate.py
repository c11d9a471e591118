"""The gate: one function decides, with reasons; releases store the consent that allowed them."""

from __future__ import annotations

import datetime as dt

import pytest
from consent_helpers import ACTOR, consented, days_ago, give, studies  # noqa: F401
from sqlalchemy import func, select

from biobank.consent import gate, service, withdrawal
from biobank.consent.models import ReleaseJustification
from biobank.errors import Conflict, NotFound
from biobank.samples import service as samples


def _at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(12), dt.UTC)


def _withdraw(session, patient, scope: str, day: dt.date) -> None:  # type: ignore[no-untyped-def]
    withdrawal.withdraw(
        session, ACTOR, patient, {"scope": scope, "date": day, "requested_by": "father"}
    )
    session.commit()


# --- may_use ----------------------------------------------------------------------------


def test_storage_and_substudy_consent_allow_use_with_their_entries(consented, session):
    """Both given: allowed, justified by the storage entry then the sub-study entry."""
    world = consented(1, "DEMO")
    decision = gate.may_use(session, world.tubes[0], "DEMO")
    entries = service.patient_entries(session, world.patient.id)
    assert decision.allowed and decision.reasons == ()
    assert decision.justification == (entries[0].id, entries[1].id)


@pytest.mark.parametrize(
    ("substudies", "code", "reason"),
    [
        ((), "DEMO", "no consent for sub-study DEMO on record"),
        (("DEMO",), "MRD-NGS", "no consent for sub-study MRD-NGS on record"),
        (("OLD",), "OLD", "sub-study OLD is closed"),
    ],
)
def test_use_needs_the_substudys_own_consent_and_an_open_substudy(
    consented, session, substudies, code, reason
):
    """Storage consent alone is not enough; a closed sub-study receives nothing."""
    world = consented(1, *substudies)
    decision = gate.may_use(session, world.tubes[0], code)
    assert not decision.allowed and decision.reasons == (reason,)
    assert decision.justification == ()


def test_without_storage_consent_no_substudy_may_use_the_tube(
    make_patient, make_aliquots, make_sample, give, session
):
    """Sub-study consent given but storage declined: refused, saying so."""
    patient = make_patient()
    [tube] = make_aliquots(1, parent=make_sample(patient))
    give(patient, "storage", decision="declined")
    give(patient, "DEMO")
    decision = gate.may_use(session, tube, "DEMO")
    assert decision.reasons == (f"storage consent declined on {days_ago(100)}",)


def test_a_declined_substudy_is_named_with_its_date(consented, give, session):
    """The reason says declined, and when."""
    world = consented(1)
    give(world.patient, "MRD-NGS", days_ago(50), decision="declined")
    assert gate.may_use(session, world.tubes[0], "MRD-NGS").reasons == (
        f"consent for sub-study MRD-NGS declined on {days_ago(50)}",
    )


@pytest.mark.parametrize("status", ["blocked", "destroyed", "missing", "consumed"])
def test_a_tube_out_of_use_is_refused_whatever_the_consent(consented, session, status):
    """Blocked, destroyed, missing or consumed tubes never pass."""
    world = consented(1, "DEMO")
    samples.change_status(session, ACTOR, world.tubes[0], status, "for the test")
    decision = gate.may_use(session, world.tubes[0], "DEMO")
    assert decision.reasons == (f"the tube is {status}",)


def test_the_gate_answers_for_a_moment_in_time(consented, session):
    """Consent from day -100 withdrawn on day -10: allowed at -20, refused at -5 and before -100."""
    world = consented(1, "DEMO")
    _withdraw(session, world.patient, "DEMO", days_ago(10))
    tube = world.tubes[0]
    assert gate.may_use(session, tube, "DEMO", _at(days_ago(20))).allowed
    assert gate.may_use(session, tube, "DEMO", _at(days_ago(5))).reasons == (
        f"consent for sub-study DEMO withdrawn on {days_ago(10)}",
    )
    before = gate.may_use(session, tube, "DEMO", _at(days_ago(101)))
    assert before.reasons == (
        f"no storage consent yet on {days_ago(101)}",
        f"no consent for sub-study DEMO yet on {days_ago(101)}",
    )


def test_a_corrected_entry_no_longer_counts(consented, give, session):
    """A sub-study consent corrected to a later date allows use only from that date."""
    world = consented(1, "DEMO", on=days_ago(30))
    [_, demo] = service.patient_entries(session, world.patient.id)
    give(world.patient, "DEMO", days_ago(10), corrects=demo.id, reason="signed later")
    assert not gate.may_use(session, world.tubes[0], "DEMO", _at(days_ago(20))).allowed
    assert gate.may_use(session, world.tubes[0], "DEMO", _at(days_ago(5))).allowed


def test_many_tubes_get_one_decision_each(consented, session):
    """A list of ids (two patients, one without DEMO consent) → a decision per id."""
    first, second = consented(2, "DEMO"), consented(1, "MRD-NGS")
    ids = [t.id for t in first.tubes + second.tubes]
    decisions = gate.may_use(session, ids, "DEMO")
    assert [decisions[i].allowed for i in ids] == [True, True, False]


def test_an_unknown_substudy_is_a_404(consented, session):
    """The gate does not guess what a misspelt sub-study means."""
    with pytest.raises(NotFound):
        gate.may_use(session, consented(1).tubes[0], "DEMOO")


# --- the check endpoint -----------------------------------------------------------------


def test_the_check_endpoint_answers_allowed_and_reasons(tech, consented):
    """GET /consent/check?barcode&substudy → {allowed, reasons}."""
    world = consented(1, "DEMO")
    code = world.tubes[0].barcode
    ok = tech.get(f"/api/v1/consent/check?barcode={code}&substudy=DEMO")
    assert ok.status_code == 200 and ok.json["allowed"] is True and ok.json["reasons"] == []
    no = tech.get(f"/api/v1/consent/check?barcode={code.lower()}&substudy=MRD-NGS").json
    assert no["allowed"] is False
    assert no["reasons"] == ["no consent for sub-study MRD-NGS on record"]


def test_check_input_errors(tech, consented):
    """A mistyped barcode is a 422; an unknown tube or sub-study a 404; a missing field a 422."""
    code = consented(1, "DEMO").tubes[0].barcode
    wrong = code[:-1] + ("A" if code[-1] != "A" else "B")
    assert tech.get(f"/api/v1/consent/check?barcode={wrong}&substudy=DEMO").status_code == 422
    assert tech.get("/api/v1/consent/check?barcode=FX1&substudy=DEMO").status_code == 404
    assert tech.get(f"/api/v1/consent/check?barcode={code}&substudy=NOPE").status_code == 404
    assert tech.get(f"/api/v1/consent/check?barcode={code}").status_code == 422


def test_researchers_check_only_their_own_substudies(as_role, consented):
    """Another sub-study is a 404, as if it did not exist; so is a tube of their own
    sub-study that no request of theirs holds (tests/test_consent_researchers.py)."""
    code = consented(1, "DEMO", "MRD-NGS").tubes[0].barcode
    researcher = as_role("researcher", substudies=["DEMO"])
    mine = researcher.get(f"/api/v1/consent/check?barcode={code}&substudy=DEMO")
    assert mine.status_code == 404 and mine.json["message"] == f"no aliquot {code}"
    other = researcher.get(f"/api/v1/consent/check?barcode={code}&substudy=MRD-NGS")
    assert other.status_code == 404 and other.json["message"] == "no sub-study 'MRD-NGS'"
    bulk = researcher.post(
        "/api/v1/consent/check", json={"substudy": "MRD-NGS", "barcodes": [code]}
    )
    assert bulk.status_code == 404


def test_a_whole_rack_is_checked_in_a_fixed_number_of_queries(
    tech, consented, give, count_queries, session
):
    """96 tubes from several patients cost the same queries as 8; each gets its answer."""
    worlds = [consented(24, "DEMO") for _ in range(3)] + [consented(24)]
    codes = [t.barcode for w in worlds for t in w.tubes]

    def check(barcodes):  # type: ignore[no-untyped-def]
        with count_queries() as counted:
            response = tech.post(
                "/api/v1/consent/check", json={"substudy": "DEMO", "barcodes": barcodes}
            )
        assert response.status_code == 200
        return response.json, counted.count

    small, few = check(codes[:8])
    rack, many = check(codes + ["FX00000001"])
    assert many == few <= 4  # token, sub-study, tubes, consent logs
    assert (rack["allowed_count"], rack["refused_count"]) == (72, 25)
    assert rack["results"][-1]["reasons"] == ["no aliquot with this barcode"]
    assert [r["barcode"] for r in rack["results"][:96]] == codes


# --- releases ---------------------------------------------------------------------------


def test_a_release_stores_the_consent_entries_that_allowed_it(consented, session):
    """justify_release keeps, per tube, the storage and sub-study entries and the moment."""
    world = consented(2, "DEMO")
    made = gate.justify_release(
        session, "requests", [t.id for t in world.tubes], "DEMO", "request", "REQ-2026-001"
    )
    storage, demo = service.patient_entries(session, world.patient.id)
    assert [r.consent_entry_ids for r in made] == [[storage.id, demo.id]] * 2
    assert {r.release_reference for r in made} == {"REQ-2026-001"}


def test_a_refused_release_names_each_tube_and_writes_nothing(consented, session):
    """One tube without consent refuses the whole release (409)."""
    allowed, refused = consented(1, "DEMO"), consented(1)
    ids = [allowed.tubes[0].id, refused.tubes[0].id]
    with pytest.raises(Conflict, match=refused.tubes[0].barcode):
        gate.justify_release(session, "requests", ids, "DEMO", "request", "REQ-2")
    assert session.scalar(select(func.count()).select_from(ReleaseJustification)) == 0


def test_the_withdrawal_ends_releases_from_that_day(consented, session):
    """Released before the withdrawal: kept; after it: refused."""
    world = consented(2, "DEMO")
    gate.justify_release(
        session, "t", [world.tubes[0].id], "DEMO", "request", "R-1", _at(days_ago(30))
    )
    _withdraw(session, world.patient, "storage", days_ago(20))
    with pytest.raises(Conflict, match="withdrawn"):
        gate.justify_release(session, "t", [world.tubes[1].id], "DEMO", "request", "R-2")


# --- the scan ---------------------------------------------------------------------------


def test_the_scan_shows_the_consent_state(tech, consented, give):
    """Storage and each sub-study's state, and a sentence a technician can act on."""
    world = consented(1, "DEMO")
    give(world.patient, "MRD-NGS", days_ago(40), decision="declined")
    consent = tech.get(f"/api/v1/scan/{world.tubes[0].barcode}").json["consent"]
    assert consent["storage"] == "given"
    assert consent["substudies"]["DEMO"]["state"] == "given"
    assert consent["summary"] == (
        f"storage consent given on {days_ago(100)}; usable for DEMO "
        f"(not for MRD-NGS declined on {days_ago(40)})"
    )


def test_the_scan_says_a_withdrawal_in_words(tech, consented, session):
    """Withdrawn storage: "storage consent withdrawn on <date>: tube blocked"."""
    world = consented(1, "DEMO")
    _withdraw(session, world.patient, "storage", days_ago(2))
    consent = tech.get(f"/api/v1/scan/{world.tubes[0].barcode}").json["consent"]
    assert consent["summary"] == f"storage consent withdrawn on {days_ago(2)}: tube blocked"


def test_a_tube_without_any_consent_says_so_at_the_scan(tech, make_aliquots):
    """No consent on record: the scan says not to use the tube."""
    [tube] = make_aliquots(1)
    consent = tech.get(f"/api/v1/scan/{tube.barcode}").json["consent"]
    assert consent["storage"] is None and "do not use" in consent["summary"]
