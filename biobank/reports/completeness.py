"""Cohort completeness: for each patient and MRD timepoint, which expected materials were
received, which are missing (the timepoint's window has passed) and which are not yet due.

The rule is the patient timeline's (``biobank.patients.service.timeline``), here in SQL over
the whole cohort: a timepoint applies to a patient whose risk group it lists; each of its
expected materials is received when a sample of that material was taken there, missing once
the window's last day (diagnosis + nominal day + days after) lies before today, else not yet
due. Event-driven timepoints (relapse) are never missing. A sample at a timepoint that does not
apply, or of a material not expected there, counts as received, not expected. The tests hold
this module and the timeline together.

The schedule (a few rows of reference data) is read first and written into the statement as
a small table of (timepoint, material, risk group, cut-off date); the cohort's cells are then
one join of patients, that table and the samples grouped by patient, timepoint and material.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from sqlalchemy import (
    Date,
    Integer,
    String,
    and_,
    case,
    distinct,
    exists,
    func,
    literal,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from biobank.auth import scope as sites
from biobank.patients.models import Patient
from biobank.reference.models import Material, Site, Timepoint
from biobank.reports.scope import ReportScope, sites_asked
from biobank.samples.models import Sample

STATES = ("received", "missing", "not_yet_due")
CSV_HEADER = (
    "study_id",
    "site",
    "country",
    "risk_group",
    "timepoint",
    "material",
    "expected",
    "state",
    "samples",
)


def timepoint_codes(session: Session) -> list[str]:
    """Every timepoint's code in the schedule's order (the matrix's columns)."""
    return list(
        session.scalars(select(Timepoint.code).order_by(Timepoint.sort_order, Timepoint.id))
    )


def _schedule(
    session: Session, today: dt.date, material: str | None
) -> tuple[list[tuple[int, int, str, dt.date]], dict[int, Timepoint], dict[int, str]]:
    """The expected cells of the schedule: (timepoint id, material id, risk group, cut-off:
    a patient diagnosed before it has passed the window), and the names by id."""
    timepoints = {
        tp.id: tp
        for tp in session.scalars(select(Timepoint).order_by(Timepoint.sort_order, Timepoint.id))
    }
    materials = {code: mid for mid, code in session.execute(select(Material.id, Material.code))}
    rows = []
    for tp in timepoints.values():
        if tp.nominal_day is None:
            continue  # event-driven: expected only once the event happens
        cutoff = today - dt.timedelta(days=tp.nominal_day + tp.window_after_days)
        for group in tp.risk_groups:
            for code in tp.expected_materials:
                if code in materials and material in (None, code):
                    rows.append((tp.id, materials[code], group, cutoff))
    return rows, timepoints, {mid: code for code, mid in materials.items()}


def _patients_wanted(session: Session, scope: ReportScope, args: dict[str, Any]) -> list[Any]:
    """The conditions on ``patient`` of the report's site, country, risk group and scope."""
    covered = sites_asked(session, scope, args.get("site"), args.get("country"))
    conditions = [sites.patient_filter(covered, Patient.site_id)]
    if args.get("risk_group"):
        conditions.append(Patient.risk_group == args["risk_group"])
    return conditions


def _cells(
    session: Session,
    scope: ReportScope,
    args: dict[str, Any],
    today: dt.date,
    patient_ids: list[int] | None = None,
) -> tuple[Any, Any, dict[int, Timepoint], dict[int, str]]:
    """The cells statement (patient, timepoint, material, expected, state, samples) and the
    patients statement it covers (those of ``patient_ids`` only, when given: a page)."""
    expected_rows, timepoints, material_codes = _schedule(session, today, args.get("material"))
    patients = select(Patient.id, Patient.risk_group, Patient.diagnosis_date).where(
        *_patients_wanted(session, scope, args)
    )
    if patient_ids is not None:
        patients = patients.where(Patient.id.in_(patient_ids))
    people = patients.cte("people")

    if expected_rows:
        expected = union_all(
            *(
                select(
                    literal(tp, Integer).label("timepoint_id"),
                    literal(mat, Integer).label("material_id"),
                    literal(group, String).label("risk_group"),
                    literal(cutoff, Date).label("cutoff"),
                )
                for tp, mat, group, cutoff in expected_rows
            )
        ).cte("expected")
    else:  # an empty schedule (or a material nowhere expected): a table without rows
        expected = (
            select(
                literal(0, Integer).label("timepoint_id"),
                literal(0, Integer).label("material_id"),
                literal("", String).label("risk_group"),
                literal(today, Date).label("cutoff"),
            )
            .where(literal(False))
            .cte("expected")
        )
    taken = (
        select(
            Sample.patient_id,
            Sample.timepoint_id,
            Sample.material_id,
            func.count().label("samples"),
        )
        .where(Sample.patient_id.in_(select(people.c.id)), Sample.timepoint_id.is_not(None))
        .group_by(Sample.patient_id, Sample.timepoint_id, Sample.material_id)
    )
    if args.get("material"):
        taken = taken.where(
            Sample.material_id.in_(select(Material.id).where(Material.code == args["material"]))
        )
    received = taken.cte("received")

    state = case(
        (received.c.samples.is_not(None), "received"),
        (people.c.diagnosis_date < expected.c.cutoff, "missing"),
        else_="not_yet_due",
    )
    expected_cells = (
        select(
            people.c.id.label("patient_id"),
            expected.c.timepoint_id,
            expected.c.material_id,
            literal(True).label("expected"),
            state.label("state"),
            func.coalesce(received.c.samples, 0).label("samples"),
        )
        .select_from(people)
        .join(expected, expected.c.risk_group == people.c.risk_group)
        .outerjoin(
            received,
            and_(
                received.c.patient_id == people.c.id,
                received.c.timepoint_id == expected.c.timepoint_id,
                received.c.material_id == expected.c.material_id,
            ),
        )
    )
    unexpected_cells = (
        select(
            received.c.patient_id,
            received.c.timepoint_id,
            received.c.material_id,
            literal(False).label("expected"),
            literal("received").label("state"),
            received.c.samples,
        )
        .join(people, people.c.id == received.c.patient_id)
        .where(
            ~exists().where(
                expected.c.timepoint_id == received.c.timepoint_id,
                expected.c.material_id == received.c.material_id,
                expected.c.risk_group == people.c.risk_group,
            )
        )
    )
    cells = union_all(expected_cells, unexpected_cells).subquery("cells")
    return cells, people, timepoints, material_codes


def summary(
    session: Session, scope: ReportScope, args: dict[str, Any], today: dt.date
) -> tuple[int, list[dict[str, Any]]]:
    """How many patients, and per timepoint and material: cells expected, received, missing,
    not yet due, and received where not expected.

    Counted without building the cells: patients per risk group (and how many of them are
    past each timepoint's window), then the samples' distinct patients per timepoint,
    material, risk group and whether the window has passed; the cells' states follow by
    subtraction. Two statements over the cohort, a few dozen rows back."""
    expected_rows, timepoints, materials = _schedule(session, today, args.get("material"))
    wanted = _patients_wanted(session, scope, args)
    cutoffs = {tp: cutoff for tp, _, _, cutoff in expected_rows}
    dates = sorted(set(cutoffs.values()))
    per_group = session.execute(
        select(
            Patient.risk_group,
            func.count(),
            *(func.sum(case((Patient.diagnosis_date < day, 1), else_=0)) for day in dates),
        )
        .where(*wanted)
        .group_by(Patient.risk_group)
    ).all()
    patients = {row[0]: row[1] for row in per_group}
    past = {
        row[0]: dict(zip(dates, (int(n or 0) for n in row[2:]), strict=True)) for row in per_group
    }
    window_passed = (
        Patient.diagnosis_date < case(cutoffs, value=Sample.timepoint_id)
        if cutoffs
        else literal(False)
    )
    query = (
        select(
            Sample.timepoint_id,
            Sample.material_id,
            Patient.risk_group,
            window_passed.label("passed"),
            func.count(distinct(Sample.patient_id)),
        )
        .join(Patient, Patient.id == Sample.patient_id)
        .where(Sample.timepoint_id.is_not(None), *wanted)
        .group_by(Sample.timepoint_id, Sample.material_id, Patient.risk_group, window_passed)
    )
    if args.get("material"):
        query = query.where(
            Sample.material_id.in_(select(Material.id).where(Material.code == args["material"]))
        )
    found: dict[tuple[int, int], dict[str, Any]] = {}

    def entry(tp: int, mat: int) -> dict[str, Any]:
        return found.setdefault(
            (tp, mat),
            {
                "timepoint": timepoints[tp].code,
                "material": materials[mat],
                "expected": 0,
                "received": 0,
                "missing": 0,
                "not_yet_due": 0,
                "received_unexpected": 0,
            },
        )

    expected = {(tp, mat, group) for tp, mat, group, _ in expected_rows}
    for tp, mat, group, cutoff in expected_rows:
        cell = entry(tp, mat)
        everyone = int(patients.get(group) or 0)
        passed_window = past.get(group, {}).get(cutoff, 0)
        cell["expected"] += everyone
        cell["missing"] += passed_window  # the received ones come off below
        cell["not_yet_due"] += everyone - passed_window
    for sample_tp, sample_mat, group, passed, count in session.execute(query):
        key = (sample_tp or 0, sample_mat)  # the query keeps timepoints only
        cell = entry(*key)
        if (*key, group) in expected:
            cell["received"] += count
            cell["missing" if passed else "not_yet_due"] -= count
        else:
            cell["received_unexpected"] += count
    order = {tp: index for index, tp in enumerate(timepoints)}
    keys = sorted(found, key=lambda key: (order[key[0]], materials[key[1]]))
    return sum(patients.values()), [found[key] for key in keys]


def report(
    session: Session, scope: ReportScope, args: dict[str, Any], today: dt.date
) -> dict[str, Any]:
    """The summary per timepoint and material, and one page of the patients' matrix."""
    total, counted = summary(session, scope, args, today)
    page, per_page = args["page"], args["per_page"]
    chosen = list(
        session.scalars(
            select(Patient.id)
            .where(*_patients_wanted(session, scope, args))
            .order_by(Patient.study_id)
            .offset((page - 1) * per_page)
            .limit(per_page)
        )
    )
    cells, people, timepoints, materials = _cells(session, scope, args, today, chosen)
    rows = _patient_rows(session, cells, people, timepoints, materials, None, None)
    return {
        "today": today,
        "site": args.get("site"),
        "country": args.get("country"),
        "risk_group": args.get("risk_group"),
        "material": args.get("material"),
        "patients": total,
        "page": page,
        "per_page": per_page,
        "summary": counted,
        "rows": rows,
    }


def _patient_rows(
    session: Session,
    cells: Any,
    people: Any,
    timepoints: dict[int, Timepoint],
    materials: dict[int, str],
    offset: int | None,
    limit: int | None,
) -> list[dict[str, Any]]:
    """Patients in study-id order (a page of them), each with their cells."""
    chosen = (
        select(Patient.id, Patient.study_id, Patient.risk_group, Site.code, Site.country)
        .join(Site, Site.id == Patient.site_id)
        .where(Patient.id.in_(select(people.c.id)))
        .order_by(Patient.study_id)
    )
    if limit is not None:
        chosen = chosen.offset(offset).limit(limit)
    found = {
        row.id: {
            "study_id": row.study_id,
            "site": row.code,
            "country": row.country,
            "risk_group": row.risk_group,
            "cells": [],
        }
        for row in session.execute(chosen)
    }
    if not found:
        return []
    order = {tp: index for index, tp in enumerate(timepoints)}
    for row in session.execute(select(cells).where(cells.c.patient_id.in_(list(found)))):
        found[row.patient_id]["cells"].append(
            {
                "timepoint": timepoints[row.timepoint_id].code,
                "material": materials[row.material_id],
                "expected": bool(row.expected),
                "state": row.state,
                "samples": row.samples,
                "_order": (order[row.timepoint_id], materials[row.material_id]),
            }
        )
    for patient in found.values():
        patient["cells"].sort(key=lambda cell: cell.pop("_order"))
    return list(found.values())


def csv_rows(
    session: Session, scope: ReportScope, args: dict[str, Any], today: dt.date
) -> Iterator[tuple[Any, ...]]:
    """Every cell of the matrix, one line each, patients in study-id order."""
    cells, people, timepoints, materials = _cells(session, scope, args, today)
    for patient in _patient_rows(session, cells, people, timepoints, materials, None, None):
        for cell in patient["cells"]:
            yield (
                patient["study_id"],
                patient["site"],
                patient["country"],
                patient["risk_group"],
                cell["timepoint"],
                cell["material"],
                "yes" if cell["expected"] else "no",
                cell["state"],
                cell["samples"],
            )
