"""Storage: box types, the container tree (freezer → shelf/rack/drawer… → box), tube
positions, thaws, temperature excursions, condition notes and rack-scan previews.

A tube's place is one ``aliquot_position`` row pointing at its box; a box points at its
parent container. Moving a box or a rack updates one container row, never the tubes.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, UniqueConstraint
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import Base, Code, Str64, Str200, utcnow
from biobank.reference.models import Site
from biobank.storage.naming import SCHEMES

FREEZER_TYPES = {
    "mechanical-80": "−80 °C mechanical freezer",
    "mechanical-150": "−150 °C mechanical freezer",
    "mechanical-20": "−20 °C freezer",
    "ln2-vapour": "liquid nitrogen tank, vapour phase",
    "ln2-liquid": "liquid nitrogen tank, liquid phase",
    "refrigerator": "2–10 °C refrigerator",
    "room": "room temperature cabinet",
}
# MIABIS storage-temperature bands.
TEMPERATURE_BANDS = {
    "RT": "room temperature",
    "2to10": "2 °C to 10 °C",
    "-18to-35": "−18 °C to −35 °C",
    "-60to-85": "−60 °C to −85 °C",
    "below-135": "below −135 °C",
    "LN-vapour": "liquid nitrogen, vapour phase",
    "LN-liquid": "liquid nitrogen, liquid phase",
}
DEFAULT_BAND = {
    "mechanical-80": "-60to-85",
    "mechanical-150": "below-135",
    "mechanical-20": "-18to-35",
    "ln2-vapour": "LN-vapour",
    "ln2-liquid": "LN-liquid",
    "refrigerator": "2to10",
    "room": "RT",
}
# Containers that hold other containers; a "box" holds tubes (in a grid or loose).
HOLDER_KINDS = ("shelf", "rack", "drawer", "tower", "canister", "compartment")
KINDS = ("freezer", *HOLDER_KINDS, "box")


def _in(column: str, values: Any) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class BoxType(Base):
    """A kind of box: its grid and how its positions are named, or no grid (bags, bins)."""

    __tablename__ = "box_type"
    __table_args__ = (
        CheckConstraint(_in("scheme", SCHEMES), name="scheme"),
        CheckConstraint(
            "(scheme = 'none' AND rows IS NULL AND columns IS NULL) OR "
            "(scheme <> 'none' AND rows BETWEEN 1 AND 26 "
            "AND columns BETWEEN 1 AND 99)",
            name="grid",
        ),
        CheckConstraint("capacity IS NULL OR capacity > 0", name="capacity"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[Code] = mapped_column(unique=True)
    name: Mapped[Str200]
    rows: Mapped[int | None]
    columns: Mapped[int | None]
    scheme: Mapped[Code]
    # Grid-free boxes may state how many tubes they take; grids hold rows × columns.
    capacity: Mapped[int | None]

    @property
    def gridded(self) -> bool:
        """Whether tubes sit at named positions."""
        return self.scheme != "none"

    @property
    def size(self) -> int | None:
        """How many tubes the box takes, when known."""
        return self.rows * self.columns if self.gridded else self.capacity  # type: ignore[operator]


class Container(Base):
    """A freezer, a holder inside one (shelf, rack, drawer… at any depth) or a box."""

    __tablename__ = "storage_container"
    __table_args__ = (
        CheckConstraint(_in("kind", KINDS), name="kind"),
        CheckConstraint(
            "(kind = 'freezer' AND parent_id IS NULL AND site_id IS NOT NULL "
            "AND freezer_type IS NOT NULL AND temperature_band IS NOT NULL) OR "
            "(kind <> 'freezer' AND parent_id IS NOT NULL AND site_id IS NULL "
            "AND freezer_type IS NULL AND temperature_band IS NULL)",
            name="freezer_is_root",
        ),
        CheckConstraint("(kind = 'box') = (box_type_id IS NOT NULL)", name="box_has_type"),
        CheckConstraint(
            "freezer_type IS NULL OR " + _in("freezer_type", FREEZER_TYPES), name="freezer_type"
        ),
        CheckConstraint(
            "temperature_band IS NULL OR " + _in("temperature_band", TEMPERATURE_BANDS),
            name="temperature_band",
        ),
        CheckConstraint("parent_id <> id", name="not_own_parent"),
        # Readable paths need unambiguous names among siblings.
        UniqueConstraint("parent_id", "name"),
        UniqueConstraint("site_id", "name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    barcode: Mapped[Str64] = mapped_column(unique=True)
    # A rack's own code from its manufacturer (what the rack scanner reads), if any.
    external_barcode: Mapped[Str64 | None] = mapped_column(unique=True)
    kind: Mapped[Code]
    name: Mapped[Str64]
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("storage_container.id"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id"))
    freezer_type: Mapped[Code | None]
    temperature_band: Mapped[Code | None]
    room: Mapped[Str64 | None]
    box_type_id: Mapped[int | None] = mapped_column(ForeignKey("box_type.id"), index=True)
    # A box takes tubes of one type at one temperature unless a manager allows it to mix.
    mixing_allowed: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    box_type: Mapped[BoxType | None] = relationship(lazy="joined")
    site: Mapped[Site | None] = relationship(lazy="joined")


class Position(Base):
    """Where a tube is: its box and, in a grid, its row and column.

    Unique on the aliquot (one place per tube) and on (box, row, column) (one tube per
    place). A tube taken out keeps its row, marked ``out_since``, so it can be put back.
    """

    __tablename__ = "aliquot_position"
    __table_args__ = (
        UniqueConstraint("box_id", "row_no", "col_no"),
        CheckConstraint("(row_no IS NULL) = (col_no IS NULL)", name="row_and_col"),
        CheckConstraint("row_no IS NULL OR (row_no >= 1 AND col_no >= 1)", name="positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    aliquot_id: Mapped[int] = mapped_column(ForeignKey("aliquot.id"), unique=True)
    box_id: Mapped[int] = mapped_column(ForeignKey("storage_container.id"))
    row_no: Mapped[int | None]
    col_no: Mapped[int | None]
    placed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    out_since: Mapped[dt.datetime | None]


class Thaw(Base):
    """A tube that is thawed now; the row goes when it is refrozen."""

    __tablename__ = "aliquot_thaw"

    aliquot_id: Mapped[int] = mapped_column(ForeignKey("aliquot.id"), primary_key=True)
    thawed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    thawed_by: Mapped[Str64]


class Excursion(Base):
    """A freezer that was warmer than it should be, from when to when, and how warm."""

    __tablename__ = "temperature_excursion"
    __table_args__ = (
        CheckConstraint("ended_at > started_at", name="ends_after_start"),
        Index("ix_temperature_excursion_freezer", "freezer_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    freezer_id: Mapped[int] = mapped_column(ForeignKey("storage_container.id"))
    started_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime]
    peak_celsius: Mapped[Decimal] = mapped_column(Numeric(5, 1))
    note: Mapped[Str200 | None]
    recorded_by: Mapped[Str64]
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    freezer: Mapped[Container] = relationship(lazy="joined", innerjoin=True)


class Condition(Base):
    """A note on a tube's condition (an excursion it sat through), shown on every scan."""

    __tablename__ = "aliquot_condition"
    __table_args__ = (
        UniqueConstraint("aliquot_id", "excursion_id"),
        Index("ix_aliquot_condition_aliquot", "aliquot_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    aliquot_id: Mapped[int] = mapped_column(ForeignKey("aliquot.id"))
    excursion_id: Mapped[int | None] = mapped_column(ForeignKey("temperature_excursion.id"))
    note: Mapped[Str200]
    recorded_by: Mapped[Str64]
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RackScan(Base):
    """A rack-scanner upload held for confirmation: what it would change, and the box's
    state when it was previewed (confirming after the box changed is refused)."""

    __tablename__ = "rack_scan"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[Str64] = mapped_column(unique=True)
    box_id: Mapped[int] = mapped_column(ForeignKey("storage_container.id"), index=True)
    fingerprint: Mapped[Str64]
    plan: Mapped[dict[str, Any]]
    uploaded_by: Mapped[Str64]
    uploaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    confirmed_by: Mapped[Str64 | None]
    confirmed_at: Mapped[dt.datetime | None]
    # The findings (rack mismatch, unknown tubes, unreadable wells) the confirmer acknowledged.
    acknowledged: Mapped[list[str] | None]
