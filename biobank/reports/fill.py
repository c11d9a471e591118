"""Freezer fill over time: per site and freezer, the positions used at each month's end.

Read from the custody log, which records every change of a tube's place with the freezer it
is in (``new_values.freezer_id``, as the temperature excursions read it): a tube takes a
position in a freezer when it is stored, moved, put back or refrozen there, and gives it up
when it is moved elsewhere, its place is forgotten (``unstored``) or it leaves the biobank
(shipped, consumed, destroyed). Taking a tube out or thawing it keeps its place, as the
capacity summary counts it. One statement: each tube's events in order, each paired with the
one before (a window), turned into +1 for the freezer entered and −1 for the freezer left,
summed per month and freezer; the running totals over a few dozen rows are added up here.

What the log cannot say is left out: a tube returned from a shipment counts again once it is
stored or put back, and a taken-out tube whose box moves to another freezer once put back.
Months are UTC calendar months.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Integer, case, func, literal, null, select, union_all
from sqlalchemy.orm import Session

from biobank.auth import scope as sites
from biobank.custody.models import CustodyEvent
from biobank.reference.models import Site
from biobank.reports.inventory import months_between
from biobank.reports.scope import ReportScope, sites_asked
from biobank.reports.sql import month_of
from biobank.samples.states import DEPARTED
from biobank.storage.models import Container

HEADER = ("month", "site", "freezer", "freezer_barcode", "used")
# Events that put a tube into a freezer's position, and those after which it holds none.
ENTERING = ("stored", "moved", "put_back", "refrozen")
LEAVING = ("unstored", *sorted(DEPARTED))


def _changes(last_month: str) -> Any:
    """(month, freezer id, change in used positions) from the custody log, up to a month."""
    e = CustodyEvent
    # The freezer whose position the tube holds after the event (NULL: none).
    holds = case((e.event_type.in_(ENTERING), e.new_values["freezer_id"].as_integer()),
                 else_=null().cast(Integer))
    # In the log's own order (each tube's chain): the (aliquot_id, id) index, no sort; a
    # CTE, read once for both the freezers entered and those left.
    steps = (select(e.occurred_at, holds.label("now"),
                    func.lag(holds).over(partition_by=e.aliquot_id, order_by=e.id)
                    .label("before"))
             .where(e.aliquot_id.is_not(None), e.event_type.in_((*ENTERING, *LEAVING)))
             .cte("steps"))
    month = month_of(steps.c.occurred_at)
    changed = steps.c.now.is_distinct_from(steps.c.before)
    moves = union_all(
        select(month.label("month"), steps.c.now.label("freezer_id"),
               literal(1).label("change")).where(changed, steps.c.now.is_not(None)),
        select(month, steps.c.before, literal(-1)).where(changed,
                                                         steps.c.before.is_not(None))
    ).subquery("moves")
    return (select(moves.c.month, moves.c.freezer_id, func.sum(moves.c.change))
            .where(moves.c.month <= last_month)
            .group_by(moves.c.month, moves.c.freezer_id))


def history(session: Session, scope: ReportScope, args: dict[str, Any], start: dt.date,
            end: dt.date) -> list[dict[str, Any]]:
    """Every freezer of the covered sites and every month of the range: the positions used
    at the month's end (the months' changes in SQL, carried over from before the range)."""
    months = months_between(start, end)
    covered = sites_asked(session, scope, args.get("site"), args.get("country"))
    freezers = session.execute(
        select(Container.id, Container.name, Container.barcode, Site.code)
        .join(Site, Site.id == Container.site_id)
        .where(Container.kind == "freezer", sites.site_filter(covered, Site.code))
        .order_by(Site.code, Container.name, Container.barcode)).all()
    changes = _changes(months[-1]).subquery("changes")
    found: dict[int, dict[str, int]] = {}
    for month, freezer_id, change in session.execute(
            select(changes).where(changes.c.freezer_id.in_([f.id for f in freezers]))):
        found.setdefault(freezer_id, {})[month] = int(change)
    rows = []
    for freezer in freezers:
        by_month = found.get(freezer.id, {})
        used = sum(change for month, change in by_month.items() if month < months[0])
        for month in months:
            used += by_month.get(month, 0)
            rows.append({"month": month, "site": freezer.code, "freezer": freezer.name,
                         "freezer_barcode": freezer.barcode, "used": used})
    return rows
