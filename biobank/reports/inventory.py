"""Inventory over time: tubes received, shipped, returned, consumed, destroyed, missing and
found per month, the stock at each month's end, by material and aliquot type; and the
freeze–thaw distribution of the tubes held now.

Read from the tallies the triggers keep (``biobank.reports.tally``): a few hundred rows
whatever the number of tubes. Months are UTC calendar months.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from biobank.reference.models import AliquotType, Material
from biobank.reports.models import InventoryTally, ThawTally
from biobank.reports.scope import ReportScope, sites_asked

FLOWS = ("received", "shipped", "returned", "consumed", "destroyed", "missing", "found")
CSV_HEADER = ("month", "material", "aliquot_type", *FLOWS, "in_stock")


def months_between(start: dt.date, end: dt.date) -> list[str]:
    """Every month from ``start``'s to ``end``'s, as ``YYYY-MM``."""
    found, year, month = [], start.year, start.month
    while (year, month) <= (end.year, end.month):
        found.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def _narrowed(query: Any, table: Any, session: Session, scope: ReportScope,
              args: dict[str, Any]) -> Any:
    sites = sites_asked(session, scope, args.get("site"), args.get("country"))
    if sites is not None:
        query = query.where(table.site_id.in_(sites))
    if args.get("material"):
        query = query.where(table.material_id.in_(
            select(Material.id).where(Material.code == args["material"])))
    if args.get("aliquot_type"):
        query = query.where(table.aliquot_type_id.in_(
            select(AliquotType.id).where(AliquotType.code == args["aliquot_type"])))
    return query


def rows(session: Session, scope: ReportScope, args: dict[str, Any], start: dt.date,
         end: dt.date) -> list[dict[str, Any]]:
    """One row per month, material and aliquot type that has anything to say in the range:
    each flow, and the stock at the month's end."""
    months = months_between(start, end)
    t = InventoryTally
    found = session.execute(_narrowed(
        select(t.month, Material.code, AliquotType.code, t.kind, func.sum(t.tubes))
        .join(Material, Material.id == t.material_id)
        .join(AliquotType, AliquotType.id == t.aliquot_type_id)
        .where(t.month <= months[-1])
        .group_by(t.month, Material.code, AliquotType.code, t.kind), t, session, scope,
        args)).all()
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
            result.append({"month": month, "material": group[0], "aliquot_type": group[1],
                           **{kind: moved.get(kind, 0) for kind in FLOWS},
                           "in_stock": stock})
    result.sort(key=lambda r: (r["month"], r["material"], r["aliquot_type"]))
    return result


def totals(found: list[dict[str, Any]], start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    """The rows added up per month (every month of the range, the stock carried over)."""
    by_month: dict[str, dict[str, Any]] = {}
    for row in found:
        entry = by_month.setdefault(row["month"], {"month": row["month"],
                                                   **dict.fromkeys(FLOWS, 0), "in_stock": 0})
        for kind in (*FLOWS, "in_stock"):
            entry[kind] += row[kind]
    result, stock = [], 0
    for month in months_between(start, end):
        entry = by_month.get(month) or {"month": month, **dict.fromkeys(FLOWS, 0),
                                        "in_stock": stock}
        stock = entry["in_stock"]
        result.append(entry)
    return result


def freeze_thaw(session: Session, scope: ReportScope, args: dict[str, Any]
                ) -> list[dict[str, Any]]:
    """Tubes held now per number of freeze–thaw cycles."""
    t = ThawTally
    found = session.execute(_narrowed(
        select(t.freeze_thaw_count, func.sum(t.tubes)).group_by(t.freeze_thaw_count)
        .order_by(t.freeze_thaw_count), t, session, scope, args)).all()
    return [{"freeze_thaw_count": count, "tubes": int(tubes)} for count, tubes in found
            if tubes]


def report(session: Session, scope: ReportScope, args: dict[str, Any], start: dt.date,
           end: dt.date) -> dict[str, Any]:
    """The whole inventory report."""
    found = rows(session, scope, args, start, end)
    return {"start": start, "end": end, "site": args.get("site"),
            "country": args.get("country"), "material": args.get("material"),
            "aliquot_type": args.get("aliquot_type"), "months": totals(found, start, end),
            "rows": found, "freeze_thaw": freeze_thaw(session, scope, args)}
