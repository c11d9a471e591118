"""Site scopes: a user limited to DE-KIEL sees and changes only DE-KIEL's patients, tubes,
boxes and freezers; everything at NL-PMC answers as if it did not exist. The route walk
calls every route of the app, as a Kiel user of each role, with NL-PMC's objects."""

from __future__ import annotations

import datetime as dt
import re
from types import SimpleNamespace
from typing import Any

import pytest
from consent_helpers import FORM, officer  # noqa: F401
from db_helpers import row_counts
from requests_helpers import (  # noqa: F401
    ACTOR,
    NUMBERING,
    SHIPMENT,
    allocated,
    donor,
    freezer,
    give,
    new_request,
    pick_all,
    researcher,
    shipped,
    statuses,
    store,
    studies,
)
from sqlalchemy import select, text

from biobank import clock
from biobank.auth import scope
from biobank.auth.models import ROLES
from biobank.consent import pseudonym
from biobank.consent.models import RecallNotice
from biobank.reference import service as reference
from biobank.requests.models import RequestAliquot, SampleRequest
from biobank.samples.models import Aliquot, Sample
from biobank.storage import operations
from biobank.storage import service as storage
from biobank.storage.models import Excursion

KIEL = "DE-KIEL"
TODAY = clock.today()


@pytest.fixture
def kiel(session):  # type: ignore[no-untyped-def]
    """Site DE-KIEL with a freezer, a rack and a box."""
    reference.create(session, ACTOR, "sites", {"code": KIEL, "name": "UKSH Kiel", "country": "DE"})
    made = storage.create_freezer(
        session,
        ACTOR,
        {"site": KIEL, "name": "KI-80-01", "freezer_type": "mechanical-80"},
        NUMBERING,
    )
    rack = storage.create_container(
        session, ACTOR, {"kind": "rack", "name": "Rack 1", "parent": made.barcode}, NUMBERING
    )
    box = storage.create_box(
        session,
        ACTOR,
        {"box_type": "9X9", "parent": rack.barcode, "name": "Kiel plasma"},
        NUMBERING,
    )
    session.commit()
    return SimpleNamespace(freezer=made, rack=rack, box=box)


@pytest.fixture
def world(session, kiel, freezer, donor, researcher, manager, tech, officer):  # type: ignore[no-untyped-def]  # noqa: F811
    """NL-PMC: two patients with stored tubes, one tube shipped and recalled (a withdrawal,
    its destruction tasks and recall notice), an excursion. DE-KIEL: a patient whose tubes
    are in the Kiel box."""
    nl = donor({"DX": 2}, "DEMO")
    other = donor({"DX": 2}, "DEMO")
    number, shipped_codes = shipped(researcher, manager, tech, patients=2)
    researcher.post(f"/api/v1/requests/{number}/receive", json={})
    withdrawn = officer.post(
        f"/api/v1/patients/{nl.study_id}/consent/withdrawals",
        json={
            "scope": "storage",
            "date": str(TODAY),
            "requested_by": "mother",
            "reason": "parents' wish",
        },
    )
    assert withdrawn.status_code == 201, withdrawn.json
    notice = session.scalar(select(RecallNotice))
    de = donor({"DX": 3}, "DEMO", site=KIEL)
    # Two of the Kiel patient's tubes move to the Kiel box; one stays at NL-PMC (NL's now).
    *moved, left = de.tubes
    operations.relocate(
        session, ACTOR, [operations.Target(t, kiel.box, 1, i + 1) for i, t in enumerate(moved)]
    )
    de.tubes, de.barcodes = moved, [t.barcode for t in moved]
    excursion = Excursion(
        freezer_id=freezer.freezer.id,
        started_at=clock.now() - dt.timedelta(hours=5),
        ended_at=clock.now() - dt.timedelta(hours=4),
        peak_celsius=-40,
        recorded_by=ACTOR,
    )
    session.add(excursion)
    session.commit()
    tasks = officer.get("/api/v1/consent/destruction-tasks").json
    nl_tube = next(t for t in nl.tubes if t.barcode not in shipped_codes)
    sample = nl_tube.sample
    return SimpleNamespace(
        nl=nl,
        other=other,
        de=de,
        kiel=kiel,
        nl_store=freezer,
        request=number,
        notice=notice,
        withdrawal=withdrawn.json["withdrawal"]["id"],
        excursion=excursion,
        tube=nl_tube,
        sample=sample,
        free=next(t for t in other.tubes if t.barcode not in shipped_codes),
        task=tasks[0]["id"] if tasks else None,
        left=left,
        secrets=_identifiers(nl, other, freezer, sample) | {left.barcode},
    )


def _identifiers(nl, other, freezer, sample) -> set[str]:  # type: ignore[no-untyped-def]
    """What a Kiel user must never read: NL-PMC's patients, tubes, sample, boxes, freezer."""
    return {
        nl.study_id,
        other.study_id,
        *nl.barcodes,
        *other.barcodes,
        sample.barcode,
        freezer.freezer.barcode,
        freezer.early.barcode,
        freezer.late.barcode,
    }


def test_the_kiel_technician_of_the_issue_reads_lists_scans_and_takes_out_nothing_of_nl(
    world, as_role, session
):  # type: ignore[no-untyped-def]
    """The issue's finding: a technician with --site DE-KIEL read an NL patient, listed every
    site's patients, scanned and took out an NL tube stored at NL-PMC (200 each)."""
    kiel_tech = as_role("technician", sites=[KIEL])
    assert kiel_tech.get(f"/api/v1/patients/{world.nl.study_id}").status_code == 404
    listed = {p["study_id"] for p in kiel_tech.get("/api/v1/patients").json}
    assert listed == {world.de.study_id}
    scanned = kiel_tech.get(f"/api/v1/scan/{world.tube.barcode}")
    assert scanned.status_code == 404
    assert "not at your site" in scanned.json["message"]
    assert set(scanned.json) == {"code", "status", "message"}
    taken = kiel_tech.post(f"/api/v1/aliquots/{world.tube.barcode}/take-out", json={})
    assert taken.status_code == 404
    assert session.scalar(select(Aliquot.status).where(Aliquot.id == world.tube.id)) == "blocked"


def test_a_kiel_user_sees_and_handles_kiel_objects_as_before(world, as_role):  # type: ignore[no-untyped-def]
    """The scope narrows, it does not refuse: Kiel's own patient, tubes and box work."""
    kiel_tech = as_role("technician", sites=[KIEL])
    tube = world.de.barcodes[0]
    assert kiel_tech.get(f"/api/v1/patients/{world.de.study_id}").status_code == 200
    card = kiel_tech.get(f"/api/v1/scan/{tube}")
    assert card.status_code == 200 and card.json["location"]["path"].startswith(KIEL)
    assert {a["barcode"] for a in kiel_tech.get("/api/v1/aliquots").json} == set(world.de.barcodes)
    assert kiel_tech.post(f"/api/v1/aliquots/{tube}/take-out", json={}).status_code == 200
    assert kiel_tech.get(f"/api/v1/boxes/{world.kiel.box.barcode}/map").status_code == 200


def test_the_scope_ends_with_the_request_whatever_its_answer(world, as_role, session):  # type: ignore[no-untyped-def]
    """After a Kiel user's requests (a success, a 404, a 422), the session that outlives them
    (the tests keep one app context) reads every site again."""
    kiel_tech = as_role("technician", sites=[KIEL])
    for path, status in (
        ("/api/v1/patients", 200),
        (f"/api/v1/patients/{world.nl.study_id}", 404),
        ("/api/v1/patients?bogus=1", 422),
    ):
        assert kiel_tech.get(path).status_code == status
        assert scope.of(session).everywhere, path


def test_users_without_sites_see_every_site(world, as_role):  # type: ignore[no-untyped-def]
    """No scope, no limit: the technician of today sees both sites."""
    everywhere = as_role("technician")
    listed = {p["study_id"] for p in everywhere.get("/api/v1/patients").json}
    assert {world.nl.study_id, world.de.study_id} <= listed
    assert everywhere.get(f"/api/v1/scan/{world.tube.barcode}").status_code == 200


def test_a_tube_moved_to_kiel_belongs_to_kiel_from_then_on(world, as_role, session):  # type: ignore[no-untyped-def]
    """Shipped between sites: the tube is Kiel's once in a Kiel freezer, no longer NL's."""
    kiel_tech = as_role("technician", sites=[KIEL])
    nl_tech = as_role("technician", sites=["NL-PMC"])
    tube = world.free
    operations.relocate(session, ACTOR, [operations.Target(tube, world.kiel.box, 9, 9)])
    session.commit()
    assert kiel_tech.get(f"/api/v1/aliquots/{tube.barcode}").status_code == 200
    assert nl_tech.get(f"/api/v1/aliquots/{tube.barcode}").status_code == 404
    # The patient stays with the site that enrolled it.
    assert kiel_tech.get(f"/api/v1/patients/{world.other.study_id}").status_code == 404
    assert nl_tech.get(f"/api/v1/patients/{world.other.study_id}").status_code == 200


def _seen_by(code: str, *users: Any) -> list[int]:
    """What each user gets for GET /api/v1/aliquots/{code}."""
    return [user.get(f"/api/v1/aliquots/{code}").status_code for user in users]


def test_a_shipped_tube_belongs_to_its_patients_site_not_its_last_freezers(  # type: ignore[no-untyped-def]
    world, as_role, researcher, manager, tech
):  # noqa: F811
    """The Kiel patient's tube stored at NL-PMC is NL-PMC's while it has its place there;
    shipped to a researcher (shipping clears the place) it is Kiel's, where its patient is
    enrolled, and no longer NL-PMC's."""
    kiel_tech = as_role("technician", sites=[KIEL])
    nl_tech = as_role("technician", sites=["NL-PMC"])
    tube = world.left.barcode
    assert _seen_by(tube, kiel_tech, nl_tech) == [404, 200]
    _, codes = shipped(researcher, manager, tech, patients=1, aliquots_per_patient_timepoint=3)
    assert tube in codes
    assert _seen_by(tube, kiel_tech, nl_tech) == [200, 404]


def test_a_tube_destroyed_in_its_box_stays_with_the_boxs_site(world, as_role, donor):  # type: ignore[no-untyped-def]  # noqa: F811
    """A Kiel patient's tube destroyed where it lies at NL-PMC keeps its place there (until
    the place is given to another tube), and so stays NL-PMC's."""
    kiel_tech = as_role("technician", sites=[KIEL])
    nl_tech = as_role("technician", sites=["NL-PMC"])
    [tube] = donor({"DX": 1}, site=KIEL).barcodes
    destroyed = as_role("technician").post(
        f"/api/v1/aliquots/{tube}/status", json={"status": "destroyed", "reason": "tube cracked"}
    )
    assert destroyed.status_code == 200, destroyed.json
    assert _seen_by(tube, kiel_tech, nl_tech) == [404, 200]


def test_the_tube_rule_in_python_agrees_with_its_sql(world, session):  # type: ignore[no-untyped-def]
    """``admits_tube`` (the scan) and ``aliquot_filter`` (every list) pick the same tubes."""
    for sites in ((KIEL,), ("NL-PMC",), (KIEL, "NL-PMC")):
        within = scope.for_sites(sites)
        by_sql = set(
            session.scalars(select(Aliquot.id).where(scope.aliquot_filter(within, Aliquot.id)))
        )
        rows = session.execute(
            text(
                "SELECT a.id, a.sample_id AS sample, ps.code AS enrolled, (SELECT s.code FROM aliquot_position p "
                "JOIN storage_container b ON b.id = p.box_id "
                "JOIN storage_container r ON r.id = b.parent_id "
                "JOIN storage_container f ON f.id = r.parent_id JOIN site s ON s.id = f.site_id "
                "WHERE p.aliquot_id = a.id) AS stored "
                "FROM aliquot a JOIN sample sm ON sm.id = a.sample_id "
                "JOIN patient pt ON pt.id = sm.patient_id JOIN site ps ON ps.id = pt.site_id"
            )
        ).all()
        by_python = {r.id for r in rows if within.admits_tube(r.stored, r.enrolled)}
        assert by_sql == by_python and by_sql
        samples = set(
            session.scalars(select(Sample.id).where(scope.sample_filter(within, Sample.id)))
        )
        enrolled = {r.sample for r in rows if within.admits_site(r.enrolled)}
        assert samples == enrolled and samples  # no anonymised sample here


def test_a_scoped_page_costs_what_its_rows_cost_not_what_the_site_holds(session, donor, freezer):  # type: ignore[no-untyped-def]  # noqa: F811
    """The first five tubes of a list scoped to NL-PMC take as much statement work (SQLite's
    virtual machine steps, counted, not timed) when the site holds eight times the tubes."""
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("counts SQLite's virtual machine steps")
    page = (
        select(Aliquot.id)
        .where(scope.aliquot_filter(scope.for_sites(["NL-PMC"]), Aliquot.id))
        .order_by(Aliquot.id)
        .limit(5)
    )

    def steps() -> int:
        count = [0]

        def step() -> int:
            count[0] += 1
            return 0  # go on

        raw = session.connection().connection.dbapi_connection
        raw.set_progress_handler(step, 1)
        try:
            assert len(session.scalars(page).all()) == 5
        finally:
            raw.set_progress_handler(None, 1)
        return count[0]

    donor({"DX": 20}, volume="0.05")
    small = steps()
    donor({"DX": 60}, volume="0.05")
    donor({"DX": 80}, box="late", volume="0.05")
    assert steps() < 1.5 * small


def test_creating_at_another_site_is_refused_naming_the_site(world, as_role):  # type: ignore[no-untyped-def]
    """A Kiel manager registers no patient and no freezer at NL-PMC (422 on the site)."""
    kiel_manager = as_role("manager", sites=[KIEL])
    freezer = kiel_manager.post(
        "/api/v1/freezers",
        json={"site": "NL-PMC", "name": "Kiel's idea", "freezer_type": "mechanical-80"},
    )
    assert freezer.status_code == 422 and "site" in freezer.json["errors"]["json"]
    patient = kiel_manager.post(
        "/api/v1/patients",
        json={
            "study_id": "IF21-NL-999",
            "site": "NL-PMC",
            "sex": "F",
            "diagnosis": "B-ALL",
            "fusion_partner": "AFF1",
            "diagnosis_date": str(TODAY - dt.timedelta(days=30)),
            "age_at_diagnosis_days": 100,
        },
    )
    assert patient.status_code == 422 and "site" in patient.json["errors"]["json"]


def test_the_header_search_finds_nothing_of_another_site(world, as_role):  # type: ignore[no-untyped-def]
    """/find with an NL study ID, tube, sample or box: "nothing found", as for a typo."""
    kiel_manager = as_role("manager", sites=[KIEL])
    for q in (
        world.nl.study_id,
        world.tube.barcode,
        world.sample.barcode,
        world.nl_store.early.barcode,
    ):
        assert kiel_manager.get(f"/find?q={q}").status_code == 404, q
    assert kiel_manager.get(f"/find?q={world.de.study_id}").status_code == 303


def test_fhir_shows_a_kiel_user_kiel_specimens_and_patients_only(world, as_role):  # type: ignore[no-untyped-def]
    """The FHIR API applies the same scope: Specimen and Patient searches, reads."""
    kiel_tech = as_role("technician", sites=[KIEL])
    bundle = kiel_tech.get("/fhir/Specimen?_count=100").json
    tubes = {
        i["value"] for e in bundle.get("entry", []) for i in e["resource"].get("identifier", [])
    }
    assert not tubes & world.secrets
    assert set(world.de.barcodes) <= tubes  # Kiel's patient's tubes at Kiel; not the one at NL
    patients = kiel_tech.get("/fhir/Patient").json
    assert [e["resource"]["id"] for e in patients["entry"]] == [world.de.study_id]
    assert kiel_tech.get(f"/fhir/Specimen/aliquot-{world.tube.id}").status_code == 404


def _available(user: Any, query: str = "") -> tuple[int, int]:
    """(tubes, patients summed over groups) of the availability answer for DEMO."""
    answer = user.get(f"/api/v1/requests/availability{query}")
    assert answer.status_code == 200, answer.json
    return answer.json["aliquots"], sum(g["patients"] for g in answer.json["groups"])


@pytest.mark.parametrize(
    "query", ["", "?max_freeze_thaw=9"], ids=["from the tally", "from the tubes"]
)
def test_availability_counts_only_the_tubes_at_the_askers_sites(world, as_role, query):  # type: ignore[no-untyped-def]
    """A Kiel researcher counts the Kiel tubes a sub-study may receive, not NL-PMC's (the
    Kiel patient's tube left at NL-PMC included); an NL-PMC researcher the others; their
    tubes make up what a researcher without sites counts, by the fast tally or from the
    tubes (the Kiel patient is a patient at both sites)."""
    kiel = _available(as_role("researcher", sites=[KIEL]), query)
    nl = _available(as_role("researcher", sites=["NL-PMC"]), query)
    everywhere = _available(as_role("researcher"), query)
    assert kiel == (len(world.de.tubes), 1)
    assert kiel[0] + nl[0] == everywhere[0] and nl[0] > 0


def test_what_matches_a_request_now_counts_the_askers_sites_only(world, as_role, researcher):  # type: ignore[no-untyped-def]  # noqa: F811
    """The manager's "matching now" of a submitted request: a Kiel manager counts Kiel's
    tubes, as availability does for the same criteria."""
    number = new_request(researcher)
    criteria = "?timepoints=DX&materials=BM&aliquot_types=PLASMA"
    for sites in ([KIEL], ["NL-PMC"], []):
        matching = (
            as_role("manager", sites=sites).get(f"/api/v1/requests/{number}").json["matching_now"]
        )
        counted = _available(as_role("researcher", sites=sites), criteria)
        assert (matching["aliquots"], matching["patients"]) == counted, sites
    kiel = as_role("manager", sites=[KIEL]).get(f"/api/v1/requests/{number}").json
    assert kiel["matching_now"]["aliquots"] == len(world.de.tubes)


def _reserved_for(session: Any, number: str) -> set[str]:
    """The barcodes of the tubes a request holds."""
    return set(
        session.scalars(
            select(Aliquot.barcode)
            .join(RequestAliquot, RequestAliquot.aliquot_id == Aliquot.id)
            .join(SampleRequest, SampleRequest.id == RequestAliquot.request_id)
            .where(SampleRequest.number == number)
        )
    )


def test_a_kiel_manager_allocates_the_kiel_tubes_they_were_shown(
    world,
    as_role,
    researcher,  # type: ignore[no-untyped-def]  # noqa: F811
    session,
):
    """A request whose matching tubes lie at both sites (the Kiel patient's, one of them
    still at NL-PMC, and an NL patient's): a Kiel manager is shown Kiel's tubes matching
    now, is told the shortfall in those figures, and allocating what there is reserves
    exactly those tubes; NL-PMC's stay available."""
    number = new_request(researcher, patients=2, aliquots_per_patient_timepoint=3)
    kiel_manager = as_role("manager", sites=[KIEL])
    assert kiel_manager.post(f"/api/v1/requests/{number}/approve", json={}).status_code == 200
    shown = kiel_manager.get(f"/api/v1/requests/{number}").json["matching_now"]
    everywhere = as_role("manager").get(f"/api/v1/requests/{number}").json["matching_now"]
    assert everywhere["aliquots"] > shown["aliquots"] > 0  # tubes at both sites match
    short = kiel_manager.post(f"/api/v1/requests/{number}/allocate", json={})
    assert short.status_code == 409, short.json
    assert short.json["errors"]["found"] == shown
    answer = kiel_manager.post(f"/api/v1/requests/{number}/allocate", json={"allow_partial": True})
    assert answer.status_code == 200, answer.json
    reserved = _reserved_for(session, number)
    assert reserved == set(world.de.barcodes) and len(reserved) == shown["aliquots"]
    assert answer.json["allocation"]["patients_found"] == shown["patients"]
    assert statuses(session, [world.left.barcode, world.free.barcode]) == {
        world.left.barcode: "available",
        world.free.barcode: "available",
    }


# --- the route walk -------------------------------------------------------------------------

# Routes whose objects no site owns: reference data, sub-studies, accounts, printers, the
# API's own documents. They are walked too (nothing of NL-PMC may show), without parameters
# to replace by NL-PMC's objects.
UNSCOPED_PARAMS = {"filename", "resource_type", "rest", "name", "number"}


def _their(world: Any, rule: str, param: str) -> str | None:
    """The NL-PMC object that stands for a route parameter."""
    if param == "study_id":
        return world.nl.study_id
    if param == "code":
        for prefix, value in (
            ("/aliquots/", world.tube.barcode),
            ("/scan/", world.tube.barcode),
            ("/samples/", world.sample.barcode),
            ("/boxes/", world.nl_store.early.barcode),
            ("/containers/", world.nl_store.freezer.barcode),
            ("/freezers/", world.nl_store.freezer.barcode),
        ):
            if prefix in rule:
                return value
        return None  # reference data and sub-studies: not a site's
    if param == "fhir_id":
        if "/Patient/" in rule or "/Consent/" in rule:
            return world.nl.study_id if "/Patient/" in rule else f"{world.nl.study_id}-storage"
        if "/Specimen/" in rule:
            return f"aliquot-{world.tube.id}"
        return None
    return {
        "task_id": str(world.task),
        "notice_id": str(world.notice.id),
        "withdrawal_id": str(world.withdrawal),
        "excursion_id": str(world.excursion.id),
        "token": "no-such-token",
        "fmt": "png",
    }.get(param)


def _body(world: Any, rule: str) -> Any:
    """A body that would be valid for a Kiel object, so that only the scope refuses."""
    ours = world.kiel
    now = clock.now()
    bodies: dict[str, Any] = {
        "/api/v1/patients": {
            "study_id": "IF21-NL-998",
            "site": "NL-PMC",
            "sex": "F",
            "diagnosis": "B-ALL",
            "fusion_partner": "AFF1",
            "diagnosis_date": str(TODAY - dt.timedelta(days=30)),
            "age_at_diagnosis_days": 100,
        },
        "/api/v1/patients/<study_id>": {"reason": "typo", "fusion_partner": "MLLT3"},
        "/api/v1/patients/<study_id>/mrd": {
            "timepoint": "EOI",
            "value_percent": "0.5",
            "method": "FLOW",
        },
        "/api/v1/patients/<study_id>/risk-group": {
            "risk_group": "HR",
            "reason": "review",
            "effective_date": str(TODAY),
        },
        "/api/v1/patients/<study_id>/consent": {
            "component": "data",
            "decision": "given",
            "signed_on": str(TODAY),
            "form_version": FORM,
            "signed_by": "mother",
        },
        "/api/v1/patients/<study_id>/consent/withdrawals": {
            "scope": "storage",
            "date": str(TODAY),
            "requested_by": "mother",
        },
        "/api/v1/samples": {
            "study_id": world.nl.study_id,
            "material": "BM",
            "timepoint": "EOI",
            "collected_at": (now - dt.timedelta(hours=3)).isoformat(),
            "received_at": (now - dt.timedelta(hours=1)).isoformat(),
            "volume_ml": "1.0",
            "container_code": "PED",
        },
        "/api/v1/samples/<code>/split": {
            "aliquots": [{"aliquot_type": "PLASMA", "volume_ml": "0.1"}]
        },
        "/api/v1/aliquots/<code>/split": {
            "aliquots": [{"aliquot_type": "PLASMA", "volume_ml": "0.1"}]
        },
        "/api/v1/aliquots/<code>/status": {"status": "available", "reason": "checked"},
        "/api/v1/aliquots/<code>/place": {"box": ours.box.barcode},
        "/api/v1/aliquots/<code>/move": {"box": ours.box.barcode},
        "/api/v1/aliquots/<code>/missing": {"reason": "not in its place"},
        "/api/v1/freezers": {"site": "NL-PMC", "name": "F-X", "freezer_type": "mechanical-80"},
        "/api/v1/containers": {
            "kind": "rack",
            "name": "R-X",
            "parent": world.nl_store.freezer.barcode,
        },
        "/api/v1/containers/<code>/move": {"into": ours.freezer.barcode},
        "/api/v1/boxes": {"box_type": "9X9", "parent": world.nl_store.freezer.barcode},
        "/api/v1/boxes/<code>/scan-in": {"barcode": world.de.barcodes[0]},
        "/api/v1/boxes/<code>/scan-in/undo": {
            "barcode": world.de.barcodes[0],
            "at_box": ours.box.barcode,
            "at_position": "A1",
        },
        "/api/v1/boxes/<code>/mixing": {"allowed": True, "reason": "one study's tubes"},
        "/api/v1/freezers/<code>/excursions": {
            "started_at": (now - dt.timedelta(hours=3)).isoformat(),
            "ended_at": (now - dt.timedelta(hours=2)).isoformat(),
            "peak_celsius": "-50",
        },
        "/api/v1/storage/moves": {
            "moves": [{"barcode": world.tube.barcode, "box": ours.box.barcode}]
        },
        "/api/v1/labels/render": {"barcodes": [world.tube.barcode]},
        "/api/v1/print-jobs": {"printer": "no-printer", "barcodes": [world.tube.barcode]},
        "/api/v1/consent/check": {"substudy": "DEMO", "barcodes": [world.tube.barcode]},
        "/api/v1/requests/<request_number:number>/pick": {"barcode": world.tube.barcode},
        "/api/v1/requests/<request_number:number>/drop": {
            "barcode": world.tube.barcode,
            "reason": "broken",
        },
        "/api/v1/requests/<request_number:number>/returned": {
            "barcode": world.tube.barcode,
            "box": ours.box.barcode,
        },
        "/scan/place": {"code": world.tube.barcode, "box": ours.box.barcode},
        "/scan/<code>/storage": {"op": "take_out"},
        "/api/v1/consent/withdrawals/<withdrawal_id>/correction": {"reason": "entered in error"},
        "/consent/withdrawals/<withdrawal_id>/correction": {"reason": "entered in error"},
    }
    return bodies.get(rule, {})


# Routes that take an NL-PMC object in their body (not their path): refused as unknown
# input (422 naming the field) or as absent (404).
BODY_REFERENCES = {
    "/api/v1/patients",
    "/api/v1/samples",
    "/api/v1/freezers",
    "/api/v1/containers",
    "/api/v1/boxes",
    "/api/v1/storage/moves",
    "/api/v1/labels/render",
    "/api/v1/print-jobs",
    "/api/v1/consent/check",
    "/scan/place",
}


# Query strings that make a route answer at all (a list needs its range, a suggestion its
# count).
def _query(world: Any, rule: str) -> str:
    """The query string a route needs to answer at all, or to look for NL-PMC's objects."""
    if rule == "/find":
        return f"?q={world.tube.barcode}"
    if rule in ("/patients", "/boxes", "/api/v1/aliquots"):
        return ""
    return QUERIES.get(rule, "")


QUERIES = {
    "/api/v1/custody/events": f"?start={TODAY - dt.timedelta(days=2)}&end={TODAY}",
    "/api/v1/boxes/<code>/suggest": "?count=1",
    "/api/v1/storage/suggest": "?count=1",
    "/api/v1/aliquots/<code>/events/export": "?format=csv",
    "/api/v1/consent/reconsent-due": "?months=240",
}


def _routes(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return sorted(
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
        if rule.endpoint != "static" and not rule.rule.startswith("/api/docs")
    )


def _url(world: Any, rule: str) -> str | None:
    if rule.endswith("/pseudonyms/<name>"):  # who an NL patient's pseudonym stands for
        name = pseudonym.pseudonym("DEMO", world.nl.study_id)
        return f"/api/v1/substudies/DEMO/pseudonyms/{name}"
    url = rule
    for _converter, param in re.findall(r"<(?:([a-z_]+):)?([a-z_]+)>", rule):
        if param == "number":
            value = world.request
        else:
            value = _their(world, rule, param)
        if value is None:
            return None
        url = re.sub(r"<(?:[a-z_]+:)?" + param + ">", value, url)
    return url


def test_every_openapi_operation_is_a_walked_route(app, client):  # type: ignore[no-untyped-def]
    """The walk covers the OpenAPI document: each of its paths is a rule of the URL map."""
    document = client.get("/api/openapi.json").json
    rules = {re.sub(r"<(?:[a-z_]+:)?([a-z_]+)>", r"{\1}", r) for r, _ in _routes(app)}
    missing = {path for path in document["paths"] if path not in rules}
    assert not missing


def _walk(world, app, user) -> tuple[list[str], int]:  # type: ignore[no-untyped-def]
    """Every route as this user with NL-PMC's objects: (problems, routes walked)."""
    problems = []
    walked = 0
    for rule, method in _routes(app):
        url = _url(world, rule)
        if url is None or rule in ("/login", "/logout"):
            continue
        body = _body(world, rule)
        asked = url + _query(world, rule) + repr(body)
        if method == "GET":
            response = user.get(url + _query(world, rule))
        elif rule.startswith("/api/"):
            response = getattr(user, method.lower())(url, json=body)
        else:
            response = getattr(user, method.lower())(url, data=body)
        walked += 1
        status = response.status_code
        answer = response.get_data().decode("utf-8", "replace")
        scoped_path = any(
            p in rule
            for p in (
                "<study_id>",
                "<code>",
                "<task_id>",
                "<notice_id>",
                "<withdrawal_id>",
                "<excursion_id>",
                "<fhir_id>",
                "<name>",
            )
        )
        allowed = {403, 404}
        if rule in BODY_REFERENCES or not scoped_path:
            allowed = {200, 201, 303, 400, 403, 404, 405, 409, 422, 502}
        if status == 422 and scoped_path and re.search(r"\bno \w+ ", answer):
            allowed = {422}  # the path's object named as unknown input: absent all the same
        if status not in allowed:
            problems.append(f"{method} {url}: {status} {answer[:160]}")
        leaked = {s for s in world.secrets if s not in asked and s in answer}
        if leaked:
            problems.append(f"{method} {url}: shows {sorted(leaked)}")
    return problems, walked


@pytest.mark.parametrize("role", ["technician", "consent_officer", "manager"])
def test_the_walk_sees_nl_objects_without_a_scope(world, as_role, app, role):  # type: ignore[no-untyped-def]
    """The walk has teeth: the same walk by an unscoped user reads NL-PMC's objects."""
    problems, _ = _walk(world, app, as_role(role))
    assert len([p for p in problems if "shows" in p or ": 200 " in p]) > 10


@pytest.mark.parametrize("role", ROLES)
def test_the_route_walk_finds_nothing_of_another_site(world, as_role, app, session, role):  # type: ignore[no-untyped-def]
    """Every route, as a DE-KIEL user of this role, with NL-PMC's objects: 404 as absent (or
    the role's 403, or 422 for an NL object in a body); no NL identifier in any answer (but
    the one asked for); nothing written."""
    user = as_role(role, sites=[KIEL])
    before = row_counts(session)
    problems, walked = _walk(world, app, user)
    assert walked > 150
    after = row_counts(session)
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not problems, "\n".join(problems)
    assert not changed
