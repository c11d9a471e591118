"""The inventory tallies (derived data kept by triggers: ``biobank.reports.tally``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Index, String, event
from sqlalchemy.orm import Mapped, mapped_column

from biobank.db import Base
from biobank.reports import tally
from biobank.samples.models import Sample


class InventoryTally(Base):
    """Tubes per UTC month, site, material, aliquot type and flow (``tally.KINDS``); derived
    data: no foreign keys, rows are never deleted."""

    __tablename__ = tally.FLOWS
    # Derived: a downgrade that drops it loses nothing the tubes and the log do not hold.
    __table_args__ = ({"sqlite_with_rowid": False, "info": {"derived": True}},)

    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    site_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    material_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    aliquot_type_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    tubes: Mapped[int]


class ThawTally(Base):
    """Tubes held in the biobank per site, material, aliquot type and freeze–thaw cycles."""

    __tablename__ = tally.THAWS
    __table_args__ = ({"sqlite_with_rowid": False, "info": {"derived": True}},)

    site_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    material_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    aliquot_type_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    freeze_thaw_count: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    tubes: Mapped[int]


class FillTally(Base):
    """Change in positions used per UTC month and freezer (``tally.fill_statements``); the
    positions used at a month's end are the sum up to it. Derived: no foreign keys."""

    __tablename__ = tally.FILL
    __table_args__ = ({"sqlite_with_rowid": False, "info": {"derived": True}},)

    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    freezer_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    tubes: Mapped[int]


class TallyPause(Base):
    """A transaction holding the aliquot insert trigger back (``tally.held_back``): inserted
    and deleted in that transaction, never committed, so always empty to everyone else."""

    __tablename__ = tally.PAUSE
    __table_args__ = ({"info": {"derived": True}},)

    holder: Mapped[str] = mapped_column(String(32), primary_key=True)


# Completeness counts each timepoint's and material's patients from this index alone (no
# visit to a sample's row): ~0.1 s of CPU instead of ~0.17 s at a million tubes.
Index("ix_sample_completeness", Sample.timepoint_id, Sample.material_id, Sample.patient_id)


@event.listens_for(Base.metadata, "after_create")
def _create_tally_triggers(
    _metadata: Any, connection: Connection, tables: Any = (), **_kw: Any
) -> None:
    """create_all (scratch databases) makes the triggers too; the migrations make their own."""
    if InventoryTally.__table__ in tables:
        for statement in tally.create_statements(connection.dialect.name):
            connection.exec_driver_sql(statement)
    if FillTally.__table__ in tables:
        for statement in tally.fill_statements(connection.dialect.name):
            connection.exec_driver_sql(statement)
