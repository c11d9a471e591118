"""Freezer fill over time: per site and freezer, the positions used at each month's end.

Read from the custody log, which records every change of a tube's place with the freezer it
is in (``new_values.freezer_id``, as the temperature excursions read it): a tube takes a
position in a freezer when it is stored, moved, put back or refrozen there, and gives it up
when it is moved elsewhere, its place is forgotten (``unstored``) or it leaves the biobank
(shipped, consumed, destroyed). Taking a tube out or thawing it keeps its place, as the
capacity summary counts it. A trigger on the custody log keeps, per month and freezer, the
change in positions used (``biobank.reports.tally.fill_statements``: each place event paired
with the tube's one before it, +1 for the freezer entered and −1 for the freezer left); the
running totals over a few dozen rows are added up here.

What the log cannot say is left out: a tube returned from a shipment counts again once it is
stored or put back, and a taken-out tube whose box moves to another freezer once put back.
Months are UTC calendar months.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank.auth import scope as sites
from biobank.reference.models import Site
from biobank.reports.inventory import months_between
from biobank.reports.models import FillTally
from biobank.reports.scope import ReportScope, sites_asked
from biobank.storage.models import Container

HEADER = ("month", "site", "freezer", "freezer_barcode", "used")


def history(
    session: Session, scope: ReportScope, args: dict[str, Any], start: dt.date, end: dt.date
) -> list[dict[str, Any]]:
    """Every freezer of the covered sites and every month of the range: the positions used
    at the month's end (the months' changes in SQL, carried over from before the range)."""
    months = months_between(start, end)
    covered = sites_asked(session, scope, args.get("site"), args.get("country"))
    freezers = session.execute(
        select(Container.id, Container.name, Container.barcode, Site.code)
        .join(Site, Site.id == Container.site_id)
        .where(Container.kind == "freezer", sites.site_filter(covered, Site.code))
        .order_by(Site.code, Container.name, Container.barcode)
    ).all()
    found: dict[int, dict[str, int]] = {}
    for month, freezer_id, change in session.execute(
        select(FillTally.month, FillTally.freezer_id, FillTally.tubes).where(
            FillTally.month <= months[-1], FillTally.freezer_id.in_([f.id for f in freezers])
        )
    ):
        found.setdefault(freezer_id, {})[month] = int(change)
    rows = []
    for freezer in freezers:
        by_month = found.get(freezer.id, {})
        used = sum(change for month, change in by_month.items() if month < months[0])
        for month in months:
            used += by_month.get(month, 0)
            rows.append(
                {
                    "month": month,
                    "site": freezer.code,
                    "freezer": freezer.name,
                    "freezer_barcode": freezer.barcode,
                    "used": used,
                }
            )
    return rows
