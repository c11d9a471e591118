"""Inventory over time: tubes received, shipped, returned, consumed, destroyed, missing and
found per month, the stock at each month's end, by material and aliquot type; and the
freeze–thaw distribution of the tubes held now.

The whole trial is read from the tallies the triggers keep (``biobank.reports.tally``): a few
hundred rows whatever the number of tubes. A report narrowed to sites (a site-scoped asker,
``site`` or ``country``) counts the tubes that belong to those sites by the site-scope rule
(``biobank.auth.scope``: where the tube has its place, else its patient's site) and
their custody events, grouped in SQL, as the tallies' backfill does (migration
``c4e1a9d27b5f``): the tallies' own site is the patient's, which is not that rule. Months are
UTC calendar months.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import case, func, literal, select, union_all
from sqlalchemy.orm import Session

from biobank.auth import scope as sites
from biobank.custody.models import CustodyEvent
from biobank.reference.models import AliquotType, Material
from biobank.reports.models import InventoryTally, ThawTally
from biobank.reports.scope import ReportScope, sites_asked
from biobank.reports.sql import month_of
from biobank.samples.models import Aliquot, Sample
from biobank.samples.states import IN_HOUSE

FLOWS = ("received", "shipped", "returned", "consumed", "destroyed", "missing", "found")
CSV_HEADER = ("month", "material", "aliquot_type", *FLOWS, "in_stock")


def months_between(start: dt.date, end: dt.date) -> list[str]:
    """Every month from ``start``'s to ``end``'s, as ``YYYY-MM``."""
    found, year, month = [], start.year, start.month
    while (year, month) <= (end.year, end.month):
        found.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


# Custody events that are a flow of the report (by the flow's name), and those after which a
# tube no longer held left the stock (the tallies' backfill dates its leaving so).
EVENT_FLOWS = {
    "shipped": "shipped",
    "returned": "returned",
    "consumed": "consumed",
    "destroyed": "destroyed",
    "marked_missing": "missing",
    "found": "found",
    "blocked": "blocked",
    "unblocked": "unblocked",
}
LEAVING = (*EVENT_FLOWS, "made_available")


def _kinds_of_tube(args: dict[str, Any], material_id: Any, aliquot_type_id: Any) -> list[Any]:
    """The conditions of the report's material and aliquot type on these columns."""
    conditions = []
    if args.get("material"):
        conditions.append(
            material_id.in_(select(Material.id).where(Material.code == args["material"]))
        )
    if args.get("aliquot_type"):
        conditions.append(
            aliquot_type_id.in_(
                select(AliquotType.id).where(AliquotType.code == args["aliquot_type"])
            )
        )
    return conditions


def _from_tallies(args: dict[str, Any]) -> Any:
    """(month, material id, aliquot type id, kind, tubes) of the whole trial: the tally."""
    t = InventoryTally
    return select(t.month, t.material_id, t.aliquot_type_id, t.kind, t.tubes).where(
        *_kinds_of_tube(args, t.material_id, t.aliquot_type_id)
    )


def _from_tubes(covered: sites.Scope, args: dict[str, Any]) -> Any:
    """The same rows for the tubes of the covered sites, from the tubes and the custody log:
    received in the month made; each flow in its event's month; in stock +1 when made, −1
    for a tube no longer held in the month of its last status change (made, if none)."""
    tubes = (
        select(
            Aliquot.id,
            Aliquot.created_at,
            Aliquot.status,
            Sample.material_id,
            Aliquot.aliquot_type_id,
        )
        .join(Sample, Sample.id == Aliquot.sample_id)
        .where(
            sites.aliquot_filter(covered, Aliquot.id),
            *_kinds_of_tube(args, Sample.material_id, Aliquot.aliquot_type_id),
        )
        .cte("tubes")
    )
    key = (tubes.c.material_id, tubes.c.aliquot_type_id)
    made = month_of(tubes.c.created_at)
    left = (
        select(func.max(CustodyEvent.occurred_at))
        .where(CustodyEvent.aliquot_id == tubes.c.id, CustodyEvent.event_type.in_(LEAVING))
        .scalar_subquery()
    )
    e = CustodyEvent
    return union_all(
        select(
            made.label("month"), *key, literal("received").label("kind"), literal(1).label("tubes")
        ),
        select(month_of(e.occurred_at), *key, case(EVENT_FLOWS, value=e.event_type), literal(1))
        .join(tubes, tubes.c.id == e.aliquot_id)
        .where(e.event_type.in_(list(EVENT_FLOWS))),
        select(made, *key, literal("in_stock"), literal(1)),
        select(
            month_of(func.coalesce(left, tubes.c.created_at)),
            *key,
            literal("in_stock"),
            literal(-1),
        ).where(tubes.c.status.not_in(IN_HOUSE)),
    )


def rows(
    session: Session, scope: ReportScope, args: dict[str, Any], start: dt.date, end: dt.date
) -> list[dict[str, Any]]:
    """One row per month, material and aliquot type that has anything to say in the range:
    each flow, and the stock at the month's end."""
    months = months_between(start, end)
    covered = sites_asked(session, scope, args.get("site"), args.get("country"))
    counts = (_from_tallies(args) if covered.everywhere else _from_tubes(covered, args)).subquery(
        "counts"
    )
    found = session.execute(
        select(
            counts.c.month, Material.code, AliquotType.code, counts.c.kind, func.sum(counts.c.tubes)
        )
        .join(Material, Material.id == counts.c.material_id)
        .join(AliquotType, AliquotType.id == counts.c.aliquot_type_id)
        .where(counts.c.month <= months[-1])
        .group_by(counts.c.month, Material.code, AliquotType.code, counts.c.kind)
    ).all()
    opening: dict[tuple[str, str], int] = {}
    flows: dict[tuple[str, str, str], dict[str, int]] = {}
    for month, material, kind_of_tube, kind, tubes in found:
        group = (material, kind_of_tube)
        if month < months[0]:
            if kind == "in_stock":
                opening[group] = opening.get(group, 0) + int(tubes)
            continue
        if kind in FLOWS or kind == "in_stock":
            flows.setdefault((month, *group), {})[kind] = int(tubes)
    result = []
    for group in sorted({(m, a) for _, m, a in flows} | set(opening)):
        stock = opening.get(group, 0)
        for month in months:
            moved = flows.get((month, *group), {})
            stock += moved.get("in_stock", 0)
            if not moved and stock == 0:
                continue
            result.append(
                {
                    "month": month,
                    "material": group[0],
                    "aliquot_type": group[1],
                    **{kind: moved.get(kind, 0) for kind in FLOWS},
                    "in_stock": stock,
                }
            )
    result.sort(key=lambda r: (r["month"], r["material"], r["aliquot_type"]))
    return result


def totals(found: list[dict[str, Any]], start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    """The rows added up per month (every month of the range, the stock carried over)."""
    by_month: dict[str, dict[str, Any]] = {}
    for row in found:
        entry = by_month.setdefault(
            row["month"], {"month": row["month"], **dict.fromkeys(FLOWS, 0), "in_stock": 0}
        )
        for kind in (*FLOWS, "in_stock"):
            entry[kind] += row[kind]
    result, stock = [], 0
    for month in months_between(start, end):
        entry = by_month.get(month) or {
            "month": month,
            **dict.fromkeys(FLOWS, 0),
            "in_stock": stock,
        }
        stock = entry["in_stock"]
        result.append(entry)
    return result


def freeze_thaw(session: Session, scope: ReportScope, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Tubes held now per number of freeze–thaw cycles (the tally for the whole trial, the
    covered sites' tubes otherwise)."""
    covered = sites_asked(session, scope, args.get("site"), args.get("country"))
    if covered.everywhere:
        t = ThawTally
        query = (
            select(t.freeze_thaw_count, func.sum(t.tubes))
            .where(*_kinds_of_tube(args, t.material_id, t.aliquot_type_id))
            .group_by(t.freeze_thaw_count)
            .order_by(t.freeze_thaw_count)
        )
    else:
        query = (
            select(Aliquot.freeze_thaw_count, func.count())
            .join(Sample, Sample.id == Aliquot.sample_id)
            .where(
                Aliquot.status.in_(IN_HOUSE),
                sites.aliquot_filter(covered, Aliquot.id),
                *_kinds_of_tube(args, Sample.material_id, Aliquot.aliquot_type_id),
            )
            .group_by(Aliquot.freeze_thaw_count)
            .order_by(Aliquot.freeze_thaw_count)
        )
    return [
        {"freeze_thaw_count": count, "tubes": int(tubes)}
        for count, tubes in session.execute(query)
        if tubes
    ]


def report(
    session: Session, scope: ReportScope, args: dict[str, Any], start: dt.date, end: dt.date
) -> dict[str, Any]:
    """The whole inventory report."""
    found = rows(session, scope, args, start, end)
    return {
        "start": start,
        "end": end,
        "site": args.get("site"),
        "country": args.get("country"),
        "material": args.get("material"),
        "aliquot_type": args.get("aliquot_type"),
        "months": totals(found, start, end),
        "rows": found,
        "freeze_thaw": freeze_thaw(session, scope, args),
    }
