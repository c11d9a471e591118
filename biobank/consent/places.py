"""Where a withdrawn patient's tubes are: the places that destruction, anonymisation and
recall lists show beside each tube."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank.storage import service as storage
from biobank.storage.models import Position


def locations(session: Session, aliquot_ids: list[int]) -> dict[int, Any]:
    """Each tube's storage location (path, box, position, out of its place since).

    Looked up when a task is read, so a tube moved after the withdrawal shows where it is now.
    """
    if not aliquot_ids:
        return {}
    places = session.execute(
        select(
            Position.aliquot_id,
            Position.box_id,
            Position.row_no,
            Position.col_no,
            Position.out_since,
        ).where(Position.aliquot_id.in_(aliquot_ids))
    ).all()
    boxes = {p.box_id for p in places}
    paths, labels = storage.lineages(session, boxes), storage.labellers(session, boxes)
    return {
        p.aliquot_id: {
            "path": paths[p.box_id].path,
            "box": paths[p.box_id].barcodes[-1],
            "position": labels[p.box_id](p.row_no, p.col_no) if p.box_id in labels else None,
            "taken_out_since": p.out_since.isoformat() if p.out_since else None,
        }
        for p in places
    }
