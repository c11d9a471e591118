"""Picking by scanning, shipping, receipt, and consent withdrawn along the way: tubes drop out
of open requests, the gate refuses them at shipping, shipped ones are recalled."""

from __future__ import annotations

import csv
import datetime as dt
import io

from consent_helpers import ACTOR, NUMBERING, officer  # noqa: F401
from requests_helpers import (  # noqa: F401
    SHIPMENT,
    allocated,
    donor,
    event_types,
    freezer,
    give,
    held,
    new_request,
    pick_all,
    researcher,
    shipped,
    statuses,
    studies,
)
from sqlalchemy import select

from biobank import clock
from biobank.consent import pseudonym
from biobank.consent import service as consent
from biobank.consent.models import RecallNotice
from biobank.requests.models import RequestAliquot
from biobank.storage import service as storage


def _withdraw(officer, study_id: str, scope: str, dry_run: bool = False):  # type: ignore[no-untyped-def]  # noqa: F811
    url = f"/api/v1/patients/{study_id}/consent/withdrawals" + ("?dry_run=true" if dry_run else "")
    return officer.post(
        url,
        json={
            "scope": scope,
            "date": str(clock.today()),
            "requested_by": "mother",
            "reason": "parents' wish",
        },
    )


def test_the_pick_list_is_in_freezer_order_with_each_tubes_path(researcher, manager, tech, donor):
    """Rack 2 before Rack 10, then by position; each tube with freezer, path, box, position."""
    late = donor({"DX": 1}, "DEMO", box="late")
    early = donor({"DX": 1}, "DEMO", box="early")
    number = allocated(researcher, manager)
    tubes = tech.get(f"/api/v1/requests/{number}/pick-list").json["tubes"]
    assert [t["barcode"] for t in tubes] == early.barcodes + late.barcodes
    where = tubes[0]["location"]
    assert where["path"].startswith("NL-PMC / F-80-01 / Rack 2 / Plasma")
    assert where["position"] == "A1" and where["box"].startswith("BX")
    assert researcher.get(f"/api/v1/requests/{number}/pick-list").status_code == 403


def test_a_freezer_named_with_a_slash_sorts_as_one_name_in_the_pick_list(
    researcher, manager, tech, donor, freezer, session
):
    """A freezer named "F-80-01 / B" comes after F-80-01's racks, not among them as if it were
    F-80-01 holding a container "B": names are compared whole, never a path split again."""
    twin = storage.create_freezer(
        session,
        ACTOR,
        {"site": "NL-PMC", "name": "F-80-01 / B", "freezer_type": "mechanical-80"},
        NUMBERING,
    )
    rack = storage.create_container(
        session, ACTOR, {"kind": "rack", "name": "Rack 1", "parent": twin.barcode}, NUMBERING
    )
    freezer.twin = storage.create_box(
        session, ACTOR, {"box_type": "9X9", "parent": rack.barcode, "name": "Plasma"}, NUMBERING
    )
    session.commit()
    in_twin = donor({"DX": 1}, "DEMO", box="twin")
    late = donor({"DX": 1}, "DEMO", box="late")
    early = donor({"DX": 1}, "DEMO", box="early")
    number = allocated(researcher, manager, patients=3)
    tubes = tech.get(f"/api/v1/requests/{number}/pick-list").json["tubes"]
    assert [t["barcode"] for t in tubes] == early.barcodes + late.barcodes + in_twin.barcodes
    assert tubes[-1]["location"]["path"].startswith("NL-PMC / F-80-01 / B / Rack 1 / Plasma")


def test_picking_a_tube_not_in_the_request_is_refused_saying_so(researcher, manager, tech, donor):
    """A tube of another request, or of none, is a 409 naming the request it is not in."""
    for _ in range(4):
        donor({"DX": 1}, "DEMO")
    first = allocated(researcher, manager)
    second = allocated(researcher, manager)
    theirs = held(tech, second)[0]
    wrong = tech.post(f"/api/v1/requests/{first}/pick", json={"barcode": theirs})
    assert wrong.status_code == 409
    assert wrong.json["message"] == (
        f"{theirs} is not in request {first}: it is held for request {second}; put it back"
    )
    loose = donor({"DX": 1}).barcodes[0]
    nobody = tech.post(f"/api/v1/requests/{first}/pick", json={"barcode": loose})
    assert nobody.status_code == 409 and "held for no request" in nobody.json["message"]
    mine = held(tech, first)[0]
    assert tech.post(f"/api/v1/requests/{first}/pick", json={"barcode": mine}).status_code == 200
    again = tech.post(f"/api/v1/requests/{first}/pick", json={"barcode": mine})
    assert again.status_code == 409 and "picked already" in again.json["message"]
    assert (
        tech.post(f"/api/v1/requests/{first}/pick", json={"barcode": "XX-NOT-A-TUBE"}).status_code
        == 404
    )


def test_shipping_needs_every_tube_picked_or_dropped_with_a_reason(
    researcher, manager, tech, donor, session
):
    """An unpicked tube refuses the shipment; dropped (with a reason) it stays behind."""
    donor({"DX": 1}, "DEMO")
    donor({"DX": 1}, "DEMO")
    number = allocated(researcher, manager)
    first, second = held(tech, number)
    tech.post(f"/api/v1/requests/{number}/pick", json={"barcode": first})
    refused = manager.post(f"/api/v1/requests/{number}/ship", json=SHIPMENT)
    assert refused.status_code == 409 and second in refused.json["message"]
    assert tech.post(f"/api/v1/requests/{number}/drop", json={"barcode": second}).status_code == 422
    dropped = tech.post(
        f"/api/v1/requests/{number}/drop", json={"barcode": second, "reason": "vial cracked"}
    )
    assert dropped.json["released"] == 1 and dropped.json["put_back"] == []
    ok = manager.post(f"/api/v1/requests/{number}/ship", json=SHIPMENT)
    assert ok.json["shipped"] == 1
    assert statuses(session, [first, second]) == {first: "shipped", second: "available"}
    tubes = {t["barcode"]: t for t in manager.get(f"/api/v1/requests/{number}").json["tubes"]}
    assert tubes[second]["state"] == "dropped" and "vial cracked" in tubes[second]["reason"]


def test_the_manifest_comes_as_csv_and_as_a_printable_page(researcher, manager, tech, donor):
    """One line per shipped tube: barcode and the sub-study's pseudonym, no study_id,
    accession number or notes."""
    world = donor({"DX": 1}, "DEMO")
    donor({"DX": 1}, "DEMO")
    number, codes = shipped(researcher, manager, tech)
    sheet = researcher.get(f"/api/v1/requests/{number}/manifest.csv")
    assert sheet.status_code == 200 and sheet.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(sheet.get_data(as_text=True))))
    assert sorted(r["barcode"] for r in rows) == sorted(codes)
    assert pseudonym.pseudonym("DEMO", world.study_id) in {r["patient"] for r in rows}
    assert {r["timepoint"] for r in rows} == {"DX"} and {r["volume_ml"] for r in rows} == {"0.500"}
    page = researcher.get(f"/api/v1/requests/{number}/manifest")
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert number in text and "WC123456789" in text and "dry ice" in text
    for code in codes:
        assert code in text
    for secret in ("ACC-1", "residual after diagnostics", world.study_id):
        assert secret not in text and secret not in sheet.get_data(as_text=True)


def test_there_is_no_manifest_before_shipping(researcher, manager, donor):
    """An allocated request has no manifest yet: 409."""
    donor({"DX": 1}, "DEMO")
    donor({"DX": 1}, "DEMO")
    number = allocated(researcher, manager)
    assert researcher.get(f"/api/v1/requests/{number}/manifest.csv").status_code == 409


def test_receiving_twice_is_refused(researcher, manager, tech, donor):
    """The second receipt is a 409 saying when and by whom it was received."""
    donor({"DX": 1}, "DEMO")
    donor({"DX": 1}, "DEMO")
    number, _codes = shipped(researcher, manager, tech)
    bad = researcher.post(
        f"/api/v1/requests/{number}/receive",
        json={"discrepancies": [{"barcode": "IF99999999X", "note": "?"}]},
    )
    assert bad.status_code == 422 and "discrepancies.0.barcode" in bad.json["errors"]["json"]
    assert researcher.post(f"/api/v1/requests/{number}/receive", json={}).status_code == 200
    twice = researcher.post(f"/api/v1/requests/{number}/receive", json={})
    assert twice.status_code == 409 and researcher.username in twice.json["message"]


def test_used_and_returned_only_after_receipt(researcher, manager, tech, donor, session):
    """Consumed before receipt is a 409; a tube of another request is a 422."""
    donor({"DX": 1}, "DEMO")
    donor({"DX": 1}, "DEMO")
    number, codes = shipped(researcher, manager, tech)
    early = researcher.post(f"/api/v1/requests/{number}/consumed", json={"barcodes": codes[:1]})
    assert early.status_code == 409 and "receipt first" in early.json["message"]
    stranger = donor({"DX": 1}).barcodes[0]
    researcher.post(f"/api/v1/requests/{number}/receive", json={})
    foreign = researcher.post(f"/api/v1/requests/{number}/consumed", json={"barcodes": [stranger]})
    assert foreign.status_code == 422
    assert (
        researcher.post(f"/api/v1/requests/{number}/consumed", json={"barcodes": codes}).status_code
        == 200
    )
    again = researcher.post(f"/api/v1/requests/{number}/consumed", json={"barcodes": codes[:1]})
    assert again.status_code == 409 and "consumed already" in again.json["message"]
    assert event_types(session, codes[0])[-1] == "consumed"


def test_a_substudy_withdrawal_takes_the_tube_out_of_open_requests(
    researcher, manager, tech, donor, officer, session
):  # noqa: F811
    """The tube goes back to available (still usable for other sub-studies), dropped with the
    withdrawal as its reason; the dry run shows it first."""
    world = donor({"DX": 1}, "DEMO", "MRD-NGS")
    donor({"DX": 1}, "DEMO")
    number = allocated(researcher, manager)
    preview = _withdraw(officer, world.study_id, "DEMO", dry_run=True)
    assert preview.json["effects"]["requests"] == [
        {"barcode": world.barcodes[0], "description": f"taken out of request {number}"}
    ]
    assert _withdraw(officer, world.study_id, "DEMO").status_code == 201
    assert statuses(session, world.barcodes) == {world.barcodes[0]: "available"}
    tubes = {t["barcode"]: t for t in manager.get(f"/api/v1/requests/{number}").json["tubes"]}
    assert tubes[world.barcodes[0]]["state"] == "dropped"
    assert "consent withdrawn (DEMO)" in tubes[world.barcodes[0]]["reason"]
    rest = pick_all(tech, number)
    assert len(rest) == 1
    assert manager.post(f"/api/v1/requests/{number}/ship", json=SHIPMENT).json["shipped"] == 1


def test_a_storage_withdrawal_blocks_and_drops_a_picked_tube(
    researcher, manager, tech, donor, officer, session
):  # noqa: F811
    """Storage withdrawn after picking: the tube is blocked, dropped, and named to put back."""
    world = donor({"DX": 1}, "DEMO")
    donor({"DX": 1}, "DEMO")
    number = allocated(researcher, manager)
    pick_all(tech, number)
    done = _withdraw(officer, world.study_id, "storage")
    assert done.json["effects"]["requests"][0]["description"] == (
        f"taken out of request {number} (picked already: put it back)"
    )
    assert statuses(session, world.barcodes) == {world.barcodes[0]: "blocked"}
    assert manager.post(f"/api/v1/requests/{number}/ship", json=SHIPMENT).json["shipped"] == 1


def test_the_gate_at_shipping_drops_a_tube_whose_consent_ended_unnoticed(
    researcher, manager, tech, donor, officer, session, monkeypatch
):  # noqa: F811
    """Were a withdrawal to reach the log without telling requests, shipping still refuses the
    tube: it drops out with the gate's reasons and the others ship."""
    monkeypatch.delitem(consent.WITHDRAWAL_EFFECTS, "requests")
    world = donor({"DX": 1}, "DEMO", "MRD-NGS")
    donor({"DX": 1}, "DEMO")
    number = allocated(researcher, manager)
    pick_all(tech, number)
    _withdraw(officer, world.study_id, "DEMO")
    result = manager.post(f"/api/v1/requests/{number}/ship", json=SHIPMENT).json
    assert result["shipped"] == 1
    reasons = result["dropped"][world.barcodes[0]]
    assert reasons == [f"consent for sub-study DEMO withdrawn on {clock.today()}"]
    assert statuses(session, world.barcodes) == {world.barcodes[0]: "available"}


def test_a_closed_substudy_leaves_nothing_to_ship(
    researcher, manager, tech, donor, session, studies
):  # noqa: F811
    """Every tube refused at shipping: a 409 with the reasons; nothing is released."""
    donor({"DX": 1}, "DEMO")
    donor({"DX": 1}, "DEMO")
    number = allocated(researcher, manager)
    codes = pick_all(tech, number)
    studies.demo.open = False
    session.commit()
    refused = manager.post(f"/api/v1/requests/{number}/ship", json=SHIPMENT)
    assert refused.status_code == 409 and "sub-study DEMO is closed" in refused.json["message"]
    assert set(statuses(session, codes).values()) == {"reserved"}


def test_a_recall_reaches_the_request_and_the_researcher_answers_it(
    researcher, manager, tech, donor, officer, session, as_role
):  # noqa: F811
    """Consent withdrawn for a shipped tube: the recall names request and recipient; the
    researcher acknowledges and reports the tube destroyed."""
    world = donor({"DX": 1}, "DEMO")
    donor({"DX": 1}, "DEMO")
    number, codes = shipped(researcher, manager, tech)
    researcher.post(f"/api/v1/requests/{number}/receive", json={})
    _withdraw(officer, world.study_id, "storage")
    notice = session.scalar(select(RecallNotice))
    assert notice.request_reference == number
    assert notice.recipient == "Dr. K. Researcher, ALL lab, Kiel"
    [recall] = researcher.get(f"/api/v1/requests/{number}").json["recalls"]
    assert recall["barcode"] == world.barcodes[0] and recall["acknowledged_at"] is None
    outsider = as_role("researcher", substudies=["MRD-NGS"])
    base = f"/api/v1/requests/{number}/recalls/{recall['id']}"
    assert outsider.post(f"{base}/acknowledge").status_code == 404
    acknowledged = researcher.post(f"{base}/acknowledge")
    assert acknowledged.json["acknowledged_by"] == researcher.username
    assert researcher.post(f"{base}/acknowledge").status_code == 409
    destroyed = researcher.post(f"{base}/destroyed")
    assert destroyed.json["destruction_reported_at"] is not None
    assert statuses(session, world.barcodes) == {world.barcodes[0]: "destroyed"}
    row = session.scalar(
        select(RequestAliquot).where(RequestAliquot.aliquot_id == world.tubes[0].id)
    )
    assert row.state == "destroyed"
    assert (
        researcher.post(f"/api/v1/requests/{number}/recalls/999999/acknowledge").status_code == 404
    )
    researcher.post(
        f"/api/v1/requests/{number}/consumed",
        json={"barcodes": [c for c in codes if c != world.barcodes[0]]},
    )
    assert researcher.post(f"/api/v1/requests/{number}/close").json["state"] == "closed"


def test_the_pick_list_costs_the_same_queries_for_two_tubes_or_ten(
    researcher, manager, tech, donor, count_queries
):
    """No query per tube: paths, positions and labels are read for all tubes at once."""
    costs = []
    for patients in (2, 10):
        for _ in range(patients):
            donor({"DX": 1}, "DEMO")
        number = allocated(researcher, manager, patients=patients)
        with count_queries() as counted:
            tubes = tech.get(f"/api/v1/requests/{number}/pick-list").json["tubes"]
        assert len(tubes) == patients
        costs.append(counted.count)
    assert costs[0] == costs[1], costs


def test_the_shipping_day_is_a_date_never_in_the_future(researcher, manager, tech, donor, session):
    """``shipped_on`` in the future is a 422 naming it; yesterday is kept as the day it
    left (the biobank's calendar day)."""
    from biobank import clock
    from biobank.requests.models import SampleRequest, Shipment

    donor({"DX": 1}, "DEMO")
    donor({"DX": 1}, "DEMO")
    number = allocated(researcher, manager)
    pick_all(tech, number)
    tomorrow = (clock.today() + dt.timedelta(days=1)).isoformat()
    refused = manager.post(
        f"/api/v1/requests/{number}/ship", json={**SHIPMENT, "shipped_on": tomorrow}
    )
    assert refused.status_code == 422 and "shipped_on" in str(refused.json)
    yesterday = clock.today() - dt.timedelta(days=1)
    ok = manager.post(
        f"/api/v1/requests/{number}/ship", json={**SHIPMENT, "shipped_on": yesterday.isoformat()}
    )
    assert ok.status_code == 200, ok.json
    left = session.scalar(
        select(Shipment.shipped_at)
        .join(SampleRequest, SampleRequest.id == Shipment.request_id)
        .where(SampleRequest.number == number)
    )
    assert clock.day_of(left if left.tzinfo else left.replace(tzinfo=dt.UTC)) == yesterday
