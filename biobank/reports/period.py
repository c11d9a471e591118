"""The date range of a report: from one day to another, within what the data can hold."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from biobank import clock
from biobank.errors import Invalid
from biobank.reference.models import Trial

DEFAULT_DAYS = 365
# Ten years: the trial runs 2022–2030; a longer range is a mistake, not a question.
LONGEST_DAYS = 3660


def date_range(session: Session, args: dict[str, Any]) -> tuple[dt.date, dt.date]:
    """The report's first and last day (both included): as asked, else the last year. A
    range reversed, ending after today, starting before the trial opened or longer than ten
    years is refused (422, naming the parameter)."""
    today = clock.today()
    opened = session.scalar(select(func.min(Trial.opened_on)))
    end = args.get("end") or today
    if end > today:
        raise Invalid(
            f"to is after today ({today.isoformat()}): there is no data yet",
            field="to",
            location="query",
        )
    if opened is not None and end < opened:
        raise Invalid(
            f"to is before the trial opened ({opened.isoformat()}): there is no data before",
            field="to",
            location="query",
        )
    start = args.get("start")
    if start is None:
        start = (
            max(end - dt.timedelta(days=DEFAULT_DAYS - 1), opened or dt.date.min)
            if end.toordinal() > DEFAULT_DAYS
            else dt.date.min
        )
    if start > today:
        raise Invalid(
            f"from is after today ({today.isoformat()}): there is no data yet",
            field="from",
            location="query",
        )
    if end < start:
        raise Invalid("to is before from", field="to", location="query")
    if opened is not None and start < opened:
        raise Invalid(
            f"from is before the trial opened ({opened.isoformat()}): there is no data before",
            field="from",
            location="query",
        )
    if (end - start).days >= LONGEST_DAYS:
        raise Invalid("the range is longer than ten years", field="from", location="query")
    return start, end
