"""The consent officer's pages: the desk (withdrawals with outstanding actions, re-consent
due, recalls), recording consent, and withdrawals with their impact shown before they are
recorded."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from biobank import clock
from biobank.auth.permissions import requires
from biobank.auth.web import current_actor
from biobank.consent import (
    anonymise,
    correction,
    followup,
    places,
    reconsent,
    schemas,
    service,
    withdrawal,
)
from biobank.consent.models import SIGNATORIES
from biobank.db import get_session
from biobank.errors import DomainError, NotFound
from biobank.inputs import ascii_id
from biobank.patients.models import Patient
from biobank.patients.service import get_patient
from biobank.reference.models import AliquotType
from biobank.samples.models import Aliquot
from biobank.web.common import csv_download, load_form, page_blueprint

bp = page_blueprint("web_consent", __name__)

RECENT = 20
MONTHS_AHEAD = 6


def _number(value: str, what: str) -> int:
    # Plain path parameters, as in the API: a refused role gets its 403 whatever the value.
    number = ascii_id(value)
    if number is None:
        raise NotFound(f"no {what} {value!r}")
    return number


@bp.get("/consent")
@requires("consent:read")
def desk() -> ResponseReturnValue:
    """The consent desk: withdrawals with outstanding actions, re-consents due, recalls."""
    session = get_session()
    months = request.args.get("months", "")
    number = ascii_id(months)
    months_ahead = number if number is not None and 0 < number <= 120 else MONTHS_AHEAD
    wanted = request.args.get("list") if request.args.get("format") == "csv" else None
    if wanted in DESK_LISTS:
        return _desk_csv(session, wanted, months_ahead)
    return render_template(
        "web/consent_desk.html",
        outstanding=followup.withdrawals(session, outstanding_only=True),
        recent=followup.withdrawals(session)[:RECENT],
        due=reconsent.reconsent_due(session, months_ahead),
        months=months_ahead,
        tasks=followup.tasks(session, pending_only=True),
        recalls=followup.recalls(session, open_only=True),
    )


# Each list of the desk as a CSV file (?format=csv&list=NAME), written by the safe writer.
DESK_LISTS = ("outstanding", "due", "tasks", "recalls", "withdrawals")


def _desk_csv(session: Any, wanted: str, months: int) -> ResponseReturnValue:
    if wanted in ("outstanding", "withdrawals"):
        views = followup.withdrawals(session, outstanding_only=wanted == "outstanding")
        return csv_download(
            f"consent-{wanted}",
            [
                "withdrawal",
                "study_id",
                "scope",
                "withdrawn_on",
                "tasks_pending",
                "tasks_done",
                "recalls_open",
                "recalls_acknowledged",
                "corrected_on",
            ],
            (
                [
                    v.withdrawal.id,
                    v.study_id,
                    v.withdrawal.scope_code,
                    v.withdrawal.withdrawn_on,
                    v.tasks["pending"],
                    v.tasks["done"],
                    v.recalls["unacknowledged"],
                    v.recalls["acknowledged"],
                    v.correction.recorded_at.date() if v.correction else "",
                ]
                for v in views
            ),
        )
    if wanted == "due":
        return csv_download(
            "reconsent-due",
            ["study_id", "site", "country", "majority_age", "of_age_on", "overdue", "components"],
            (
                [
                    d.study_id,
                    d.site,
                    d.country,
                    d.majority_age,
                    d.majority_date,
                    "yes" if d.overdue else "no",
                    " ".join(d.components),
                ]
                for d in reconsent.reconsent_due(session, months)
            ),
        )
    if wanted == "tasks":
        return csv_download(
            "destruction-tasks",
            ["barcode", "study_id", "path", "position", "withdrawal"],
            (
                [
                    t.barcode,
                    t.study_id,
                    t.location["path"] if t.location else "",
                    (t.location or {}).get("position") or "",
                    t.task.withdrawal_id,
                ]
                for t in followup.tasks(session, pending_only=True)
            ),
        )
    return csv_download(
        "recalls-open",
        ["barcode", "request", "recipient", "withdrawal"],
        (
            [
                r.barcode,
                r.notice.request_reference or "",
                r.notice.recipient or "",
                r.notice.withdrawal_id,
            ]
            for r in followup.recalls(session, open_only=True)
        ),
    )


def _form_choices() -> dict[str, Any]:
    session = get_session()
    components = ["storage", "data", *(s.code for s in service.list_substudies(session))]
    return {
        "components": components,
        "forms": service.list_forms(session),
        "signatories": SIGNATORIES,
    }


def _record_page(
    patient: Patient, values: dict[str, str], error: str | None = None, status: int = 200
) -> ResponseReturnValue:
    current = service.patient_consent(get_session(), patient).current
    return render_template(
        "web/consent_record.html",
        patient=patient,
        values=values,
        error=error,
        current=current,
        **_form_choices(),
    ), status


@bp.get("/patients/<study_id>/consent/new")
@requires("consent:write")
def record_form(study_id: str) -> ResponseReturnValue:
    """The form to record what a signed consent form says for one component."""
    patient = get_patient(get_session(), study_id)
    return _record_page(patient, {"component": request.args.get("component", "storage")})


@bp.post("/patients/<study_id>/consent/new")
@requires("consent:write")
def record(study_id: str) -> ResponseReturnValue:
    """Record consent for one component (or correct the current entry)."""
    session = get_session()
    patient = get_patient(session, study_id)
    try:
        values = load_form(schemas.ConsentIn(), request.form)
        entry = service.record_consent(session, current_actor(), patient, values)
    except DomainError as exc:
        session.rollback()
        return _record_page(patient, request.form.to_dict(), exc.message, exc.status_code)
    flash(
        f"Recorded: {entry.component_code} consent {entry.decision} on "
        f"{entry.effective_date} (entry #{entry.id})."
    )
    return redirect(url_for("web_patients.patient_page", study_id=patient.study_id), 303)


def _withdraw_page(
    patient: Patient,
    values: dict[str, str],
    impact: Any = None,
    error: str | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    session = get_session()
    scopes = ["all", "storage", "data", *(s.code for s in service.list_substudies(session))]
    return render_template(
        "web/consent_withdraw.html",
        patient=patient,
        values=values,
        impact=impact,
        error=error,
        scopes=scopes,
        signatories=SIGNATORIES,
        by_box=_by_box(session, impact),
        today=clock.today().isoformat(),
    ), status


def _by_box(session: Any, impact: Any) -> list[dict[str, Any]]:
    """The impact's tubes in one table, grouped by box (path, position order): each with
    its type and what happens to it (blocked, destroyed, recalled, missing)."""
    if impact is None:
        return []
    rows: dict[str, dict[str, Any]] = {}
    for what, tubes in (
        ("blocked", impact.blocked),
        ("to destroy", impact.destruction),
        ("to anonymise", getattr(impact, "anonymisation", [])),
        ("recall", impact.recalls),
        ("missing", impact.missing),
    ):
        for tube in tubes:
            row = rows.setdefault(tube.barcode, {"tube": tube, "does": []})
            row["does"].append(what)
            if tube.location and not row["tube"].location:
                row["tube"] = tube
    where = places.locations(session, [r["tube"].id for r in rows.values()])
    kinds = (
        dict(
            session.execute(
                select(Aliquot.barcode, AliquotType.code)
                .join(AliquotType, AliquotType.id == Aliquot.aliquot_type_id)
                .where(Aliquot.barcode.in_(list(rows)))
            ).all()
        )
        if rows
        else {}
    )
    groups: dict[str, list[dict[str, Any]]] = {}
    for code, row in rows.items():
        place = where.get(row["tube"].id) or {}
        groups.setdefault(place.get("path") or "not stored (shipped, used or no place)", []).append(
            {
                "barcode": code,
                "type": kinds.get(code, ""),
                "position": place.get("position") or "",
                "does": ", ".join(row["does"]),
            }
        )
    return [
        {
            "box": box,
            "tubes": sorted(
                tubes, key=lambda t: (t["position"][:1], len(t["position"]), t["position"])
            ),
        }
        for box, tubes in sorted(groups.items())
    ]


@bp.get("/patients/<study_id>/consent/withdraw")
@requires("consent:write")
def withdraw_form(study_id: str) -> ResponseReturnValue:
    """The withdrawal form; its first step shows the impact without recording anything."""
    patient = get_patient(get_session(), study_id)
    # No signer is assumed (the officer says who asked); the day is today where the biobank is.
    return _withdraw_page(
        patient, {"scope": request.args.get("scope", "storage"), "date": clock.today().isoformat()}
    )


@bp.post("/patients/<study_id>/consent/withdraw")
@requires("consent:write")
def withdraw(study_id: str) -> ResponseReturnValue:
    """Preview a withdrawal's impact (step=preview) or record it (step=confirm)."""
    session = get_session()
    patient = get_patient(session, study_id)
    values = request.form.to_dict()
    try:
        parsed = load_form(schemas.WithdrawalIn(), request.form)
        if values.get("step") != "confirm":
            impact = withdrawal.plan(session, current_actor(), patient, parsed, dry_run=True)
            return _withdraw_page(patient, values, impact)
        impact = withdrawal.withdraw(session, current_actor(), patient, parsed)
    except DomainError as exc:
        session.rollback()
        return _withdraw_page(patient, values, error=exc.message, status=exc.status_code)
    flash(impact.summary)
    assert impact.withdrawal is not None
    return redirect(url_for("web_consent.withdrawal_page", withdrawal_id=impact.withdrawal.id), 303)


@bp.get("/consent/withdrawals/<withdrawal_id>")
@requires("consent:read")
def withdrawal_page(withdrawal_id: str) -> ResponseReturnValue:
    """One withdrawal: its destruction tasks (with where each tube is) and recall notices."""
    detail = followup.get_withdrawal(get_session(), _number(withdrawal_id, "withdrawal"))
    return render_template("web/withdrawal.html", detail=detail)


@bp.post("/consent/withdrawals/<withdrawal_id>/correction")
@requires("consent:write")
def correct_withdrawal(withdrawal_id: str) -> ResponseReturnValue:
    """Correct a withdrawal entered in error, then show it with what the correction did."""
    session = get_session()
    number = _number(withdrawal_id, "withdrawal")
    try:
        parsed = load_form(schemas.CorrectionIn(), request.form)
        done = correction.correct(session, current_actor(), number, parsed["reason"])
    except NotFound:
        raise  # no such withdrawal (or another site's): absent, not a form's error
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "error")
    else:
        flash(done.summary)
    return redirect(url_for("web_consent.withdrawal_page", withdrawal_id=number), 303)


@bp.post("/consent/destruction-tasks/<task_id>/done")
@requires("aliquot:write")
def task_done(task_id: str) -> ResponseReturnValue:
    """The tube was destroyed: close its destruction task."""
    view = followup.complete_task(
        get_session(), current_actor(), _number(task_id, "destruction task")
    )
    flash(f"{view.barcode} recorded as destroyed.")
    return redirect(
        url_for("web_consent.withdrawal_page", withdrawal_id=view.task.withdrawal_id), 303
    )


@bp.post("/consent/anonymisation-tasks/<task_id>/done")
@requires("aliquot:write")
def anonymisation_task_done(task_id: str) -> ResponseReturnValue:
    """The anonymised tube was relabelled: close its task (which then forgets the tube)."""
    view = anonymise.complete_task(
        get_session(), current_actor(), _number(task_id, "anonymisation task")
    )
    flash("Tube relabelled: back in use for sub-studies that accept anonymised material.")
    return redirect(
        url_for("web_consent.withdrawal_page", withdrawal_id=view.task.withdrawal_id), 303
    )


@bp.post("/consent/recalls/<notice_id>/acknowledge")
@requires("consent:write")
def recall_acknowledged(notice_id: str) -> ResponseReturnValue:
    """The recipient confirmed a recall notice."""
    view = followup.acknowledge_recall(
        get_session(), current_actor(), _number(notice_id, "recall notice")
    )
    flash(f"Recall of {view.barcode} acknowledged.")
    return redirect(
        url_for("web_consent.withdrawal_page", withdrawal_id=view.notice.withdrawal_id), 303
    )
