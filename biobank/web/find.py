"""One search box on every page: a study ID, any barcode (tube, sample, box, rack, freezer)
or a request number leads straight to its page; anything else says what was tried."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select

from biobank.auth import scope
from biobank.auth.permissions import requires
from biobank.db import get_session
from biobank.errors import DomainError
from biobank.patients.models import Patient
from biobank.requests.askers import asker
from biobank.requests.lifecycle import requests_query
from biobank.requests.models import SampleRequest
from biobank.samples.numbering import numbering
from biobank.scan import service as scanning
from biobank.web.common import may, page_blueprint

bp = page_blueprint("web_find", __name__)

MAX_QUERY = 64


def _target(q: str) -> str | None:
    """Where a query leads for this user, or None."""
    session = get_session()
    if may("request:read"):
        number = session.scalar(
            requests_query(asker())
            .with_only_columns(SampleRequest.number)
            .where(SampleRequest.number == q.upper())
            .order_by(None)
        )
        if number:
            return url_for("web_researcher.request_page", number=number)
    if may("patient:read"):
        study_id = session.scalar(
            select(Patient.study_id).where(
                func.upper(Patient.study_id) == q.upper(),
                scope.patient_filter(scope.of(session), Patient.site_id),
            )
        )
        if study_id:
            return url_for("web_patients.patient_page", study_id=study_id)
    if may("scan"):
        try:
            card = scanning.scan(session, q, numbering(), recent=1)
        except DomainError:
            return None
        if card["kind"] == "box":
            return url_for("web_scan.scan_station", box=card["barcode"])
        return url_for("web_scan.scan_station", code=card["barcode"])
    return None


@bp.get("/find")
@requires("user:self")
def find() -> ResponseReturnValue:
    """Go to what a study ID, barcode or request number names (or say nothing matched)."""
    q = request.args.get("q", "").strip()
    if q and len(q) <= MAX_QUERY and q.isprintable():
        target = _target(q)
        if target:
            return redirect(target, 303)
    return render_template("web/find.html", q=q), 404 if q else 200
