"""Requests and shipments: requests by state and age, tubes shipped per sub-study per month,
and the turnaround from approval to shipment. Researchers see their own sub-studies only."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, case, func, literal, select, true
from sqlalchemy.orm import Session

from biobank.consent.models import Substudy
from biobank.db import UTCDateTime
from biobank.reports.scope import ReportScope
from biobank.reports.sql import days_between, month_of
from biobank.requests.models import STATES, RequestAliquot, SampleRequest, Shipment

# Allocated tubes that went out with their shipment (what became of them since does not
# change that they were shipped).
LEFT = ("shipped", "received", "consumed", "returned", "destroyed")
# Age bands of a request, in days since it was created.
AGES = ((7, "under_7_days"), (30, "7_to_30_days"), (90, "30_to_90_days"), (None, "over_90_days"))
SHIPPED_HEADER = ("substudy", "month", "shipments", "tubes")


def by_state(session: Session, scope: ReportScope, now: dt.datetime) -> list[dict[str, Any]]:
    """Requests per state, by age band, with the oldest one's age."""
    age = days_between(literal(now, UTCDateTime()), SampleRequest.created_at)
    bands = []
    lower: int | None = None
    for upper, name in AGES:
        condition = and_(
            true(),
            *([age >= lower] if lower is not None else []),
            *([age < upper] if upper is not None else []),
        )
        bands.append(func.sum(case((condition, 1), else_=0)).label(name))
        lower = upper
    rows = session.execute(
        select(
            SampleRequest.state,
            func.count().label("requests"),
            *bands,
            func.max(age).label("oldest"),
        )
        .where(scope.substudy_filter(SampleRequest.substudy_id))
        .group_by(SampleRequest.state)
    ).all()
    found = {r.state: r for r in rows}
    result = []
    for state in STATES:
        row = found.get(state)
        result.append(
            {
                "state": state,
                "requests": row.requests if row else 0,
                **{name: int(getattr(row, name) or 0) if row else 0 for _, name in AGES},
                "oldest_days": round(float(row.oldest), 1) if row else None,
            }
        )
    return result


def _shipped_in(start: dt.date, end: dt.date) -> Any:
    first = dt.datetime.combine(start, dt.time(), dt.UTC)
    after = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC)
    return (Shipment.shipped_at >= first) & (Shipment.shipped_at < after)


def shipped(
    session: Session, scope: ReportScope, start: dt.date, end: dt.date
) -> list[dict[str, Any]]:
    """Shipments and tubes shipped per sub-study and month (UTC months)."""
    month = month_of(Shipment.shipped_at)
    tubes = (
        select(RequestAliquot.request_id, func.count().label("tubes"))
        .where(RequestAliquot.state.in_(LEFT))
        .group_by(RequestAliquot.request_id)
        .subquery("tubes")
    )
    rows = session.execute(
        select(
            Substudy.code,
            month.label("month"),
            func.count().label("shipments"),
            func.coalesce(func.sum(tubes.c.tubes), 0).label("tubes"),
        )
        .select_from(Shipment)
        .join(SampleRequest, SampleRequest.id == Shipment.request_id)
        .join(Substudy, Substudy.id == SampleRequest.substudy_id)
        .outerjoin(tubes, tubes.c.request_id == SampleRequest.id)
        .where(_shipped_in(start, end), scope.substudy_filter(SampleRequest.substudy_id))
        .group_by(Substudy.code, month)
        .order_by(month, Substudy.code)
    ).all()
    return [
        {"substudy": r.code, "month": r.month, "shipments": r.shipments, "tubes": int(r.tubes)}
        for r in rows
    ]


def turnaround(
    session: Session, scope: ReportScope, start: dt.date, end: dt.date
) -> list[dict[str, Any]]:
    """Days from approval to shipment, per month of shipment: count, mean, longest."""
    month = month_of(Shipment.shipped_at)
    days = days_between(Shipment.shipped_at, SampleRequest.decided_at)
    rows = session.execute(
        select(
            month.label("month"),
            func.count().label("shipments"),
            func.avg(days).label("mean"),
            func.max(days).label("longest"),
        )
        .select_from(Shipment)
        .join(SampleRequest, SampleRequest.id == Shipment.request_id)
        .where(
            _shipped_in(start, end),
            SampleRequest.decided_at.is_not(None),
            scope.substudy_filter(SampleRequest.substudy_id),
        )
        .group_by(month)
        .order_by(month)
    ).all()
    return [
        {
            "month": r.month,
            "shipments": r.shipments,
            "mean_days": round(float(r.mean), 2),
            "longest_days": round(float(r.longest), 2),
        }
        for r in rows
    ]


def report(
    session: Session, scope: ReportScope, start: dt.date, end: dt.date, now: dt.datetime
) -> dict[str, Any]:
    """The three parts of the requests report."""
    return {
        "start": start,
        "end": end,
        "by_state": by_state(session, scope, now),
        "shipped": shipped(session, scope, start, end),
        "turnaround": turnaround(session, scope, start, end),
    }
