"""Consent endpoints: sub-studies, forms, consent records, withdrawals, the gate, officer lists."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask_smorest import Blueprint

from biobank.apidoc import also_answers
from biobank.auth.permissions import allowed, requires
from biobank.auth.web import current_actor, current_asker, current_user
from biobank.consent import (
    anonymise,
    correction,
    followup,
    gate,
    pseudonym,
    reconsent,
    schemas,
    service,
    withdrawal,
)
from biobank.consent.models import GENERAL_COMPONENTS
from biobank.db import get_session
from biobank.errors import NotFound
from biobank.inputs import ascii_id
from biobank.patients.service import get_patient
from biobank.requests import readmodels as requests_reads
from biobank.samples.numbering import numbering
from biobank.samples.service import check_code
from biobank.schema import Schema

blp = Blueprint("consent", __name__, description="Consent per sub-study, withdrawal, the gate")


def _for_role(schema: type[Schema], obj: Any, status: int = 200, many: bool = False) -> Response:
    """Dump with the caller's role's schema (officers see who signed; others do not)."""
    sees = allowed(current_asker().role, "consent:signatory")
    response = jsonify(schemas.for_role(schema, sees, many=many).dump(obj))
    response.status_code = status
    return response


# --- sub-studies, components, forms -----------------------------------------------------


@blp.route("/substudies", methods=["GET"])
@blp.response(200, schemas.SubstudyOut(many=True))
@requires("substudy:read")
def list_substudies() -> Any:
    """List the sub-studies (code, title, principal investigator, open or closed)."""
    return service.list_substudies(get_session())


@blp.route("/substudies", methods=["POST"])
@blp.arguments(schemas.SubstudyIn)
@blp.response(201, schemas.SubstudyOut)
@requires("substudy:write")
def create_substudy(values: dict[str, Any]) -> Any:
    """Add a sub-study."""
    return service.create_substudy(get_session(), current_actor(), values)


@blp.route("/substudies/<code>", methods=["GET"])
@blp.response(200, schemas.SubstudyOut)
@requires("substudy:read")
def get_substudy(code: str) -> Any:
    """One sub-study, by code."""
    return service.get_substudy(get_session(), code)


@blp.route("/substudies/<code>", methods=["PATCH"])
@blp.arguments(schemas.SubstudyPatch)
@blp.response(200, schemas.SubstudyOut)
@requires("substudy:write")
def update_substudy(values: dict[str, Any], code: str) -> Any:
    """Edit a sub-study (close it, change its investigator); the change is audited."""
    reason = values.pop("reason", None)
    return service.update_substudy(get_session(), current_actor(), code, values, reason)


@blp.route("/consent/components", methods=["GET"])
@blp.response(200, schemas.ComponentOut(many=True))
@requires("substudy:read")
def list_components() -> Any:
    """What parents consent to: the general components, then every sub-study."""
    general = [
        {"code": c, "kind": "general", "title": service.GENERAL_TITLES[c], "open": True}
        for c in GENERAL_COMPONENTS
    ]
    return general + [
        {"code": s.code, "kind": "substudy", "title": s.title, "open": s.open}
        for s in service.list_substudies(get_session())
    ]


@blp.route("/consent/forms", methods=["GET"])
@blp.response(200, schemas.FormOut(many=True))
@requires("consent:read")
def list_forms() -> Any:
    """List the consent form versions, with the components each covers."""
    return service.list_forms(get_session())


@blp.route("/consent/forms", methods=["POST"])
@blp.arguments(schemas.FormIn)
@blp.response(201, schemas.FormOut)
@requires("consent:write")
def create_form(values: dict[str, Any]) -> Any:
    """Add a consent form version."""
    return service.create_form(get_session(), current_actor(), values)


# --- a patient's consent ----------------------------------------------------------------


@blp.route("/patients/<study_id>/consent", methods=["GET"])
@blp.response(200, schemas.PatientConsentOut)
@requires("consent:read")
def patient_consent(study_id: str) -> Any:
    """A patient's consent per component now, and its whole history (signatory: officers)."""
    session = get_session()
    consent = service.patient_consent(session, get_patient(session, study_id))
    return _for_role(schemas.PatientConsentOut, consent)


@blp.route("/patients/<study_id>/consent", methods=["POST"])
@blp.arguments(schemas.ConsentIn)
@blp.response(201, schemas.ConsentEntryOut)
@requires("consent:write")
def record_consent(values: dict[str, Any], study_id: str) -> Any:
    """Record what a signed form says for one component, or correct the current entry."""
    session = get_session()
    entry = service.record_consent(session, current_actor(), get_patient(session, study_id), values)
    return _for_role(schemas.ConsentEntryOut, entry, 201)


@blp.route("/patients/<study_id>/consent/withdrawals", methods=["POST"])
@blp.arguments(schemas.WithdrawalIn)
@blp.arguments(schemas.DryRunQuery, location="query")
@blp.response(201, schemas.ImpactOut)
@blp.alt_response(
    200,
    schema=schemas.ImpactOut,
    success=True,
    description="?dry_run=true: the impact, nothing recorded",
)
@requires("consent:write")
def withdraw(values: dict[str, Any], query: dict[str, Any], study_id: str) -> Any:
    """Withdraw consent (storage, data, all or a sub-study); ?dry_run=true shows the impact."""
    session = get_session()
    patient = get_patient(session, study_id)
    if query["dry_run"]:
        impact = withdrawal.plan(session, current_actor(), patient, values, dry_run=True)
        return _for_role(schemas.ImpactOut, impact, 200)
    return _for_role(
        schemas.ImpactOut, withdrawal.withdraw(session, current_actor(), patient, values), 201
    )


@blp.route("/patients/<study_id>/consent/withdrawals", methods=["GET"])
@blp.response(200, schemas.WithdrawalSummaryOut(many=True))
@requires("consent:read")
def patient_withdrawals(study_id: str) -> Any:
    """A patient's withdrawals with their outstanding actions."""
    session = get_session()
    get_patient(session, study_id)
    return _for_role(
        schemas.WithdrawalSummaryOut, followup.withdrawals(session, study_id=study_id), many=True
    )


# --- withdrawals, destruction tasks, recalls --------------------------------------------


@blp.route("/consent/withdrawals", methods=["GET"])
@blp.arguments(schemas.OutstandingQuery, location="query")
@blp.response(200, schemas.WithdrawalSummaryOut(many=True))
@requires("consent:read")
def list_withdrawals(query: dict[str, Any]) -> Any:
    """Withdrawals, newest first, with destruction tasks and recalls done or outstanding."""
    return _for_role(
        schemas.WithdrawalSummaryOut,
        followup.withdrawals(get_session(), outstanding_only=query["outstanding"]),
        many=True,
    )


def _number(value: str, what: str) -> int:
    # Plain path parameters, so a role refused by the matrix gets its 403 for any value.
    number = ascii_id(value)
    if number is None:
        raise NotFound(f"no {what} {value!r}")
    return number


@blp.route("/consent/withdrawals/<withdrawal_id>", methods=["GET"])
@blp.response(200, schemas.WithdrawalDetailOut)
@requires("consent:read")
def get_withdrawal(withdrawal_id: str) -> Any:
    """One withdrawal: every destruction task (with the tube's location) and recall notice."""
    return _for_role(
        schemas.WithdrawalDetailOut,
        followup.get_withdrawal(get_session(), _number(withdrawal_id, "withdrawal")),
    )


@blp.route("/consent/withdrawals/<withdrawal_id>/correction", methods=["POST"])
@blp.arguments(schemas.CorrectionIn)
@blp.response(201, schemas.CorrectionOut)
@requires("consent:write")
def correct_withdrawal(values: dict[str, Any], withdrawal_id: str) -> Any:
    """Correct a withdrawal entered in error: consent as before it, its pending destruction
    tasks and unanswered recalls cancelled, the tubes it blocked back in use."""
    return _for_role(
        schemas.CorrectionOut,
        correction.correct(
            get_session(), current_actor(), _number(withdrawal_id, "withdrawal"), values["reason"]
        ),
        201,
    )


@blp.route("/consent/destruction-tasks", methods=["GET"])
@blp.arguments(schemas.TaskQuery, location="query")
@blp.response(200, schemas.TaskOut(many=True))
@requires("consent:read")
def list_tasks(query: dict[str, Any]) -> Any:
    """Tubes to take out and destroy after withdrawals, with where each one is."""
    return followup.tasks(get_session(), pending_only=query["pending"])


@blp.route("/consent/destruction-tasks/<task_id>/done", methods=["POST"])
@blp.response(200, schemas.TaskOut)
@requires("aliquot:write")
def complete_task(task_id: str) -> Any:
    """The tube was destroyed: close the task and record the destruction."""
    return followup.complete_task(
        get_session(), current_actor(), _number(task_id, "destruction task")
    )


@blp.route("/consent/anonymisation-tasks", methods=["GET"])
@blp.arguments(schemas.TaskQuery, location="query")
@blp.response(200, schemas.AnonymisationTaskOut(many=True))
@requires("consent:read")
def list_anonymisation_tasks(query: dict[str, Any]) -> Any:
    """Anonymised tubes to relabel (beside the destruction tasks), with where each one is."""
    return anonymise.tasks(get_session(), pending_only=query["pending"])


@blp.route("/consent/anonymisation-tasks/<task_id>/done", methods=["POST"])
@blp.response(200, schemas.AnonymisationTaskOut)
@blp.alt_response(404, description="no such anonymisation task")
@blp.alt_response(409, description="the task is already done, or the tube changed meanwhile")
@requires("aliquot:write")
def complete_anonymisation_task(task_id: str) -> Any:
    """The tube was relabelled: it goes back into use and the task forgets it."""
    return anonymise.complete_task(
        get_session(), current_actor(), _number(task_id, "anonymisation task")
    )


@blp.route("/consent/recalls", methods=["GET"])
@blp.arguments(schemas.OutstandingQuery, location="query")
@blp.response(200, schemas.RecallOut(many=True))
@requires("consent:read")
def list_recalls(query: dict[str, Any]) -> Any:
    """Recall notices for shipped tubes (?outstanding=true: not yet acknowledged)."""
    return followup.recalls(get_session(), open_only=query["outstanding"])


@blp.route("/consent/recalls/<notice_id>/acknowledge", methods=["POST"])
@blp.response(200, schemas.RecallOut)
@requires("consent:write")
def acknowledge_recall(notice_id: str) -> Any:
    """The recipient confirmed the recall notice."""
    return followup.acknowledge_recall(
        get_session(), current_actor(), _number(notice_id, "recall notice")
    )


@blp.route("/consent/recalls/<notice_id>/destroyed", methods=["POST"])
@blp.response(200, schemas.RecallOut)
@requires("consent:write")
def recall_destroyed(notice_id: str) -> Any:
    """The recipient reports the recalled tube destroyed."""
    return followup.report_recall_destroyed(
        get_session(), current_actor(), _number(notice_id, "recall notice")
    )


# --- the gate ---------------------------------------------------------------------------


def _is_researcher() -> bool:
    return current_asker().role == "researcher"


def _visible_substudy(code: str) -> str:
    # A researcher asking about another sub-study learns nothing, not even that it exists.
    if _is_researcher() and code not in current_user().substudy_codes:
        raise NotFound(f"no sub-study {code!r}")
    return code


def _visible_tubes(codes: list[str], substudy: str) -> None:
    """Researchers hear only of tubes allocated or shipped to their sub-study's requests:
    any other code is answered as an unknown one is (404), so none is confirmed to exist."""
    if not _is_researcher():
        return
    mine = requests_reads.tubes_of_requests(get_session(), substudy, codes)
    for code in codes:
        if code not in mine:
            raise NotFound(f"no aliquot {code}")


def _answer(decision: gate.Decision, substudy: str) -> dict[str, Any]:
    reasons = gate.researcher_reasons(decision) if _is_researcher() else list(decision.reasons)
    return {
        "barcode": decision.barcode,
        "substudy": substudy,
        "allowed": decision.allowed,
        "reasons": reasons,
        "justification": list(decision.justification),
        "basis": decision.basis,
    }


def _dump_check(schema: type[Schema], answer: dict[str, Any]) -> Response:
    """Researchers get the answer without the consent entry ids (``INTERNAL``)."""
    exclude = getattr(schema, "INTERNAL", ()) if _is_researcher() else ()
    return jsonify(schema(exclude=exclude).dump(answer))


@blp.route("/consent/check", methods=["GET"])
@also_answers(blp, 404)
@blp.arguments(schemas.CheckQuery, location="query")
@blp.response(200, schemas.CheckOut)
@blp.alt_response(
    404,
    description="unknown sub-study or tube (for a researcher: any tube "
    "not allocated or shipped to their sub-study's requests)",
)
@requires("consent:check")
def check(query: dict[str, Any]) -> Any:
    """May this tube be used for this sub-study now (or ?at=)? With the reasons if not."""
    substudy = _visible_substudy(query["substudy"])
    code = check_code(query["barcode"], numbering(), field="barcode")
    _visible_tubes([code], substudy)
    [decision] = gate.check_barcodes(get_session(), [code], substudy, query["at"])
    if decision.reasons == (gate.UNKNOWN,):
        raise NotFound(f"no aliquot {code}")
    return _dump_check(schemas.CheckOut, _answer(decision, substudy))


@blp.route("/consent/check", methods=["POST"])
@also_answers(blp, 404)
@blp.arguments(schemas.BulkCheckIn)
@blp.response(200, schemas.BulkCheckOut)
@blp.alt_response(
    404,
    description="unknown sub-study; for a researcher, any tube not "
    "allocated or shipped to their sub-study's requests",
)
@requires("consent:check")
def check_many(values: dict[str, Any]) -> Any:
    """The gate for a list of tubes (a whole rack), now or ?at=, in a fixed number of queries."""
    substudy = _visible_substudy(values["substudy"])
    codes = [
        check_code(c, numbering(), field=f"barcodes.{i}") for i, c in enumerate(values["barcodes"])
    ]
    _visible_tubes(codes, substudy)
    decisions = gate.check_barcodes(get_session(), codes, substudy, values["at"])
    allowed_count = sum(d.allowed for d in decisions)
    return _dump_check(
        schemas.BulkCheckOut,
        {
            "substudy": substudy,
            "allowed_count": allowed_count,
            "refused_count": len(decisions) - allowed_count,
            "results": [_answer(d, substudy) for d in decisions],
        },
    )


@blp.route("/substudies/<code>/pseudonyms/<name>", methods=["GET"])
@blp.response(200, schemas.PseudonymOut)
@requires("pseudonym:resolve")
def resolve_pseudonym(code: str, name: str) -> Any:
    """Who a sub-study's pseudonym stands for (managers: to answer a researcher's question)."""
    session = get_session()
    service.get_substudy(session, code)
    return {"substudy": code, "pseudonym": name, "study_id": pseudonym.resolve(session, code, name)}


@blp.route("/consent/reconsent-due", methods=["GET"])
@blp.arguments(schemas.ReconsentQuery, location="query")
@blp.response(200, schemas.ReconsentOut(many=True))
@requires("consent:read")
def reconsent_due(query: dict[str, Any]) -> Any:
    """Patients coming of age within ?months= (default 6), or overdue, who must re-consent."""
    return reconsent.reconsent_due(get_session(), query["months"])
