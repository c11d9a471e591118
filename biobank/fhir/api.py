"""The read-only FHIR R4 API under /fhir.

A plain Flask blueprint, not part of the flask-smorest OpenAPI document: a FHIR server's
contract is its CapabilityStatement (GET /fhir/metadata) and the FHIR specification's
resource definitions, which marshmallow schemas would only restate. Every route still
declares its action in the permission matrix; every error is an OperationOutcome.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

import orjson
from flask import Blueprint, Flask, Response, current_app, request
from flask.typing import ResponseReturnValue
from sqlalchemy import Select, select

from biobank.auth.permissions import PUBLIC, requires
from biobank.auth.web import current_asker
from biobank.db import get_session, read_only
from biobank.fhir import access, capability, consents, miabis, search, specimens
from biobank.fhir import directory as directory_resources
from biobank.fhir.access import Viewer
from biobank.fhir.directory import Directory
from biobank.fhir.outcome import (
    MEDIA_TYPE,
    FhirError,
    error_response,
    fhir_response,
    operation_outcome,
)
from biobank.fhir.resources import Settings, patient_resource
from biobank.fhir.service import KNOWN_TYPES, page_entries, specimen_criteria
from biobank.patients.models import Patient

bp = Blueprint("fhir", __name__, url_prefix="/fhir")
DEFAULT_PAGE = 50


def settings() -> Settings:
    """The deployment's identifier systems (BIOBANK_FHIR_SYSTEM_BASE, MIABIS collection id)."""
    return Settings.from_config(current_app.config)


def directory() -> Directory:
    """What the biobank calls itself in MIABIS (BIOBANK_MIABIS_* settings)."""
    return Directory.from_config(current_app.config)


def _viewer() -> Viewer:
    asker = current_asker()
    return access.viewer_for(get_session(), asker.id, asker.username, asker.role)


def _base_url() -> str:
    return request.url_root.rstrip("/") + "/fhir"


def _bundle(entries: list[dict[str, Any]], next_cursor: str | None) -> Response:
    base = _base_url()
    links = [{"relation": "self", "url": request.url}]
    if next_cursor is not None:
        query = [(k, v) for k, v in request.args.items(multi=True) if k != "_cursor"]
        query.append(("_cursor", next_cursor))
        links.append(
            {"relation": "next", "url": f"{base}{request.path[len('/fhir') :]}?{urlencode(query)}"}
        )
    return fhir_response(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "timestamp": dt.datetime.now(dt.UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
            "link": links,
            "entry": [
                {
                    "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for r in entries
            ],
        }
    )


def _page_size() -> int:
    return search.page_size(request.args, DEFAULT_PAGE, current_app.config["PAGE_SIZE_MAX"])


@bp.route("/metadata", methods=["GET"])
@requires(PUBLIC)
@read_only
def metadata() -> ResponseReturnValue:
    """The CapabilityStatement (public, as FHIR clients expect)."""
    search.check_params(request.args, frozenset({"_format", "mode"}))
    return fhir_response(
        capability.capability_statement(
            _base_url(), current_app.config["API_VERSION"], "2026-11-30"
        )
    )


@bp.route("/Specimen", methods=["GET"])
@requires("fhir:read")
@read_only
def search_specimens() -> ResponseReturnValue:
    """Search Specimens (subject, type, status, parent, _lastUpdated), a page at a time."""
    search.check_params(request.args, search.SPECIMEN)
    session, viewer, config = get_session(), _viewer(), settings()
    size = _page_size()
    cursor = None
    if "_cursor" in request.args:
        cursor = specimens.parse_id(request.args["_cursor"])
        if cursor is None:
            raise FhirError(400, "_cursor: not a cursor this server gave", expression="_cursor")
    criteria = specimen_criteria(session, viewer, request.args, config)
    page = specimens.search(session, viewer, criteria, size, cursor)
    return _bundle(page_entries(session, viewer, page, config), page.next_cursor)


@bp.route("/Specimen/<fhir_id>", methods=["GET"])
@requires("fhir:read")
@read_only
def read_specimen(fhir_id: str) -> ResponseReturnValue:
    """One Specimen: a primary sample (sample-N) or a tube (aliquot-N)."""
    search.check_params(request.args, frozenset({"_format"}))
    session, viewer = get_session(), _viewer()
    found = specimens.one(session, viewer, fhir_id)
    if found is None:
        raise FhirError(404, f"no Specimen/{fhir_id}")
    kind, row = found
    page = specimens.Page(
        [row] if kind == "sample" else [], [row] if kind == "aliquot" else [], None
    )
    return fhir_response(page_entries(session, viewer, page, settings())[0])


def _patient_row(fhir_id: str, viewer: Viewer) -> Any:
    session = get_session()
    patient_id = access.patient_by_fhir_id(session, viewer, fhir_id)
    if patient_id is None:
        raise FhirError(404, f"no Patient/{fhir_id}")
    return session.execute(select_patient().where(Patient.id == patient_id)).mappings().one()


def select_patient() -> Select[Any]:
    """The columns a Patient resource is built from."""
    return select(Patient.id, Patient.study_id, Patient.sex)


@bp.route("/Patient/<fhir_id>", methods=["GET"])
@requires("fhir:read")
@read_only
def read_patient(fhir_id: str) -> ResponseReturnValue:
    """One Patient (pseudonymous)."""
    search.check_params(request.args, frozenset({"_format"}))
    viewer = _viewer()
    row = _patient_row(fhir_id, viewer)
    return fhir_response(patient_resource(row["study_id"], row["sex"], viewer, settings()))


@bp.route("/Patient", methods=["GET"])
@requires("fhir:read")
@read_only
def search_patients() -> ResponseReturnValue:
    """Every Patient the asker may see, a page at a time."""
    search.check_params(request.args, search.COMMON)
    session, viewer, config = get_session(), _viewer(), settings()
    size = _page_size()
    after = 0
    if "_cursor" in request.args:
        found = access.patient_by_fhir_id(session, viewer, request.args["_cursor"])
        if found is None:
            raise FhirError(400, "_cursor: not a cursor this server gave", expression="_cursor")
        after = found
    rows = consents.patients_after(session, viewer, after, size + 1)
    entries = [patient_resource(r.study_id, r.sex, viewer, config) for r in rows[:size]]
    next_cursor = entries[-1]["id"] if len(rows) > size else None
    return _bundle(entries, next_cursor)


@bp.route("/Patient/<fhir_id>/$everything", methods=["GET"])
@requires("fhir:read")
@read_only
def patient_everything(fhir_id: str) -> ResponseReturnValue:
    """One patient's record: the Patient, its Specimens and its Consents."""
    search.check_params(request.args, search.EVERYTHING)
    session, viewer, config = get_session(), _viewer(), settings()
    row = _patient_row(fhir_id, viewer)
    page = specimens.of_patient(session, viewer, row["id"])
    patient = consents.PatientRow(row["id"], row["study_id"], row["sex"])
    logs = consents.entries_of(session, viewer, [row["id"]])
    entries = [
        patient_resource(row["study_id"], row["sex"], viewer, config),
        *page_entries(session, viewer, page, config),
        *consents.consent_resources(patient, logs[row["id"]], viewer, config),
    ]
    return _bundle(entries, None)


@bp.route("/Consent", methods=["GET"])
@requires("fhir:read")
@read_only
def search_consents() -> ResponseReturnValue:
    """Search Consents (by patient), a page at a time."""
    search.check_params(request.args, search.CONSENT)
    session, viewer, config = get_session(), _viewer(), settings()
    size = _page_size()
    patients = search.values(request.args, "patient") or search.values(request.args, "subject")
    patient_ids = None
    if patients is not None:
        patient_ids = [
            i
            for i in (
                access.patient_by_fhir_id(
                    session, viewer, search.reference_id(p, "Patient", "patient")
                )
                for p in patients
            )
            if i is not None
        ]
    cursor = None
    if "_cursor" in request.args:
        cursor = _consent_key(request.args["_cursor"], viewer)
        if cursor is None:
            raise FhirError(400, "_cursor: not a cursor this server gave", expression="_cursor")
    found, more = consents.search(session, viewer, config, patient_ids, size, cursor)
    return _bundle(found, found[-1]["id"] if more else None)


def _consent_key(fhir_id: str, viewer: Viewer) -> tuple[int, str] | None:
    parts = consents.split_id(fhir_id)
    if parts is None:
        return None
    patient_id = access.patient_by_fhir_id(get_session(), viewer, parts[0])
    return None if patient_id is None else (patient_id, parts[1])


@bp.route("/Consent/<fhir_id>", methods=["GET"])
@requires("fhir:read")
@read_only
def read_consent(fhir_id: str) -> ResponseReturnValue:
    """One Consent: a patient's consent to one component, with its history."""
    search.check_params(request.args, frozenset({"_format"}))
    session, viewer = get_session(), _viewer()
    key = _consent_key(fhir_id, viewer)
    if key is not None:
        row = session.execute(select_patient().where(Patient.id == key[0])).mappings().one()
        logs = consents.entries_of(session, viewer, [key[0]])
        for resource in consents.consent_resources(
            consents.PatientRow(row["id"], row["study_id"], row["sex"]),
            logs[key[0]],
            viewer,
            settings(),
        ):
            if resource["id"] == fhir_id:
                return fhir_response(resource)
    raise FhirError(404, f"no Consent/{fhir_id}")


@bp.route("/Organization/<fhir_id>", methods=["GET"])
@requires("fhir:read")
@read_only
def read_organization(fhir_id: str) -> ResponseReturnValue:
    """The biobank, its juristic person and its collection (MIABIS)."""
    search.check_params(request.args, frozenset({"_format"}))
    if fhir_id not in directory_resources.ORGANIZATIONS:
        raise FhirError(404, f"no Organization/{fhir_id}")
    return fhir_response(directory_resources.organization(fhir_id, directory(), settings()))


@bp.route("/Group/<fhir_id>", methods=["GET"])
@requires("fhir:read")
@read_only
def read_group(fhir_id: str) -> ResponseReturnValue:
    """The collection (MIABIS), with what it holds."""
    search.check_params(request.args, frozenset({"_format"}))
    if fhir_id not in directory_resources.GROUPS:
        raise FhirError(404, f"no Group/{fhir_id}")
    summary = miabis.summarise(get_session(), _viewer())
    return fhir_response(directory_resources.collection_group(summary, directory(), settings()))


@bp.route("/Measure/<fhir_id>", methods=["GET"])
@requires("fhir:read")
@read_only
def read_measure(fhir_id: str) -> ResponseReturnValue:
    """The collection summary's definition."""
    search.check_params(request.args, frozenset({"_format"}))
    if fhir_id not in directory_resources.MEASURES:
        raise FhirError(404, f"no Measure/{fhir_id}")
    return fhir_response(directory_resources.measure(settings()))


@bp.route("/Measure/<fhir_id>/$evaluate-measure", methods=["GET"])
@requires("fhir:read")
@read_only
def evaluate_measure(fhir_id: str) -> ResponseReturnValue:
    """The collection summary for the Directory: MIABIS samples by material, sex, age and
    storage temperature (periodStart/periodEnd: collection dates)."""
    search.check_params(request.args, search.EVALUATE)
    if fhir_id not in directory_resources.MEASURES:
        raise FhirError(404, f"no Measure/{fhir_id}")
    start = _day("periodStart")
    end = _day("periodEnd")
    summary = miabis.summarise(get_session(), _viewer(), start, end)
    return fhir_response(miabis.measure_report(summary, settings()))


def _day(name: str) -> dt.date | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise FhirError(
            400, f"{name}: {raw!r} is not a date (YYYY-MM-DD)", expression=name
        ) from None


@bp.route("/<resource_type>", methods=["GET"])
@bp.route("/<resource_type>/<path:rest>", methods=["GET"])
@requires("fhir:read")
@read_only
def unknown(resource_type: str, rest: str | None = None) -> ResponseReturnValue:
    """Anything else under /fhir: an unknown resource type or interaction."""
    if resource_type not in KNOWN_TYPES:
        raise FhirError(
            400,
            f"unknown resource type {resource_type!r}; this server has "
            f"{', '.join(sorted(KNOWN_TYPES))}",
            code="not-supported",
        )
    raise FhirError(
        404 if rest else 400,
        f"{request.path}: not supported here (see /fhir/metadata)",
        code="not-supported" if not rest else "not-found",
    )


def init_app(app: Flask) -> None:
    """Register the blueprint and the error handler (``as_operation_outcome`` runs in the
    app's request pipeline: biobank.create_app)."""
    app.register_blueprint(bp)
    app.register_error_handler(FhirError, error_response)


def as_operation_outcome(response: Response) -> Response:
    """Any error under /fhir, whoever answered it (the token check, routing, a domain
    rule), as an OperationOutcome with the same status and headers."""
    if response.status_code < 400:
        return response
    path = request.path
    if not (path == "/fhir" or path.startswith("/fhir/")) or response.mimetype == MEDIA_TYPE:
        return response
    body = response.get_json(silent=True) if response.is_json else None
    message = (body or {}).get("message") or response.status
    response.set_data(orjson.dumps(operation_outcome(response.status_code, str(message))))
    response.mimetype = MEDIA_TYPE
    return response
