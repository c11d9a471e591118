"""The few SQL functions the reports need that SQLite and PostgreSQL spell differently."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

# The UTC month of a timestamp as text ``YYYY-MM``, per dialect: the one spelling, used by
# ``month_of`` in queries and by the tallies' trigger SQL (``biobank.reports.tally``).
MONTH = {"sqlite": "strftime('%Y-%m', {0})", "postgresql": "to_char({0}, 'YYYY-MM')"}


class month_of(FunctionElement[str]):  # noqa: N801 (an SQL function, named like one)
    """The UTC calendar month of a timestamp column, as text ``YYYY-MM``."""

    type = String()
    inherit_cache = True
    name = "month_of"


class days_between(FunctionElement[float]):  # noqa: N801
    """Days (with fractions) from the second timestamp to the first."""

    type = Float()
    inherit_cache = True
    name = "days_between"


@compiles(month_of, "sqlite")
@compiles(month_of, "postgresql")
def _month(element: month_of, compiler: SQLCompiler, **kw: Any) -> str:
    return MONTH[compiler.dialect.name].format(compiler.process(element.clauses, **kw))


@compiles(days_between, "sqlite")
def _days_sqlite(element: days_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"(julianday({later}) - julianday({earlier}))"


@compiles(days_between, "postgresql")
def _days_postgresql(element: days_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"(EXTRACT(EPOCH FROM ({later} - {earlier})) / 86400.0)"
