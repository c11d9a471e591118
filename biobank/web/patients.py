"""Patient pages: the list, and one patient's completeness matrix (timepoint × material),
risk-group history, consent state and history, and tubes."""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from biobank.auth.permissions import requires
from biobank.auth.web import current_scope
from biobank.consent import followup, places
from biobank.consent import service as consent
from biobank.db import get_session
from biobank.patients import risk
from biobank.patients import service as patients
from biobank.patients.models import Patient
from biobank.samples.service import aliquots_query
from biobank.web.common import csv_download, may, page_blueprint

bp = page_blueprint("web_patients", __name__)

LIST_LIMIT = 300
MATERIAL_ORDER = ("BM", "PB", "CSF")


@bp.get("/patients")
@requires("patient:read")
def patient_list() -> ResponseReturnValue:
    """Patients by study ID (filter by text, site or risk group)."""
    args = request.args
    query = patients.patients_query(
        current_scope(), site=args.get("site") or None, risk_group=args.get("risk_group") or None
    )
    text = args.get("q", "").strip()
    if text:
        query = query.where(Patient.study_id.ilike(f"%{text}%"))
    found = list(get_session().scalars(query.limit(LIST_LIMIT)))
    if args.get("format") == "csv":
        return csv_download(
            "patients",
            ["study_id", "site", "risk_group", "diagnosis_date"],
            (
                [p.study_id, p.site.code if p.site else "", p.risk_group, p.diagnosis_date]
                for p in found
            ),
        )
    return render_template(
        "web/patients.html",
        patients=found,
        q=text,
        limit=LIST_LIMIT,
        risk_group=args.get("risk_group", ""),
    )


def completeness(timeline: dict[str, Any]) -> dict[str, Any]:
    """The timeline as a matrix: material columns, one row per timepoint, a state per cell."""
    seen = {m["material"] for row in timeline["timepoints"] for m in row["materials"]}
    columns = [m for m in MATERIAL_ORDER if m in seen] + sorted(seen - set(MATERIAL_ORDER))
    rows = []
    for row in timeline["timepoints"]:
        by_material = {m["material"]: m for m in row["materials"]}
        rows.append(
            {
                **row,
                "cells": [
                    by_material.get(code)
                    or {"material": code, "state": "not_applicable", "samples": []}
                    for code in columns
                ],
            }
        )
    return {"columns": columns, "rows": rows}


def _tubes(session: Session, study_id: str) -> list[dict[str, Any]]:
    tubes = list(session.scalars(aliquots_query(current_scope(), patient=study_id)))
    where = places.locations(session, [t.id for t in tubes]) if may("storage:read") else {}
    return [{"aliquot": t, "location": where.get(t.id)} for t in tubes]


@bp.get("/patients/<study_id>")
@requires("patient:read")
def patient_page(study_id: str) -> ResponseReturnValue:
    """A patient: what arrived per timepoint and material, risk groups, consent, tubes."""
    session = get_session()
    patient = patients.get_patient(session, study_id, with_history=True)
    view: dict[str, Any] = {
        "patient": patient,
        "pending": [risk.FACT_NAMES[name] for name in patients.pending_facts(patient)],
        "matrix": completeness(patients.timeline(session, patient)),
        "consent": None,
        "withdrawals": [],
        "tubes": [],
    }
    if may("consent:read"):
        view["consent"] = consent.patient_consent(session, patient)
        view["withdrawals"] = followup.withdrawals(session, study_id=patient.study_id)
    if may("aliquot:read"):
        view["tubes"] = _tubes(session, patient.study_id)
    return render_template("web/patient.html", **view)
