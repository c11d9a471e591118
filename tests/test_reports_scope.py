"""Reports under site scopes: a site-scoped user's numbers are those of their sites' patients,
freezers and tubes by the one site rule (docs/permissions.md, "Site scopes"), counted here
independently, tube by tube, from where each tube has its place."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from reports_helpers import demo  # noqa: F401 (a fixture)
from sqlalchemy import select, text

from biobank.custody.models import CustodyEvent
from biobank.patients.models import Patient
from biobank.reference.models import AliquotType, Material, Site
from biobank.samples import service as samples
from biobank.samples.models import Aliquot, Sample
from biobank.samples.service import Numbering
from biobank.samples.states import DEPARTED, IN_HOUSE
from biobank.storage import operations
from biobank.storage import service as storage
from biobank.storage.models import Container, Position

ACTOR = "test"
# The custody events that are the report's flows, by the flow's name in the report.
FLOWS = {
    "shipped": "shipped",
    "consumed": "consumed",
    "destroyed": "destroyed",
    "marked_missing": "missing",
    "found": "found",
}


def _site_of_each_tube(session):  # type: ignore[no-untyped-def]
    """tube id → site code, by walking each stored tube's box up to its freezer in Python;
    a tube never stored: its patient's site (None: anonymised)."""
    codes = dict(session.execute(select(Site.id, Site.code)).all())
    containers = {c.id: (c.parent_id, c.site_id) for c in session.scalars(select(Container))}

    def freezer_site(box_id: int) -> str:
        parent, site = containers[box_id]
        while parent is not None:
            parent, site = containers[parent]
        return codes[site]

    placed = dict(session.execute(select(Position.aliquot_id, Position.box_id)).all())
    found = {}
    for tube, patient_site in session.execute(
        select(Aliquot.id, Patient.site_id)
        .join(Sample, Sample.id == Aliquot.sample_id)
        .outerjoin(Patient, Patient.id == Sample.patient_id)
    ):
        found[tube] = freezer_site(placed[tube]) if tube in placed else codes.get(patient_site)
    return found


@pytest.fixture
def spread(demo):  # type: ignore[no-untyped-def]  # noqa: F811
    """The demo (every tube stored at NL-PMC) with the rule at work: a freezer at AU-SCH
    holding two NL-PMC patients' tubes moved there, one of them then consumed; an NL-PMC
    patient re-enrolled at AU-SCH (its stored tubes stay with NL-PMC's freezer); a tube of
    an AU-SCH patient thawed twice and one marked missing."""
    numbering = Numbering()
    freezer = storage.create_freezer(
        demo,
        ACTOR,
        {"site": "AU-SCH", "name": "AU freezer", "freezer_type": "mechanical-80", "room": "lab"},
        numbering,
    )
    rack = storage.create_container(
        demo, ACTOR, {"kind": "rack", "name": "R1", "parent": freezer.barcode}, numbering
    )
    box = storage.create_box(
        demo, ACTOR, {"box_type": "9X9", "parent": rack.barcode, "name": "moved in"}, numbering
    )
    nl_tubes = list(
        demo.scalars(
            select(Aliquot)
            .join(Position, Position.aliquot_id == Aliquot.id)
            .join(Sample, Sample.id == Aliquot.sample_id)
            .join(Patient, Patient.id == Sample.patient_id)
            .join(Site)
            .where(Site.code == "NL-PMC", Aliquot.status == "available")
            .order_by(Aliquot.id)
            .limit(2)
        )
    )
    operations.move(
        demo,
        ACTOR,
        [operations.Target(tube, box, 1, index + 1) for index, tube in enumerate(nl_tubes)],
        "moved to AU",
    )
    samples.change_status(demo, ACTOR, nl_tubes[1], "consumed", "used up")
    au_tubes = list(
        demo.scalars(
            select(Aliquot)
            .join(Sample, Sample.id == Aliquot.sample_id)
            .join(Patient, Patient.id == Sample.patient_id)
            .join(Site)
            .where(Site.code == "AU-SCH", Aliquot.status == "available")
            .order_by(Aliquot.id)
            .limit(2)
        )
    )
    au_tubes[0].freeze_thaw_count += 2
    samples.change_status(demo, ACTOR, au_tubes[1], "missing", "not in its box")
    moved = demo.scalar(
        select(Patient).join(Site).where(Site.code == "NL-PMC").order_by(Patient.id.desc())
    )
    demo.execute(
        text("UPDATE patient SET site_id = :s WHERE id = :p"),
        {"s": demo.scalar(select(Site.id).where(Site.code == "AU-SCH")), "p": moved.id},
    )
    demo.commit()
    return demo


def _independent_inventory(session, codes):  # type: ignore[no-untyped-def]
    """For the tubes of the sites ``codes``: held now per (material, aliquot type), held per
    freeze–thaw count, made this month, and this month's flows from their custody events."""
    site = _site_of_each_tube(session)
    month = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    held: Counter = Counter()
    thaws: Counter = Counter()
    made = 0
    mine = set()
    for tube, status, cycles, created, material, kind in session.execute(
        select(
            Aliquot.id,
            Aliquot.status,
            Aliquot.freeze_thaw_count,
            Aliquot.created_at,
            Material.code,
            AliquotType.code,
        )
        .join(Sample, Sample.id == Aliquot.sample_id)
        .join(Material, Material.id == Sample.material_id)
        .join(AliquotType, AliquotType.id == Aliquot.aliquot_type_id)
    ):
        if site[tube] not in codes:
            continue
        mine.add(tube)
        made += created.strftime("%Y-%m") == month
        if status in IN_HOUSE:
            held[f"{material} {kind}"] += 1
            thaws[cycles] += 1
    flows: Counter = Counter()
    for tube, event, when in session.execute(
        select(CustodyEvent.aliquot_id, CustodyEvent.event_type, CustodyEvent.occurred_at).where(
            CustodyEvent.event_type.in_(list(FLOWS))
        )
    ):
        if tube in mine and when.strftime("%Y-%m") == month:
            flows[FLOWS[event]] += 1
    return held, thaws, made, flows


def _assert_inventory_is_the_sites_tubes(session, client, codes, query=""):  # type: ignore[no-untyped-def]
    held, thaws, made, flows = _independent_inventory(session, codes)
    body = client.get(f"/api/v1/reports/inventory?{query}").json
    last = body["months"][-1]
    assert last["in_stock"] == sum(held.values()), codes
    assert {
        f"{r['material']} {r['aliquot_type']}": r["in_stock"]
        for r in body["rows"]
        if r["month"] == last["month"] and r["in_stock"]
    } == +held, codes
    assert {f["freeze_thaw_count"]: f["tubes"] for f in body["freeze_thaw"]} == +thaws, codes
    assert last["received"] == made, codes
    for kind in ("shipped", "consumed", "destroyed", "missing", "found"):
        assert last[kind] == flows[kind], (codes, kind)


def _assert_capacity_is_the_sites_freezers(session, client, codes):  # type: ignore[no-untyped-def]
    """Used positions: the tubes (not departed) in boxes of the sites' freezers."""
    site = _site_of_each_tube(session)
    stored = sum(
        1
        for tube, status in session.execute(
            select(Position.aliquot_id, Aliquot.status).join(Aliquot)
        )
        if site[tube] in codes and status not in DEPARTED
    )
    summary = client.get("/api/v1/reports/capacity").json["summary"]
    assert {r["site"] for r in summary} <= set(codes)
    assert sum(r["occupied"] + r["loose"] for r in summary) == stored


def test_a_site_scoped_users_reports_count_their_sites_tubes(spread, as_role):
    """For a user of AU-SCH, of NL-PMC, and of both: inventory (stock, per material and type,
    freeze–thaw spread, this month's received and flows) is that of the tubes of their
    sites, counted tube by tube; capacity that of their freezers; completeness that of the
    patients enrolled there. A tube moved into AU-SCH's freezer counts there, not at its
    patient's NL-PMC; a patient re-enrolled at AU-SCH leaves its stored tubes to NL-PMC."""
    site = _site_of_each_tube(spread)
    assert Counter(site.values())["AU-SCH"] > 2  # never stored (not in house) and moved in
    enrolled = Counter(spread.scalars(select(Site.code).join(Patient, Patient.site_id == Site.id)))
    for codes in (["AU-SCH"], ["NL-PMC"], ["AU-SCH", "NL-PMC"]):
        scoped = as_role("technician", sites=codes)
        _assert_inventory_is_the_sites_tubes(spread, scoped, codes)
        _assert_capacity_is_the_sites_freezers(spread, scoped, codes)
        body = scoped.get("/api/v1/reports/completeness?per_page=500").json
        assert body["patients"] == sum(enrolled[c] for c in codes)
        assert {r["site"] for r in body["rows"]} == set(codes)


def test_a_site_or_country_named_counts_as_a_scope_does(spread, manager):
    """An unscoped manager naming a site (or a country) gets the numbers that site's own
    user gets: the same rule, not the patient's site; the whole trial is every tube."""
    _assert_inventory_is_the_sites_tubes(spread, manager, ["AU-SCH"], "site=AU-SCH")
    _assert_inventory_is_the_sites_tubes(spread, manager, ["NL-PMC"], "country=nl")
    everywhere = sorted(spread.scalars(select(Site.code)))
    _assert_inventory_is_the_sites_tubes(spread, manager, everywhere)


def test_another_site_is_not_found_in_any_report(spread, as_role):
    """A user of AU-SCH naming NL-PMC (or a site that does not exist) gets a 404 from each
    site-narrowed report; a country of no site of theirs covers nothing."""
    scoped = as_role("technician", sites=["AU-SCH"])
    for report in ("completeness", "capacity", "inventory"):
        for site in ("NL-PMC", "XX-NONE"):
            response = scoped.get(f"/api/v1/reports/{report}?site={site}")
            assert response.status_code == 404, (report, site)
            assert "site" in response.json["errors"]["query"]
    body = scoped.get("/api/v1/reports/inventory?country=NL").json
    assert body["months"][-1]["in_stock"] == 0 and body["freeze_thaw"] == []
    assert scoped.get("/api/v1/reports/completeness?country=NL").json["patients"] == 0
