"""What a sub-study may receive: available tubes that pass the consent gate, counted in SQL.

The gate (``biobank.consent.gate``) decides tube by tube in Python; that is right for the
tens of tubes of a shipment and far too slow for counting a whole biobank. Here the same
rule runs in the database: the patients whose consent lets tubes out for the sub-study today
(``rule.consented_patients``, the SQL form of the consent rule: a few hundred rows) filter
the available tubes, counted by timepoint, material and aliquot type in one aggregate query —
read from the availability tally (``biobank.requests.tally``: counts per patient, kept by
triggers) unless the criteria look at the tubes themselves (volume, freeze–thaw cycles),
then from the tubes. A site-scoped asker counts only the tubes at their sites
(``biobank.auth.scope``): the tally knows no site (a tube's site is where it is stored,
which a tally kept per patient cannot follow), so their count is read from the tubes too.
Allocation (``biobank.requests.allocation``) picks its candidates with the same conditions,
the scope's included: a site-scoped manager reserves only the tubes they were shown.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Integer,
    Subquery,
    and_,
    case,
    cast,
    distinct,
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from biobank import clock
from biobank.auth import scope
from biobank.consent import rule
from biobank.consent.models import Substudy
from biobank.errors import Invalid
from biobank.patients.models import MrdResult, Patient
from biobank.reference.models import AliquotType, Material, Timepoint
from biobank.requests.models import AvailabilityTally
from biobank.samples.models import Aliquot, Sample

# MRD negative means below 0.01 % (10⁻⁴).
MRD_POSITIVE_PERCENT = Decimal("0.01")
MRD_STATUSES = ("positive", "negative", "unknown")
# Criteria keys that name reference data, with the table each one names.
_CODES = {"materials": Material, "aliquot_types": AliquotType, "timepoints": Timepoint}


@dataclass
class Filters:
    """Criteria with reference codes resolved to ids (None: no restriction)."""

    materials: list[int] | None = None
    aliquot_types: list[int] | None = None
    timepoints: list[int] | None = None
    risk_groups: list[str] | None = None
    diagnoses: list[str] | None = None
    mrd_status: str | None = None
    mrd_timepoint: int | None = None
    min_volume_ml: Decimal | None = None
    max_freeze_thaw: int | None = None


def _ids(
    session: Session, model: Any, codes: list[str], field_name: str, indexed: bool = True
) -> list[int]:
    found = dict(session.execute(select(model.code, model.id).where(model.code.in_(codes))).all())
    for index, code in enumerate(codes):
        if code not in found:
            raise Invalid(
                f"unknown {model.__tablename__.replace('_', ' ')} {code!r}",
                field=f"{field_name}.{index}" if indexed else field_name,
            )
    return [found[code] for code in codes]


def resolve(session: Session, criteria: dict[str, Any], prefix: str = "") -> Filters:
    """Criteria (codes) → Filters (ids); an unknown code is a 422 naming its field."""
    ids: dict[str, list[int] | None] = {}
    for key, model in _CODES.items():
        codes = list(dict.fromkeys(criteria.get(key) or []))
        ids[key] = _ids(session, model, codes, prefix + key) if codes else None
    mrd_timepoint = None
    if criteria.get("mrd_timepoint"):
        if not criteria.get("mrd_status"):
            raise Invalid(
                "mrd_timepoint says where to read the MRD status: give mrd_status",
                field=f"{prefix}mrd_timepoint",
            )
        [mrd_timepoint] = _ids(
            session, Timepoint, [criteria["mrd_timepoint"]], f"{prefix}mrd_timepoint", indexed=False
        )
    return Filters(
        materials=ids["materials"],
        aliquot_types=ids["aliquot_types"],
        timepoints=ids["timepoints"],
        risk_groups=list(criteria["risk_groups"]) if criteria.get("risk_groups") else None,
        diagnoses=list(criteria["diagnoses"]) if criteria.get("diagnoses") else None,
        mrd_status=criteria.get("mrd_status"),
        mrd_timepoint=mrd_timepoint,
        min_volume_ml=(
            None
            if criteria.get("min_volume_ml") is None
            else Decimal(str(criteria["min_volume_ml"]))
        ),
        max_freeze_thaw=criteria.get("max_freeze_thaw"),
    )


def today() -> dt.date:
    """The day the gate judges by: the biobank's day (``biobank.clock``)."""
    return clock.today()


# --- the conditions, shared by counting and by allocation -------------------------------


def tube_conditions(filters: Filters, aliquot: Any = Aliquot) -> list[ColumnElement[bool]]:
    """Conditions on the aliquot row itself (``aliquot``: the table or a subquery of it)."""
    found: list[ColumnElement[bool]] = []
    if filters.aliquot_types:
        found.append(aliquot.aliquot_type_id.in_(filters.aliquot_types))
    if filters.min_volume_ml is not None:
        # Cell-count-only tubes have no volume: a minimum volume leaves them out.
        found.append(aliquot.volume_remaining_ml >= filters.min_volume_ml)
    if filters.max_freeze_thaw is not None:
        found.append(aliquot.freeze_thaw_count <= filters.max_freeze_thaw)
    return found


def has_tube_conditions(filters: Filters) -> bool:
    """Whether the criteria look at the tubes themselves, not only at their groups."""
    return filters.min_volume_ml is not None or filters.max_freeze_thaw is not None


class _SampleSide(NamedTuple):
    """Where the sample's patient, timepoint and material are read (the sample table, or the
    tally, whose timepoint 0 matches no timepoint as NULL does not)."""

    patient_id: Any
    timepoint_id: Any
    material_id: Any
    no_patient: Any  # an anonymised tube's sample (NULL there, 0 in the tally's key)


class _unindexed(FunctionElement[int]):
    """A column that SQLite must not look rows up by: ``+column`` there, the column
    elsewhere. The tally has an index on patient for PostgreSQL, which looks up the
    consented patients' rows one by one; SQLite does better reading the whole tally in key
    order, already grouped, than going patient by patient and sorting."""

    type = Integer()
    inherit_cache = True
    name = "unindexed"


@compiles(_unindexed, "sqlite")
def _unindexed_sqlite(element: _unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return f"+{compiler.process(element.clauses, **kw)}"


@compiles(_unindexed)
def _unindexed_default(element: _unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


_SAMPLE = _SampleSide(
    Sample.patient_id, Sample.timepoint_id, Sample.material_id, Sample.patient_id.is_(None)
)
_TALLY = _SampleSide(
    _unindexed(AvailabilityTally.patient_id),
    AvailabilityTally.timepoint_key,
    AvailabilityTally.material_id,
    AvailabilityTally.patient_id == 0,
)


def sample_conditions(
    filters: Filters, substudy: Substudy, day: dt.date, side: _SampleSide = _SAMPLE
) -> list[ColumnElement[bool]]:
    """Conditions on the tube's sample and patient, the consent rule first (anonymised tubes
    too, for a sub-study that takes them: ``rule.takes_anonymised``)."""
    consented = side.patient_id.in_(rule.consented_patients(substudy, day))
    found: list[ColumnElement[bool]] = [
        or_(consented, side.no_patient) if rule.takes_anonymised(substudy) else consented
    ]
    if filters.materials:
        found.append(side.material_id.in_(filters.materials))
    if filters.timepoints:
        found.append(side.timepoint_id.in_(filters.timepoints))
    patient_filters = []
    if filters.risk_groups:
        patient_filters.append(Patient.risk_group.in_(filters.risk_groups))
    if filters.diagnoses:
        patient_filters.append(Patient.diagnosis.in_(filters.diagnoses))
    if patient_filters:
        found.append(side.patient_id.in_(select(Patient.id).where(*patient_filters)))
    if filters.mrd_status:
        found.append(_mrd_condition(filters.mrd_status, filters.mrd_timepoint, side))
    return found


def _mrd_condition(status: str, timepoint_id: int | None, side: _SampleSide) -> ColumnElement[bool]:
    """MRD status at the sample's own timepoint (or at ``timepoint_id``, e.g. EOI)."""
    at = MrdResult.timepoint_id == (timepoint_id if timepoint_id is not None else side.timepoint_id)
    measured = exists().where(MrdResult.patient_id == side.patient_id, at)
    positive = exists().where(
        MrdResult.patient_id == side.patient_id, at, MrdResult.value_percent >= MRD_POSITIVE_PERCENT
    )
    if status == "positive":
        return positive
    if status == "negative":
        return and_(measured, ~positive)
    return ~measured


# --- counting ---------------------------------------------------------------------------


@dataclass
class Group:
    """Available tubes of one timepoint, material and aliquot type."""

    timepoint: str | None
    material: str
    aliquot_type: str
    aliquots: int
    patients: int


@dataclass
class Availability:
    """What a sub-study may receive today, counted."""

    substudy: str
    as_of: dt.date
    groups: list[Group] = field(default_factory=list)

    @property
    def aliquots(self) -> int:
        """Tubes in all groups."""
        return sum(g.aliquots for g in self.groups)


def count(
    session: Session, substudy: Substudy, filters: Filters, day: dt.date | None = None
) -> Availability:
    """Available, consented tubes by timepoint × material × aliquot type, in one query (a
    site-scoped asker's: at their sites only)."""
    day = day or today()
    within = scope.of(session)
    groups = (
        counted_from_tubes(filters, substudy, day, within)
        if has_tube_conditions(filters) or not within.everywhere
        else counted_from_tally(filters, substudy, day)
    )
    return named(session, substudy, day, groups)


def named(session: Session, substudy: Substudy, day: dt.date, groups: Subquery) -> Availability:
    """The groups of either count, with their codes, in timepoint order (the one query)."""
    rows = session.execute(
        select(Timepoint.code, Material.code, AliquotType.code, groups.c.tubes, groups.c.patients)
        .select_from(groups)
        .outerjoin(Timepoint, Timepoint.id == groups.c.timepoint_id)
        .join(Material, Material.id == groups.c.material_id)
        .join(AliquotType, AliquotType.id == groups.c.aliquot_type_id)
        .order_by(func.coalesce(Timepoint.sort_order, 10_000), Material.code, AliquotType.code)
    ).all()
    return Availability(
        substudy.code,
        day,
        [
            Group(tp, material, kind, int(tubes), patients)
            for tp, material, kind, tubes, patients in rows
        ],
    )


def counted_from_tally(filters: Filters, substudy: Substudy, day: dt.date) -> Subquery:
    """The groups (timepoint_id, material_id, aliquot_type_id, tubes, patients) from the
    tally, read in its key order: one row per patient and group, so patients are rows.
    Criteria on the tubes themselves cannot be answered here (``has_tube_conditions``)."""
    tally = AvailabilityTally
    conditions = [tally.tubes > 0, *sample_conditions(filters, substudy, day, _TALLY)]
    if filters.aliquot_types:
        conditions.append(tally.aliquot_type_id.in_(filters.aliquot_types))
    return (
        select(
            tally.timepoint_key.label("timepoint_id"),
            tally.material_id,
            tally.aliquot_type_id,
            func.sum(tally.tubes).label("tubes"),
            # Each anonymised tube stands for a donor of its own (unknown).
            func.sum(case((tally.patient_id == 0, tally.tubes), else_=1)).label("patients"),
        )
        .where(*conditions)
        .group_by(tally.timepoint_key, tally.material_id, tally.aliquot_type_id)
        .subquery("groups")
    )


def counted_from_tubes(
    filters: Filters, substudy: Substudy, day: dt.date, within: scope.Scope = scope.EVERYWHERE
) -> Subquery:
    """The same groups counted from the tubes: each sample's available tubes per aliquot type
    straight from an index on (status, sample, type, …), then those rows with samples,
    patients and consent; only the tubes at the sites of ``within``."""
    per_sample = (
        select(Aliquot.sample_id, Aliquot.aliquot_type_id, func.count().label("tubes"))
        .where(Aliquot.status == "available", *tube_conditions(filters), *at_sites(within))
        .group_by(Aliquot.sample_id, Aliquot.aliquot_type_id)
        .subquery("per_sample")
    )
    return (
        select(
            Sample.timepoint_id,
            Sample.material_id,
            per_sample.c.aliquot_type_id,
            func.sum(per_sample.c.tubes).label("tubes"),
            (func.count(distinct(Sample.patient_id)) + _anonymous(per_sample.c.tubes)).label(
                "patients"
            ),
        )
        .join(Sample, Sample.id == per_sample.c.sample_id)
        .where(*sample_conditions(filters, substudy, day))
        .group_by(Sample.timepoint_id, Sample.material_id, per_sample.c.aliquot_type_id)
        .subquery("groups")
    )


def at_sites(within: scope.Scope) -> list[ColumnElement[bool]]:
    """The scope's tube rule, or no condition at all for an unscoped asker (their
    statement stays as it was): what a site-scoped asker counts, and allocates."""
    return [] if within.everywhere else [scope.aliquot_filter(within, Aliquot.id)]


def _anonymous(tubes: Any) -> ColumnElement[int]:
    """Anonymised tubes among the rows, each a donor of its own (their donor is unknown)."""
    # Cast: PostgreSQL sums bigints (the per-sample counts) as numeric.
    return cast(
        func.coalesce(func.sum(case((Sample.patient_id.is_(None), tubes), else_=0)), 0), Integer
    )


def matching(
    session: Session, substudy: Substudy, filters: Filters, day: dt.date | None = None
) -> dict[str, int]:
    """How many tubes and patients match now (one query): the manager's view of a request
    (a site-scoped asker's: the tubes at their sites)."""
    day = day or today()
    tubes, patients = session.execute(
        select(func.count(), func.count(distinct(Sample.patient_id)) + _anonymous(1))
        .select_from(Aliquot)
        .join(Sample, Sample.id == Aliquot.sample_id)
        .where(
            Aliquot.status == "available",
            *tube_conditions(filters),
            *sample_conditions(filters, substudy, day),
            *at_sites(scope.of(session)),
        )
    ).one()
    return {"aliquots": tubes, "patients": patients}
