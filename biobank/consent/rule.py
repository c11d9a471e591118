"""The consent rule, written once: what is in force for a component on a day, and whether
that lets material be used — in Python, in SQL, and over the JSON log the scan reads.

A component's entry in force on a day is its latest entry dated on or before that day (ties:
the later recorded), ignoring entries replaced by a correction. A ``given`` entry allows use,
except that from the day the patient comes of age (the majority age of their site's country,
counted from the birth date that diagnosis date and age at diagnosis give) only consent
signed by the participant themself on or after that day counts: a parent's consent stands
as "re-consent needed" (``RECONSENT``).

Three forms, side by side, held to each other by tests (tests/test_consent_rule.py):

- Python, over consent entries or log lines: ``state_on`` and ``standing`` (the gate, the
  withdrawal impact, the consent officer's lists);
- SQL: ``consented_patients`` (availability and allocation count and pick tubes with it)
  and ``majority_day_of`` (the day a patient comes of age, computed in the database: every
  form reads it from there);
- the JSON log: ``log_column`` carries a patient's (or a box's patients') log inside one
  statement, ``read_log`` turns it back into lines for ``state_on`` (the scan card, the box
  map).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, NamedTuple, Protocol, TypeVar

from sqlalchemy import (
    ColumnElement,
    Date,
    ScalarSelect,
    Select,
    and_,
    exists,
    false,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import QueryableAttribute, aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from biobank.consent.models import ConsentEntry, Substudy
from biobank.db import json_rows
from biobank.patients.models import Patient
from biobank.reference.models import CountryMajority, Site

# A component's key in the log: ("storage", None), ("data", None) or ("substudy", id).
Key = tuple[str, int | None]
STORAGE: Key = ("storage", None)
PARTICIPANT = "participant"
# Only when the majority table has no DEFAULT row (before `flask reference load`).
FALLBACK_MAJORITY = 18
# What a component's entry in force means for use: its decision, "none" without one, or
# RECONSENT when it was given by a parent and the patient has come of age since.
RECONSENT = "reconsent_needed"
STANDINGS = ("given", "declined", "withdrawn", "none", RECONSENT)


class Line(Protocol):
    """What the rule reads of a consent entry (a ConsentEntry, or a line of the JSON log)."""

    @property
    def id(self) -> int: ...
    @property
    def component(self) -> str: ...
    @property
    def substudy_id(self) -> int | None: ...
    @property
    def decision(self) -> str: ...
    @property
    def effective_date(self) -> dt.date: ...
    @property
    def corrects_id(self) -> int | None: ...
    @property
    def signed_by(self) -> str: ...


L = TypeVar("L", bound=Line)


# --- the Python form ---------------------------------------------------------------------


def key_of(entry: Line) -> Key:
    """The component an entry is about."""
    return entry.component, entry.substudy_id


def in_force(entries: Iterable[L]) -> list[L]:
    """The entries not replaced by a correction."""
    entries = list(entries)
    replaced = {e.corrects_id for e in entries if e.corrects_id is not None}
    return [e for e in entries if e.id not in replaced]


def state_on(entries: Iterable[L], day: dt.date | None = None) -> dict[Key, L]:
    """Each component's entry in force on ``day`` (None: the latest there is)."""
    state: dict[Key, L] = {}
    for entry in sorted(in_force(entries), key=lambda e: (e.effective_date, e.id)):
        if day is None or entry.effective_date <= day:
            state[key_of(entry)] = entry
    return state


def renewed(entry: Line, of_age: dt.date | None) -> bool:
    """Whether an entry still counts once the patient is of age: signed by them, then."""
    return of_age is None or (entry.signed_by == PARTICIPANT and entry.effective_date >= of_age)


def standing(entry: Line | None, day: dt.date, of_age: dt.date | None) -> str:
    """What the entry in force on ``day`` means for use (one of STANDINGS)."""
    if entry is None:
        return "none"
    if entry.decision != "given":
        return entry.decision
    if of_age is not None and day >= of_age and not renewed(entry, of_age):
        return RECONSENT
    return "given"


# --- the SQL form ------------------------------------------------------------------------


class _majority_day(FunctionElement[dt.date]):
    """The day someone diagnosed on ``diagnosed`` at ``age_days`` days old turns ``years``.

    Born on 29 February: 1 March in a year without one (SQLite's date arithmetic; written
    out for PostgreSQL, whose interval arithmetic gives 28 February).
    """

    type = Date()
    inherit_cache = True
    name = "majority_day"


@compiles(_majority_day, "sqlite")
def _majority_day_sqlite(element: _majority_day, compiler: SQLCompiler, **kw: Any) -> str:
    diagnosed, age, years = (compiler.process(c, **kw) for c in element.clauses)
    return f"date({diagnosed}, '-' || ({age}) || ' days', '+' || ({years}) || ' years')"


@compiles(_majority_day, "postgresql")
def _majority_day_postgresql(element: _majority_day, compiler: SQLCompiler, **kw: Any) -> str:
    diagnosed, age, years = (compiler.process(c, **kw) for c in element.clauses)
    born = f"({diagnosed} - ({age}))"
    turned = f"({born} + make_interval(years => ({years})))"
    return (
        f"(CASE WHEN extract(day FROM {turned}) = extract(day FROM {born}) "
        f"THEN CAST({turned} AS date) ELSE CAST({turned} AS date) + 1 END)"
    )


def majority_years(site_id: ColumnElement[int] | QueryableAttribute[int]) -> ScalarSelect[int]:
    """The age of majority in the country of the site ``site_id`` (DEFAULT, else 18)."""
    site = aliased(Site)
    own, default = aliased(CountryMajority), aliased(CountryMajority)
    return (
        select(
            func.coalesce(
                select(own.age).where(own.code == site.country).scalar_subquery(),
                select(default.age).where(default.code == "DEFAULT").scalar_subquery(),
                literal(FALLBACK_MAJORITY),
            )
        )
        .where(site.id == site_id)
        .correlate_except(site)
        .scalar_subquery()
    )


def majority_day_of(patient: Any = Patient) -> ColumnElement[dt.date]:
    """The day the patient comes of age, as a column (``patient``: the table or an alias)."""
    return _majority_day(
        patient.diagnosis_date, patient.age_at_diagnosis_days, majority_years(patient.site_id)
    )


def usable_sql(
    decision: ColumnElement[str],
    signed_by: ColumnElement[str],
    effective_date: ColumnElement[dt.date],
    of_age: ColumnElement[dt.date],
    day: dt.date,
) -> ColumnElement[bool]:
    """``standing(...) == "given"`` as SQL, for the entry in force on ``day``."""
    return and_(
        decision == "given",
        or_(of_age > day, and_(signed_by == PARTICIPANT, effective_date >= of_age)),
    )


def consented_patients(substudy: Substudy, day: dt.date) -> Select[tuple[int]]:
    """The patients whose tubes the gate lets out for a sub-study on ``day``, as SQL.

    The same rule as ``standing``, tube status aside: the sub-study is open, and the
    storage consent and the sub-study's consent in force that day both stand "given".
    Patients are few and tubes many: use it as ``patient_id IN (...)`` in queries that
    count or pick tubes in the database.
    """
    replacing = aliased(ConsentEntry)
    rank = func.row_number().over(
        partition_by=(ConsentEntry.patient_id, ConsentEntry.component),
        order_by=(ConsentEntry.effective_date.desc(), ConsentEntry.id.desc()),
    )
    latest = (
        select(
            ConsentEntry.patient_id,
            ConsentEntry.decision,
            ConsentEntry.signed_by,
            ConsentEntry.effective_date,
            rank.label("rank"),
        )
        .where(
            or_(ConsentEntry.component == "storage", ConsentEntry.substudy_id == substudy.id),
            ConsentEntry.effective_date <= day,
            ~exists().where(replacing.corrects_id == ConsentEntry.id),
        )
        .subquery("latest_consent")
    )
    query = (
        select(latest.c.patient_id)
        .join(Patient, Patient.id == latest.c.patient_id)
        .where(
            latest.c.rank == 1,
            usable_sql(
                latest.c.decision,
                latest.c.signed_by,
                latest.c.effective_date,
                majority_day_of(Patient),
                day,
            ),
        )
        .group_by(latest.c.patient_id)
        .having(func.count() == 2)
    )
    return query if substudy.open else query.where(false())


def takes_anonymised(substudy: Substudy) -> bool:
    """Whether anonymised tubes (no patient, so no consent to ask) may go to a sub-study:
    it is open and accepts anonymised material. The gate and availability both ask this."""
    return bool(substudy.open and substudy.accepts_anonymised)


def anonymised_takers() -> ScalarSelect[Any]:
    """``takes_anonymised`` as SQL: the codes of the sub-studies that take anonymised tubes,
    as a JSON list of ``{"code": …}`` (None on PostgreSQL when there are none)."""
    return (
        select(json_rows(code=Substudy.code))
        .where(Substudy.open.is_(True), Substudy.accepts_anonymised.is_(True))
        .scalar_subquery()
    )


# --- the JSON-log form -------------------------------------------------------------------


class LogLine(NamedTuple):
    """A line of the JSON log (``state_on`` and ``standing`` take these as entries)."""

    patient_id: int
    id: int
    component: str
    substudy_id: int | None
    decision: str
    effective_date: dt.date
    corrects_id: int | None
    signed_by: str
    component_code: str
    of_age: dt.date | None  # with ``log_column(..., storage_only=True)``: when they come of age


def log_column(patients: ColumnElement[bool], storage_only: bool = False) -> ScalarSelect[Any]:
    """The consent log of the patients ``patients`` selects (a condition on
    ``ConsentEntry.patient_id``) as one JSON value of the enclosing statement; read back by
    ``read_log``. ``storage_only``: the storage entries alone, each with the day its
    patient comes of age (the box map: many patients, one or two entries each; the scan
    card reads that day once, as a column of its own)."""
    entry, substudy = ConsentEntry.__table__, Substudy.__table__
    patient = Patient.__table__
    values: dict[str, ColumnElement[Any]] = dict(
        patient_id=entry.c.patient_id,
        id=entry.c.id,
        component=entry.c.component,
        substudy_id=entry.c.substudy_id,
        decision=entry.c.decision,
        effective_date=entry.c.effective_date,
        corrects_id=entry.c.corrects_id,
        signed_by=entry.c.signed_by,
        component_code=func.coalesce(substudy.c.code, entry.c.component),
    )
    joined = entry.outerjoin(substudy, substudy.c.id == entry.c.substudy_id)
    if storage_only:
        values["of_age"] = majority_day_of(patient.c)
        joined = joined.join(patient, patient.c.id == entry.c.patient_id)
    query = select(json_rows(**values)).select_from(joined).where(patients)
    if storage_only:
        query = query.where(entry.c.component == "storage")
    return query.scalar_subquery()


def read_log(rows: Iterable[dict[str, Any]] | None) -> dict[int, list[LogLine]]:
    """The lines of ``log_column``'s JSON, by patient."""
    logs: dict[int, list[LogLine]] = {}
    for r in rows or ():
        logs.setdefault(r["patient_id"], []).append(
            LogLine(
                r["patient_id"],
                r["id"],
                r["component"],
                r["substudy_id"],
                r["decision"],
                dt.date.fromisoformat(r["effective_date"]),
                r["corrects_id"],
                r["signed_by"],
                r["component_code"],
                day_from_json(r.get("of_age")),
            )
        )
    return logs


def day_from_json(value: str | dt.date | None) -> dt.date | None:
    """A date read from SQL or from a JSON value (text there)."""
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value[:10])
