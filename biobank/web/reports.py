"""The reports page: each report's picture inline (its text alternative inside), the table
behind it, and links to the same report as CSV and SVG from the API."""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from biobank import clock
from biobank.auth import scope as sites
from biobank.auth.permissions import requires
from biobank.auth.web import current_asker
from biobank.db import get_session
from biobank.patients.models import RISK_GROUPS
from biobank.reference.models import Site
from biobank.reports import capacity, charts, completeness, fill, inventory, shipments
from biobank.reports import schemas as s
from biobank.reports.links import patient_link
from biobank.reports.period import date_range
from biobank.reports.scope import report_scope
from biobank.web.common import load_values, page_blueprint

bp = page_blueprint("web_reports", __name__)


@bp.get("/reports")
@requires("report:read")
def reports() -> ResponseReturnValue:
    """The manager's reports: completeness, capacity (and its fill over time), inventory,
    requests, as pictures and tables."""
    session, asker = get_session(), current_asker()
    scope = report_scope(session, asker.id, asker.role)
    wanted = {k: v for k, v in request.args.items() if k in ("site", "risk_group") and v}
    args = load_values(s.CompletenessQuery(), wanted)
    today = clock.today()
    place = {k: args[k] for k in ("site",) if k in args}
    start, end = date_range(session, {})
    # One report per key, each its own shape: the template's context.
    found: dict[str, Any] = {
        "completeness": completeness.report(session, scope, args, today),
        "capacity": capacity.summary(session, scope, place),
        "fill": fill.history(session, scope, place, start, end),
        "inventory": inventory.report(session, scope, place, start, end),
        "requests": shipments.report(session, scope, start, end, clock.now()),
    }
    pictures = {
        "completeness": charts.completeness_picture(found["completeness"], today),
        "matrix": charts.completeness_matrix(
            found["completeness"], completeness.timepoint_codes(session), today, patient_link()
        ),
        "capacity": charts.capacity_picture(found["capacity"]),
        "fill": charts.fill_picture(found["fill"], start, end),
        "inventory": charts.inventory_picture(found["inventory"]["months"], start, end),
        "requests": charts.requests_picture(found["requests"]["shipped"], start, end),
    }
    codes = list(
        session.scalars(
            select(Site.code).where(sites.site_filter(scope.sites, Site.code)).order_by(Site.code)
        )
    )
    query = {k: v for k, v in args.items() if k in ("site", "risk_group")}
    freezers = list(dict.fromkeys((r["site"], r["freezer"]) for r in found["fill"]))
    fill_table = [
        {"month": month, "used": [row["used"] for row in found["fill"] if row["month"] == month]}
        for month in dict.fromkeys(r["month"] for r in found["fill"])
    ]
    return render_template(
        "web/reports.html",
        found=found,
        freezers=freezers,
        fill_table=fill_table,
        pictures={k: v[v.index("<svg") :] for k, v in pictures.items()},
        sites=codes,
        risk_groups=RISK_GROUPS,
        args=args,
        query=query,
        place=place,
        start=start,
        end=end,
        today=today,
    )
