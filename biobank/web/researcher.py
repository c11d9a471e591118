"""Researchers' pages: what their sub-study may receive (timepoint × material × type), the
request form, their requests with state and recall notices; a request's own page, which
staff see too (with their actions, from biobank.web.manager)."""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from biobank.auth.permissions import requires
from biobank.auth.web import current_user
from biobank.consent import service as consent
from biobank.db import get_session
from biobank.errors import DomainError, NotFound
from biobank.inputs import ascii_id
from biobank.patients.models import DIAGNOSES, RISK_GROUPS
from biobank.reference.models import AliquotType, Material, Timepoint
from biobank.requests import availability, lifecycle, readmodels, recalls, schemas, shipping
from biobank.requests.askers import asker
from biobank.requests.models import CONDITIONS, STATES
from biobank.samples.numbering import numbering
from biobank.samples.service import check_code
from biobank.web.common import csv_download, load_values, may, page_blueprint

bp = page_blueprint("web_researcher", __name__)


@bp.app_context_processor
def _recall_banner() -> dict[str, Any]:
    # Recalls not yet acknowledged: a banner on top of every page of the researchers and
    # managers who can act on them (read when a page asks for it, not on every template).
    def open_recalls() -> list[tuple[str, str]]:
        if "asker" not in g or not (may("request:recall") or may("request:decide")):
            return []  # public pages (no checked user) carry no banner
        return recalls.open_tube_recalls(get_session(), asker())

    return {"open_recalls": open_recalls}


LISTS = ("materials", "aliquot_types", "timepoints", "risk_groups", "diagnoses")
SINGLE = (
    "mrd_status",
    "mrd_timepoint",
    "min_volume_ml",
    "max_freeze_thaw",
    "patients",
    "aliquots_per_patient_timepoint",
)
LIST_LIMIT = 200
# The criteria as a person reads them on a request.
CRITERIA_WORDS = {
    "materials": "Material",
    "aliquot_types": "Aliquot type",
    "timepoints": "Timepoints",
    "risk_groups": "Risk group",
    "diagnoses": "Diagnosis",
    "mrd_status": "MRD status",
    "mrd_timepoint": "MRD measured at",
    "min_volume_ml": "At least this volume per tube (mL)",
    "max_freeze_thaw": "At most this many freeze–thaw cycles",
    "patients": "Patients",
    "aliquots_per_patient_timepoint": "Tubes per patient and timepoint",
}


def criteria_from(form: MultiDict[str, str], keys: tuple[str, ...] = SINGLE) -> dict[str, Any]:
    """The criteria a form (or a query string) gives, as the API's schema takes them."""
    found: dict[str, Any] = {key: form.getlist(key) for key in LISTS if form.getlist(key)}
    found.update({key: form[key].strip() for key in keys if form.get(key, "").strip()})
    return found


def _choices(session: Session) -> dict[str, Any]:
    user = current_user()
    substudies = (
        [s for s in consent.list_substudies(session) if s.code in user.substudy_codes]
        if user.role == "researcher"
        else consent.list_substudies(session)
    )
    return {
        "substudies": substudies,
        "materials": list(session.scalars(select(Material).order_by(Material.code))),
        "aliquot_types": list(session.scalars(select(AliquotType).order_by(AliquotType.code))),
        "timepoints": list(session.scalars(select(Timepoint).order_by(Timepoint.sort_order))),
        "risk_groups": RISK_GROUPS,
        "diagnoses": DIAGNOSES,
        "mrd_statuses": availability.MRD_STATUSES,
    }


def matrix(found: availability.Availability) -> dict[str, Any]:
    """The counts as a picture: one row per timepoint, one column per material and type."""
    columns = sorted({(g.material, g.aliquot_type) for g in found.groups})
    rows: dict[str, dict[tuple[str, str], availability.Group]] = {}
    for group in found.groups:
        rows.setdefault(group.timepoint or "unscheduled", {})[
            (group.material, group.aliquot_type)
        ] = group
    most = max((g.aliquots for g in found.groups), default=0)
    return {"columns": columns, "rows": rows, "most": most}


def _requests(session: Session, state: str | None = None) -> list[Any]:
    return list(session.scalars(lifecycle.requests_query(asker(), state=state).limit(LIST_LIMIT)))


@bp.get("/research")
@requires("request:availability")
def research() -> ResponseReturnValue:
    """What the sub-study may receive now, with filters; the user's requests and recalls."""
    session = get_session()
    choices = _choices(session)
    args = request.args
    view: dict[str, Any] = {
        "found": None,
        "grid": None,
        "error": None,
        "args": args,
        "selected": {key: args.getlist(key) for key in LISTS},
    }
    try:
        query = load_values(
            schemas.AvailabilityQuery(),
            {
                **criteria_from(
                    args, ("mrd_status", "mrd_timepoint", "min_volume_ml", "max_freeze_thaw")
                ),
                **({"substudy": args["substudy"]} if args.get("substudy") else {}),
            },
        )
        substudy = lifecycle.visible_substudy(
            session,
            asker(),
            query.pop("substudy", None)
            or (choices["substudies"][0].code if choices["substudies"] else None),
        )
        view["substudy"] = substudy
        view["found"] = availability.count(session, substudy, availability.resolve(session, query))
        view["grid"] = matrix(view["found"])
    except DomainError as exc:
        session.rollback()
        view["error"] = exc.message
    mine = _requests(session)
    shipped = [r for r in mine if r.state in ("shipped", "received", "closed")]
    open_recalls = [
        (r, notice)
        for r in shipped
        for notice in readmodels.tube_recalls(session, r)
        if notice.acknowledged_at is None or notice.destruction_reported_at is None
    ]
    # The whole filter goes on to the request form, single values too (a minimum volume).
    carried = {
        **{key: args.getlist(key) for key in LISTS if args.getlist(key)},
        **{key: args[key].strip() for key in SINGLE if args.get(key, "").strip()},
    }
    return render_template(
        "web/research.html", requests=mine, recalls=open_recalls, carried=carried, **choices, **view
    )


def _form_page(
    values: MultiDict[str, str], error: str | None = None, status: int = 200
) -> ResponseReturnValue:
    return render_template(
        "web/request_form.html",
        values=values,
        error=error,
        selected={key: values.getlist(key) for key in LISTS},
        **_choices(get_session()),
    ), status


@bp.get("/requests/new")
@requires("request:write")
def request_form() -> ResponseReturnValue:
    """The request form: sub-study, title, purpose, what material, how many patients."""
    return _form_page(request.args)


@bp.post("/requests/new")
@requires("request:write")
def create_request() -> ResponseReturnValue:
    """Make the request (a draft, or submitted at once)."""
    session = get_session()
    form = request.form
    try:
        values = load_values(
            schemas.RequestIn(),
            {
                **({"substudy": form["substudy"]} if form.get("substudy") else {}),
                "title": form.get("title", "").strip(),
                "purpose": form.get("purpose", "").strip(),
                "criteria": criteria_from(form),
                "submit": form.get("submit_now") == "1",
            },
        )
        made = lifecycle.create(session, asker(), values)
    except DomainError as exc:
        session.rollback()
        return _form_page(form, exc.message, exc.status_code)
    flash(f"Request {made.number} {'submitted' if made.state == 'submitted' else 'saved'}.")
    return redirect(url_for("web_researcher.request_page", number=made.number), 303)


@bp.get("/requests")
@requires("request:read")
def request_list() -> ResponseReturnValue:
    """Requests, newest first (researchers: their sub-studies' only), by state."""
    state = request.args.get("state") or None
    if state is not None and state not in STATES:
        state = None
    found = _requests(get_session(), state)
    if request.args.get("format") == "csv":
        return csv_download(
            "requests",
            [
                "number",
                "substudy",
                "title",
                "state",
                "created_by",
                "created_on",
                "shipped_on",
                "courier",
                "tracking_number",
            ],
            (
                [
                    r.number,
                    r.substudy_code,
                    r.title,
                    r.state,
                    r.created_by,
                    r.created_at.date(),
                    r.shipment.shipped_at.date() if r.shipment else "",
                    r.shipment.courier if r.shipment else "",
                    r.shipment.tracking_number if r.shipment else "",
                ]
                for r in found
            ),
        )
    return render_template("web/requests.html", requests=found, state=state, states=STATES)


@bp.get("/requests/<number>")
@requires("request:read")
def request_page(number: str) -> ResponseReturnValue:
    """A request: its state, criteria, tubes, shipment, recalls, and the user's next steps."""
    session = get_session()
    who = asker()
    found = lifecycle.get_request(session, who, number)
    ship = (
        shipping.ship_defaults(session, found)
        if found.state == "picking" and may("request:ship")
        else {}
    )
    view = readmodels.describe(session, found, not who.researcher)
    view.recalls = readmodels.tube_recalls(session, found)  # type: ignore[assignment]
    available = view.matching_now
    if available is None and found.state in ("draft", "submitted", "approved"):
        # The researcher is told too when the request asks for more than there is.
        try:
            available = availability.matching(
                session,
                found.substudy,
                availability.resolve(session, found.effective_criteria, "criteria."),
            )
        except DomainError:
            available = None
    asked = int(found.effective_criteria.get("patients") or 0)
    short = available if available is not None and available["patients"] < asked else None
    # The owner rule the services apply (lifecycle.may_act): a colleague of the sub-study reads
    # the request and gets no button the service would refuse.
    return render_template(
        "web/request.html",
        view=view,
        staff=not who.researcher,
        acts=lifecycle.may_act(who, found),
        conditions=CONDITIONS,
        ship=ship,
        short=short,
        asked=asked,
        words=CRITERIA_WORDS,
    )


@bp.post("/requests/<number>/submit")
@requires("request:write")
def submit(number: str) -> ResponseReturnValue:
    """Send a draft to the biobank managers."""
    done = lifecycle.submit(get_session(), asker(), number)
    flash(f"Request {done.number} submitted.")
    return redirect(url_for("web_researcher.request_page", number=done.number), 303)


@bp.post("/requests/<number>/cancel")
@requires("request:cancel")
def cancel(number: str) -> ResponseReturnValue:
    """Cancel a request before it ships, saying why."""
    values = load_values(
        schemas.RequestReasonIn(), {"reason": request.form.get("reason", "").strip()}
    )
    done = lifecycle.cancel(get_session(), asker(), number, values["reason"])
    put_back = f" Put back: {', '.join(done.put_back)}." if done.put_back else ""
    flash(f"Request {done.request.number} cancelled; {done.released} tube(s) released.{put_back}")
    return redirect(url_for("web_researcher.request_page", number=done.request.number), 303)


def _notice(value: str) -> int:
    number = ascii_id(value)
    if number is None:
        raise NotFound(f"no recall notice {value}")
    return number


@bp.post("/requests/<number>/recalls/<notice_id>/acknowledge")
@requires("request:recall")
def recall_read(number: str, notice_id: str) -> ResponseReturnValue:
    """The researcher has read a recall notice."""
    recalls.acknowledge_tube(get_session(), asker(), number, _notice(notice_id))
    flash("Recall acknowledged.")
    return redirect(url_for("web_researcher.request_page", number=number), 303)


@bp.post("/requests/<number>/recalls/<notice_id>/destroyed")
@requires("request:recall")
def recall_destroyed(number: str, notice_id: str) -> ResponseReturnValue:
    """The researcher destroyed a recalled tube."""
    recalls.report_tube_destroyed(get_session(), asker(), number, _notice(notice_id))
    flash("Destruction of the recalled tube recorded.")
    return redirect(url_for("web_researcher.request_page", number=number), 303)


@bp.post("/requests/<number>/receive")
@requires("request:receipt")
def receive(number: str) -> ResponseReturnValue:
    """The tubes arrived (a note for the whole shipment; per-tube notes through the API)."""
    values = load_values(
        schemas.ReceiveIn(), {"note": request.form.get("note", "").strip() or None}
    )
    shipping.receive(get_session(), asker(), number, values)
    flash(f"Receipt of request {number} recorded.")
    return redirect(url_for("web_researcher.request_page", number=number), 303)


@bp.post("/requests/<number>/consumed")
@requires("request:receipt")
def consumed(number: str) -> ResponseReturnValue:
    """Tubes used up by the recipient (scanned or typed, one per line)."""
    values = load_values(
        schemas.ConsumedIn(),
        {
            "barcodes": request.form.get("barcodes", "").split(),
            "note": request.form.get("note", "").strip() or None,
        },
    )
    codes = [check_code(c, numbering(), f"barcodes.{i}") for i, c in enumerate(values["barcodes"])]
    shipping.consumed(get_session(), asker(), number, codes, values["note"])
    flash(f"{len(codes)} tube(s) reported used up.")
    return redirect(url_for("web_researcher.request_page", number=number), 303)


@bp.post("/requests/<number>/close")
@requires("request:receipt")
def close(number: str) -> ResponseReturnValue:
    """Close a received request once every tube is accounted for."""
    lifecycle.close(get_session(), asker(), number)
    flash(f"Request {number} closed.")
    return redirect(url_for("web_researcher.request_page", number=number), 303)
