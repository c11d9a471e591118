"""Reference data: sites, the MRD timepoint schedule, materials and aliquot types."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from biobank.db import Base, Code, Str64, Str200


class Site(Base):
    """A participating hospital (or the central lab)."""

    __tablename__ = "site"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[Code] = mapped_column(unique=True)
    name: Mapped[Str200]
    country: Mapped[str] = mapped_column(
        String(2), CheckConstraint("length(country) = 2", name="iso_country")
    )


class Timepoint(Base):
    """An MRD timepoint of the schedule; which risk groups it applies to is data."""

    __tablename__ = "timepoint"
    __table_args__ = (
        CheckConstraint("window_before_days >= 0 AND window_after_days >= 0", name="window"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[Code] = mapped_column(unique=True)
    name: Mapped[Str200]
    phase: Mapped[Str200]
    # Days after diagnosis; None for event-driven timepoints (relapse).
    nominal_day: Mapped[int | None]
    window_before_days: Mapped[int] = mapped_column(default=0)
    window_after_days: Mapped[int] = mapped_column(default=0)
    risk_groups: Mapped[list[str]]
    expected_materials: Mapped[list[str]]
    sort_order: Mapped[int] = mapped_column(default=0)


class Material(Base):
    """A primary material: peripheral blood, bone marrow, CSF."""

    __tablename__ = "material"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[Code] = mapped_column(unique=True)
    name: Mapped[Str200]
    sprec_type: Mapped[Code]


class AliquotType(Base):
    """What an aliquot holds (viable MNC, plasma, DNA...), with its SPREC sample type."""

    __tablename__ = "aliquot_type"
    __table_args__ = (
        CheckConstraint("unit IN ('mL', 'cells')", name="unit"),
        CheckConstraint("spins BETWEEN 0 AND 2", name="spins"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[Code] = mapped_column(unique=True)
    name: Mapped[Str200]
    # None for complex derivatives (DNA, RNA), which have no fluid SPREC type: they carry
    # the code of the specimen they are extracted from (reference.sprec.source_code).
    sprec_type: Mapped[Code | None]
    # Times the material is centrifuged to make it: 0 (not: SPREC elements 4–6 are N),
    # 1 (single spun: the second centrifugation is N), 2 (double spun); None: as recorded.
    spins: Mapped[int | None]
    unit: Mapped[Code] = mapped_column(default="mL")
    # Which primary materials it can come from; empty means any.
    materials: Mapped[list[str]]


class SprecCode(Base):
    """One code of one element of the SPREC v3.0 fluid tables (reference.sprec has the file
    and its source; the migration that added this table loaded it)."""

    __tablename__ = "sprec_code"
    __table_args__ = (UniqueConstraint("element", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    element: Mapped[Code]
    code: Mapped[str] = mapped_column(String(3))
    name: Mapped[Str200]


class Trial(Base):
    """The trial this biobank serves: its registry number and the day it opened.

    Interfant-21 (NCT05327894) opened on 2022-12-15, the study start date of its registry
    record; no patient can have been diagnosed into it before that day.
    """

    __tablename__ = "trial"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[Code] = mapped_column(unique=True)
    name: Mapped[Str200]
    registry_id: Mapped[Str64]
    opened_on: Mapped[dt.date]


class CountryMajority(Base):
    """The age of majority in a country, when a participant must re-consent for themselves.

    ``code`` is an ISO 3166-1 alpha-2 country code, or ``DEFAULT`` for every country
    without a row of its own.
    """

    __tablename__ = "country_majority"
    __table_args__ = (CheckConstraint("age BETWEEN 12 AND 25", name="age"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[Code] = mapped_column(unique=True)
    age: Mapped[int]
    note: Mapped[Str200 | None]


class CountryAnonymisation(Base):
    """Whether a country's law lets the biobank anonymise, instead of destroy, the material of
    a patient who withdrew storage consent (Art. 17 GDPR leaves it to national law).

    ``code`` is an ISO 3166-1 alpha-2 country code, or ``DEFAULT`` for every country without
    a row of its own. No row at all means: not allowed (destroy).
    """

    __tablename__ = "country_anonymisation"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[Code] = mapped_column(unique=True)
    allowed: Mapped[bool]
    note: Mapped[Str200 | None]
