"""Inventory over time: the tallies the triggers keep against a recount from the tubes and
the custody log, through status changes, corrections and the CSV; the freeze–thaw spread."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from contextlib import contextmanager

import pytest
from reports_helpers import demo  # noqa: F401 (a fixture)
from sqlalchemy import func, select, text

from biobank.bulk import SQLITE_VARIABLES
from biobank.custody.models import CustodyEvent
from biobank.imports import service as imports
from biobank.imports.rows import COLUMNS
from biobank.patients.models import Patient
from biobank.reference.models import AliquotType, Material
from biobank.reports import tally
from biobank.reports.models import TallyPause
from biobank.samples import service as samples
from biobank.samples.models import Aliquot, Sample
from biobank.samples.service import Numbering
from biobank.samples.states import IN_HOUSE

KINDS = {
    "shipped": "shipped",
    "consumed": "consumed",
    "destroyed": "destroyed",
    "marked_missing": "missing",
    "returned": "returned",
    "found": "found",
}


def _recount(session):  # type: ignore[no-untyped-def]
    """Per (site, material, aliquot type): tubes made, tubes held now, and each flow from the
    custody log — all counted from the tubes and events themselves."""
    key = (func.coalesce(Patient.site_id, 0), Material.code, AliquotType.code)
    tubes = (
        select(*key, Aliquot.status, Aliquot.freeze_thaw_count, func.count())
        .join(Sample, Sample.id == Aliquot.sample_id)
        .outerjoin(Patient, Patient.id == Sample.patient_id)
        .join(Material, Material.id == Sample.material_id)
        .join(AliquotType, AliquotType.id == Aliquot.aliquot_type_id)
        .group_by(*key, Aliquot.status, Aliquot.freeze_thaw_count)
    )
    made: Counter = Counter()
    held: Counter = Counter()
    thaws: Counter = Counter()
    for site, material, kind, status, cycles, count in session.execute(tubes):
        made[(site, material, kind)] += count
        if status in IN_HOUSE:
            held[(site, material, kind)] += count
            thaws[cycles] += count
    events = (
        select(*key, CustodyEvent.event_type, func.count())
        .join(Aliquot, Aliquot.id == CustodyEvent.aliquot_id)
        .join(Sample, Sample.id == Aliquot.sample_id)
        .outerjoin(Patient, Patient.id == Sample.patient_id)
        .join(Material, Material.id == Sample.material_id)
        .join(AliquotType, AliquotType.id == Aliquot.aliquot_type_id)
        .where(CustodyEvent.event_type.in_(list(KINDS)))
        .group_by(*key, CustodyEvent.event_type)
    )
    flows: Counter = Counter()
    for _site, material, kind, event, count in session.execute(events):
        flows[(KINDS[event], material, kind)] += count
    return made, held, thaws, flows


def _report_rows(client, query=""):  # type: ignore[no-untyped-def]
    body = client.get(f"/api/v1/reports/inventory?{query}").json
    return body, body["rows"]


def _assert_agrees_with_a_recount(session, manager):  # type: ignore[no-untyped-def]
    """This month's received, held, flows and the freeze–thaw spread, in JSON and CSV, are
    what the tubes and their custody events say."""
    made, held, thaws, flows = _recount(session)
    body, rows = _report_rows(manager)
    month = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    this_month = [r for r in rows if r["month"] == month]
    per_group = {(r["material"], r["aliquot_type"]): r for r in this_month}
    held_by_group: Counter = Counter()
    for (_, material, kind), count in held.items():
        held_by_group[(material, kind)] += count
    assert {k: r["in_stock"] for k, r in per_group.items() if r["in_stock"]} == {
        k: v for k, v in held_by_group.items() if v
    }
    for kind in ("consumed", "destroyed", "missing", "found", "shipped"):
        assert sum(r[kind] for r in this_month) == sum(
            v for (k, _, _), v in flows.items() if k == kind
        ), kind
    assert sum(r["received"] for r in this_month) == sum(made.values())
    assert body["months"][-1]["in_stock"] == sum(held.values())
    assert {f["freeze_thaw_count"]: f["tubes"] for f in body["freeze_thaw"]} == {
        k: v for k, v in thaws.items() if v
    }
    lines = list(
        csv.DictReader(
            io.StringIO(manager.get("/api/v1/reports/inventory?format=csv").get_data(as_text=True))
        )
    )
    assert [(line["material"], line["aliquot_type"], int(line["in_stock"])) for line in lines] == [
        (r["material"], r["aliquot_type"], r["in_stock"]) for r in rows
    ]


def test_inventory_agrees_with_a_recount_of_the_tubes(demo, manager):  # noqa: F811
    """Received, held at the month's end, each flow and the freeze–thaw spread are what the
    tubes and their custody events say, per material and aliquot type, after status changes,
    a thaw and a sample corrected to another material."""
    tubes = list(
        demo.scalars(
            select(Aliquot).where(Aliquot.status == "available").order_by(Aliquot.id).limit(6)
        )
    )
    samples.change_status(demo, "test", tubes[0], "consumed", "used up")
    samples.change_status(demo, "test", tubes[1], "destroyed", "dropped")
    samples.change_status(demo, "test", tubes[2], "missing", "not in its box")
    samples.change_status(demo, "test", tubes[2], "available", "found again")
    tubes[3].freeze_thaw_count += 2
    # A correction: the sample of tubes[4] was blood, not marrow (its tubes move along).
    sample = demo.get(Sample, tubes[4].sample_id)
    other = demo.scalar(select(Material.id).where(Material.id != sample.material_id))
    sample.material_id = other
    demo.commit()

    _assert_agrees_with_a_recount(demo, manager)


def test_inventory_filters_and_bad_ranges(manager):
    """A material or aliquot type that does not exist is a 422 naming it; so is a range
    reversed, in the future or longer than the data allows."""
    for query, field in (
        ("material=XX", "material"),
        ("aliquot_type=XX", "aliquot_type"),
        ("from=2026-05-01&to=2026-04-01", "to"),
        ("to=2999-12-31", "to"),
        ("from=1999-01-01", "from"),
    ):
        response = manager.get(f"/api/v1/reports/inventory?{query}")
        assert response.status_code == 422, query
        assert field in response.json["errors"]["query"], query


def test_a_csv_import_counts_its_tubes_like_the_trigger(demo, tmp_path, monkeypatch):  # noqa: F811
    """The same CSV (tubes in house or not, thawed or not, two materials) imported twice:
    once as the import does it (the insert trigger held back, one grouped count per chunk of
    two rows), once with the trigger counting each tube: the tallies grow by the same rows.
    The hold ends with the import, also with one refused."""
    patient = demo.scalar(select(Patient).order_by(Patient.id))
    day = patient.diagnosis_date.isoformat()
    base = {
        "study_id": patient.study_id,
        "material": "BM",
        "timepoint": "DX",
        "aliquot_type": "PLASMA",
        "volume_ml": "0.5",
        "collected_at": f"{day}T09:00",
        "received_at": f"{day}T11:00",
        "container_code": "PED",
    }
    good = _write(
        tmp_path / "good.csv",
        [
            {**base, "status": "available"},
            {**base, "status": "consumed", "freeze_thaw_count": "1"},
            {**base, "status": "available", "freeze_thaw_count": "2"},
            {
                **base,
                "aliquot_type": "PELLET",
                "volume_ml": "",
                "cell_count": "5e6",
                "status": "blocked",
                "material": "PB",
            },
            {**base, "status": "destroyed"},
        ],
    )
    bad = _write(tmp_path / "bad.csv", [{**base}, {**base, "timepoint": "NO-SUCH"}])
    with pytest.raises(imports.ImportRefused):
        imports.import_aliquots(demo, "tester", bad, Numbering())
    assert demo.scalar(select(func.count()).select_from(TallyPause)) == 0
    demo.rollback()

    def grown_by_import():  # type: ignore[no-untyped-def]
        before = _tallies(demo)
        imports.import_aliquots(demo, "tester", good, Numbering(), chunk_size=2)
        assert demo.scalar(select(func.count()).select_from(TallyPause)) == 0
        demo.commit()
        after = _tallies(demo)
        after.subtract(before)
        return +after

    held_back = grown_by_import()
    monkeypatch.setattr(tally, "held_back", _trigger_counts)
    assert held_back and grown_by_import() == held_back
    kinds = {key[4] for key in held_back if len(key) == 5}
    assert {"received", "in_stock", "consumed", "blocked", "destroyed"} <= kinds


def test_a_chunk_of_more_groups_than_a_statement_takes(demo, tmp_path, monkeypatch):  # noqa: F811
    """One chunk of tubes in more groups (key, status, freeze–thaw cycles) than one statement
    of the held-back count takes: the tallies grow as the trigger would have made them."""
    patient = demo.scalar(select(Patient).order_by(Patient.id))
    day = patient.diagnosis_date.isoformat()
    groups = SQLITE_VARIABLES // len(tally.GROUP.split(", ")) + 3
    good = _write(
        tmp_path / "many.csv",
        [
            {
                "study_id": patient.study_id,
                "material": "BM",
                "timepoint": "DX",
                "aliquot_type": "PLASMA",
                "volume_ml": "0.5",
                "collected_at": f"{day}T09:00",
                "received_at": f"{day}T11:00",
                "container_code": "PED",
                "status": "available" if cycles % 3 else "blocked",
                "freeze_thaw_count": str(cycles),
            }
            for cycles in range(groups)
        ],
    )

    def grown_by_import():  # type: ignore[no-untyped-def]
        before = _tallies(demo)
        imports.import_aliquots(demo, "tester", good, Numbering())
        demo.commit()
        after = _tallies(demo)
        after.subtract(before)
        return +after

    held_back = grown_by_import()
    monkeypatch.setattr(tally, "held_back", _trigger_counts)
    assert grown_by_import() == held_back
    assert len([key for key in held_back if len(key) == 4]) == groups  # thaws: one per cycle


@contextmanager
def _trigger_counts(connection):  # type: ignore[no-untyped-def]
    """``tally.held_back`` that holds nothing back and counts nothing: the trigger counts."""

    class Nothing:
        def made(self, ids):  # type: ignore[no-untyped-def]
            pass

    yield Nothing()


def _tallies(session):  # type: ignore[no-untyped-def]
    found: Counter = Counter()
    for table, key in ((tally.FLOWS, tally.FLOW_KEY), (tally.THAWS, tally.THAW_KEY)):
        for *row, tubes in session.execute(text(f"SELECT {key}, tubes FROM {table}")):
            found[tuple(row)] += tubes
    return found


def _write(path, rows):  # type: ignore[no-untyped-def]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS), restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path
