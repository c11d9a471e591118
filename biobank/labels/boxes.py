"""Box labels, and the labels of the tubes a box holds (from the storage domain)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank.labels.service import aliquot_rows
from biobank.samples.models import Aliquot
from biobank.storage.models import Container, Position
from biobank.storage.service import lineages


def box_label(session: Session, box: Container) -> dict[str, str]:
    """What a box's label shows: barcode, name, box type, site, date."""
    lineage = lineages(session, [box.id]).get(box.id)
    return {
        "barcode": box.barcode,
        "name": box.name,
        "box_type": box.box_type.code if box.box_type else "",
        "site": lineage.site if lineage and lineage.site else "",
        "date": box.created_at.date().isoformat(),
    }


def contents_labels(session: Session, box: Container) -> list[tuple[int, dict[str, str]]]:
    """Label data of the tubes in a box (not those taken out), in position order."""
    places = {aliquot_id: (row or 0, col or 0, aliquot_id) for aliquot_id, row, col in
              session.execute(select(Position.aliquot_id, Position.row_no, Position.col_no)
                              .where(Position.box_id == box.id, Position.out_since.is_(None)))}
    if not places:
        return []
    rows = aliquot_rows(session, Aliquot.id.in_(list(places)))
    return sorted(rows, key=lambda row: places[row[0]])
