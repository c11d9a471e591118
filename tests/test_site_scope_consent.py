"""Site scopes in the consent officer's counts: a withdrawal belongs to its patient's site,
each of its destruction tasks and recall notices to its tube's site. A site-scoped user's
withdrawal counts hold only the tasks and recalls of their sites, the same ones the lists
show them (API, the consent desk and its CSV, the patient page)."""

from __future__ import annotations

import csv
import io
from types import SimpleNamespace
from typing import Any

import pytest
from consent_helpers import officer  # noqa: F401
from requests_helpers import (  # noqa: F401
    ACTOR,
    NUMBERING,
    donor,
    freezer,
    give,
    researcher,
    shipped,
    statuses,
    store,
    studies,
)

from biobank import clock
from biobank.reference import service as reference
from biobank.storage import service as storage

KIEL = "DE-KIEL"
NL = "NL-PMC"


@pytest.fixture
def split(session, donor, freezer, researcher, manager, tech, officer):  # type: ignore[no-untyped-def]  # noqa: F811
    """Two withdrawals whose tubes lie at both sites. An NL-PMC patient: one tube shipped
    from NL-PMC (a recall notice), one moved to the Kiel freezer and one still at NL-PMC (a
    destruction task at each site). A Kiel patient: one tube in the Kiel freezer, one still
    at NL-PMC where it was first stored (a destruction task at each site)."""
    reference.create(session, ACTOR, "sites", {"code": KIEL, "name": "UKSH Kiel", "country": "DE"})
    made = storage.create_freezer(
        session,
        ACTOR,
        {"site": KIEL, "name": "KI-80-01", "freezer_type": "mechanical-80"},
        NUMBERING,
    )
    kiel_box = storage.create_box(
        session,
        ACTOR,
        {"box_type": "9X9", "parent": made.barcode, "name": "Kiel plasma"},
        NUMBERING,
    )
    session.commit()
    nl = donor({"DX": 3}, "DEMO")
    ships, moved, stays = nl.tubes
    moved.freeze_thaw_count = stays.freeze_thaw_count = 1  # allocation takes the first
    store(session, [moved], kiel_box)
    number, codes = shipped(researcher, manager, tech, patients=1)
    assert codes == [ships.barcode]
    de = donor({"DX": 2}, "DEMO", site=KIEL)
    store(session, de.tubes[:1], kiel_box)
    for person in (nl, de):
        answer = officer.post(
            f"/api/v1/patients/{person.study_id}/consent/withdrawals",
            json={"scope": "storage", "date": str(clock.today()), "requested_by": "mother"},
        )
        assert answer.status_code == 201, answer.json
    return SimpleNamespace(nl=nl, de=de, moved=moved, request=number, kiel_box=kiel_box)


def _from_lists(user: Any, withdrawal_id: int) -> dict[str, int]:
    """What the user's own lists of one withdrawal hold: its tasks and recall notices."""
    detail = user.get(f"/api/v1/consent/withdrawals/{withdrawal_id}").json
    return {"tasks": len(detail["destruction_tasks"]), "recalls": len(detail["recall_notices"])}


def _counted(summary: dict[str, Any]) -> dict[str, int]:
    return {
        "tasks": sum(summary["tasks"].values()),
        "recalls": sum(v for k, v in summary["recalls"].items() if k != "destruction_reported"),
    }


@pytest.mark.parametrize("sites", [[KIEL], [NL], []], ids=["Kiel", "NL-PMC", "every site"])
def test_withdrawal_counts_are_those_of_the_tasks_and_recalls_the_user_sees(split, as_role, sites):  # type: ignore[no-untyped-def]
    """Each withdrawal a user lists counts exactly the destruction tasks and recall notices
    its detail shows them: the tubes at their sites; a user without sites, every tube."""
    user = as_role("consent_officer", sites=sites)
    listed = user.get("/api/v1/consent/withdrawals").json
    assert listed
    for summary in listed:
        assert _counted(summary) == _from_lists(user, summary["withdrawal"]["id"]), summary
    of_patient = user.get(f"/api/v1/patients/{split.de.study_id}/consent/withdrawals")
    assert of_patient.status_code == (404 if sites == [NL] else 200)
    for summary in of_patient.json if of_patient.status_code == 200 else []:
        assert _counted(summary) == _from_lists(user, summary["withdrawal"]["id"])


def test_a_kiel_officer_counts_the_kiel_tube_of_a_kiel_patient_not_the_one_at_nl(split, as_role):  # type: ignore[no-untyped-def]
    """The Kiel patient's withdrawal made two destruction tasks, one at each site: a Kiel
    officer's list, desk CSV and patient page say one pending; an officer without sites two.
    The NL-PMC patient's withdrawal is not the Kiel officer's at all."""
    kiel = as_role("consent_officer", sites=[KIEL])
    [mine] = kiel.get("/api/v1/consent/withdrawals").json
    assert mine["study_id"] == split.de.study_id
    assert mine["tasks"]["pending"] == 1 and mine["outstanding"]
    everywhere = (
        as_role("consent_officer")
        .get(f"/api/v1/patients/{split.de.study_id}/consent/withdrawals")
        .json
    )
    assert everywhere[0]["tasks"]["pending"] == 2
    rows = list(
        csv.DictReader(
            io.StringIO(kiel.get("/consent?format=csv&list=withdrawals").get_data(as_text=True))
        )
    )
    assert [(r["study_id"], r["tasks_pending"]) for r in rows] == [(split.de.study_id, "1")]


def test_an_nl_officer_counts_the_nl_tubes_of_an_nl_patient_not_the_one_moved_to_kiel(
    split, as_role
):  # type: ignore[no-untyped-def]
    """The NL-PMC patient's tube moved to Kiel is Kiel's destruction task: the NL-PMC
    officer's withdrawal counts one task (and the recall of the tube shipped from NL-PMC),
    an officer without sites two; the Kiel officer lists that task, not the withdrawal."""

    def of_nl(user: Any) -> dict[str, Any]:
        return next(
            w
            for w in user.get("/api/v1/consent/withdrawals").json
            if w["study_id"] == split.nl.study_id
        )

    mine = of_nl(as_role("consent_officer", sites=[NL]))
    assert mine["tasks"]["pending"] == 1 and mine["recalls"]["unacknowledged"] == 1
    assert of_nl(as_role("consent_officer"))["tasks"]["pending"] == 2
    kiel = as_role("consent_officer", sites=[KIEL])
    assert split.moved.barcode in {
        t["barcode"] for t in kiel.get("/api/v1/consent/destruction-tasks").json
    }
    assert split.nl.study_id not in {
        w["study_id"] for w in kiel.get("/api/v1/consent/withdrawals").json
    }


def test_a_kiel_officer_withdrawing_sees_the_impact_on_kiel_tubes_only(
    split, as_role, donor, session, freezer
):  # type: ignore[no-untyped-def]  # noqa: F811
    """A Kiel patient with a tube in the Kiel freezer and one still at NL-PMC: the Kiel
    officer's preview and record of the withdrawal list (and count) the Kiel tube, never the
    NL-PMC tube or its place; both tubes are blocked and get their task all the same."""
    person = donor({"DX": 2}, "DEMO", site=KIEL)
    here, there = person.tubes
    store(session, [here], split.kiel_box)
    kiel = as_role("consent_officer", sites=[KIEL])
    url = f"/api/v1/patients/{person.study_id}/consent/withdrawals"
    body = {"scope": "storage", "date": str(clock.today()), "requested_by": "mother"}
    page = kiel.post(
        f"/patients/{person.study_id}/consent/withdraw", data={**body, "step": "preview"}
    ).get_data(as_text=True)
    assert here.barcode in page and there.barcode not in page
    assert freezer.freezer.barcode not in page and "F-80-01" not in page
    for answer in (kiel.post(f"{url}?dry_run=true", json=body), kiel.post(url, json=body)):
        assert answer.status_code in (200, 201), answer.json
        shown = str(answer.json)
        assert there.barcode not in shown and freezer.freezer.barcode not in shown
        assert [t["barcode"] for t in answer.json["destruction"]] == [here.barcode]
        assert [t["barcode"] for t in answer.json["blocked"]] == [here.barcode]
        assert "1 destruction task(s)" in answer.json["summary"]
    everywhere = as_role("consent_officer").get(url).json
    assert everywhere[0]["tasks"]["pending"] == 2
    assert set(statuses(session, person.barcodes).values()) == {"blocked"}


def _withdrawal_of(split: Any, study_id: str, as_role: Any) -> int:
    return next(
        w["withdrawal"]["id"]
        for w in as_role("consent_officer").get("/api/v1/consent/withdrawals").json
        if w["study_id"] == study_id
    )


def test_correcting_a_withdrawal_reports_what_it_did_at_the_officers_sites(split, as_role, session):  # type: ignore[no-untyped-def]
    """The NL-PMC patient's withdrawal corrected by an NL-PMC officer: both tubes go back in
    use and the recall is cancelled, but the answer counts the NL-PMC ones only (one task,
    one tube, one recall); the tube moved to Kiel is Kiel's."""
    wid = _withdrawal_of(split, split.nl.study_id, as_role)
    answer = as_role("consent_officer", sites=[NL]).post(
        f"/api/v1/consent/withdrawals/{wid}/correction", json={"reason": "entered in error"}
    )
    assert answer.status_code == 201, answer.json
    done = answer.json
    assert (done["tasks_cancelled"], done["tubes_back_in_use"], done["recalls_cancelled"]) == (
        1,
        1,
        1,
    )
    assert split.moved.barcode not in str(done)
    moved_and_stays = [t.barcode for t in split.nl.tubes[1:]]
    assert set(statuses(session, moved_and_stays).values()) == {"available"}


def test_a_tube_destroyed_at_another_site_is_not_named_to_the_correcting_officer(
    split, as_role, tech, session
):  # type: ignore[no-untyped-def]
    """The Kiel patient's tube at NL-PMC was destroyed there; the Kiel officer corrects the
    withdrawal: the Kiel tube is back in use, and the answer names no NL-PMC tube."""
    wid = _withdrawal_of(split, split.de.study_id, as_role)
    at_nl = split.de.tubes[1]
    task = next(
        t
        for t in tech.get("/api/v1/consent/destruction-tasks").json
        if t["barcode"] == at_nl.barcode
    )
    assert tech.post(f"/api/v1/consent/destruction-tasks/{task['id']}/done").status_code == 200
    answer = as_role("consent_officer", sites=[KIEL]).post(
        f"/api/v1/consent/withdrawals/{wid}/correction", json={"reason": "entered in error"}
    )
    assert answer.status_code == 201, answer.json
    assert answer.json["already_destroyed"] == [] and at_nl.barcode not in str(answer.json)
    assert (answer.json["tasks_cancelled"], answer.json["tubes_back_in_use"]) == (1, 1)
    assert statuses(session, split.de.barcodes) == {
        split.de.barcodes[0]: "available",
        at_nl.barcode: "destroyed",
    }
