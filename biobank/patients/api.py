"""Patient endpoints."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from biobank.auth.permissions import requires
from biobank.auth.web import current_actor, current_scope
from biobank.db import get_session
from biobank.pagination import SelectPage
from biobank.patients import schemas, service

blp = Blueprint("patients", __name__, description="Patients, risk groups, MRD and completeness")


@blp.route("/patients", methods=["GET"])
@blp.arguments(schemas.PatientQuery, location="query")
@blp.response(200, schemas.PatientOut(many=True))
@blp.paginate(SelectPage)
@requires("patient:read")
def list_patients(filters: dict[str, Any]) -> Any:
    """List patients (filter by site, risk group, diagnosis)."""
    return service.patients_query(current_scope(), **filters)


@blp.route("/patients", methods=["POST"])
@blp.arguments(schemas.PatientIn)
@blp.response(201, schemas.PatientDetailOut)
@requires("patient:write")
def register_patient(values: dict[str, Any]) -> Any:
    """Register a patient; the risk group is derived by the trial's rule."""
    return service.register(get_session(), current_actor(), values)


@blp.route("/patients/<study_id>", methods=["GET"])
@blp.response(200, schemas.PatientDetailOut)
@requires("patient:read")
def get_patient(study_id: str) -> Any:
    """One patient, with risk-group history and MRD results."""
    return service.get_patient(get_session(), study_id, with_history=True)


@blp.route("/patients/<study_id>", methods=["PATCH"])
@blp.arguments(schemas.PatientPatch)
@blp.response(200, schemas.PatientDetailOut)
@requires("patient:write")
def update_patient(values: dict[str, Any], study_id: str) -> Any:
    """Correct or complete clinical data, with a reason; the risk group follows the rule."""
    session = get_session()
    patient = service.get_patient(session, study_id, with_history=True, for_update=True)
    reason = values.pop("reason")
    service.update_clinical(session, current_actor(), patient, values, reason)
    return patient


@blp.route("/patients/<study_id>/mrd", methods=["POST"])
@blp.arguments(schemas.MrdIn)
@blp.response(201, schemas.PatientDetailOut)
@requires("patient:write")
def record_mrd(values: dict[str, Any], study_id: str) -> Any:
    """Record an MRD result at a timepoint (it may move the patient to HR)."""
    session = get_session()
    patient = service.get_patient(session, study_id, with_history=True, for_update=True)
    service.record_mrd(session, current_actor(), patient, values)
    return patient


@blp.route("/patients/<study_id>/risk-group", methods=["POST"])
@blp.arguments(schemas.RiskChangeIn)
@blp.response(201, schemas.PatientDetailOut)
@blp.alt_response(
    409,
    description="HR back to MR without override (escalation is one-way), "
    "or the patient is in that group already",
)
@requires("patient:clinical")
def change_risk_group(values: dict[str, Any], study_id: str) -> Any:
    """Reassign the risk group by hand (a clinical decision), with a reason.

    HR back to MR is a 409 (escalation is one-way in the protocol) unless override is true.
    """
    session = get_session()
    patient = service.get_patient(session, study_id, with_history=True, for_update=True)
    service.change_risk_group(
        session,
        current_actor(),
        patient,
        values["risk_group"],
        values["effective_date"],
        values["reason"],
        override=values["override"],
    )
    return patient


@blp.route("/patients/<study_id>/timeline", methods=["GET"])
@blp.response(200, schemas.TimelineOut)
@requires("patient:read")
def timeline(study_id: str) -> Any:
    """Completeness: expected and received material per timepoint of the patient's risk group."""
    session = get_session()
    return service.timeline(session, service.get_patient(session, study_id))
