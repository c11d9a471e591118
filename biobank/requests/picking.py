"""Picking: the pick list in freezer order, scanning tubes out, dropping a tube with a reason."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from biobank.auth.service import Asker
from biobank.custody.service import record_event
from biobank.db import utcnow
from biobank.errors import Conflict, NotFound
from biobank.requests import lifecycle, readmodels
from biobank.requests.models import HELD, RequestAliquot, SampleRequest
from biobank.samples.models import Aliquot
from biobank.storage import operations
from biobank.storage.models import Position
from biobank.storage.service import labellers, lineages

PICKABLE = ("allocated", "picking")


def _natural(text: str) -> list[Any]:
    """ "Rack P10" after "Rack P9": numbers inside names compare as numbers."""
    return [
        int(part) if part.isascii() and part.isdigit() else part.lower()
        for part in re.split(r"(\d+)", text, flags=re.ASCII)
    ]


def locate(session: Session, aliquot_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Where each tube is: freezer, path, box, position (a fixed number of queries); with the
    path's parts (``site``, ``names``: its containers' names, freezer first) to sort by."""
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
    paths, labels = lineages(session, boxes), labellers(session, boxes)
    return {
        p.aliquot_id: {
            "freezer": paths[p.box_id].freezer,
            "path": paths[p.box_id].path,
            "site": paths[p.box_id].site,
            "names": paths[p.box_id].names,
            "box": paths[p.box_id].barcodes[-1],
            "position": labels[p.box_id](p.row_no, p.col_no) if p.box_id in labels else None,
            "row": p.row_no,
            "col": p.col_no,
            "taken_out_since": p.out_since,
        }
        for p in places
    }


def _order(tube: readmodels.Tube) -> tuple[Any, ...]:
    where = tube.location
    if where is None:  # tubes without a recorded place come last, by barcode
        return (1, [], 0, 0, tube.barcode)
    return (
        0,
        # The path's parts as the lineage holds them: a name with " / " in it stays one name.
        [_natural(part) for part in (where["site"] or "", *where["names"])],
        where["row"] or 0,
        where["col"] or 0,
        tube.barcode,
    )


def pick_list(
    session: Session, asker: Asker, number: str
) -> tuple[SampleRequest, list[readmodels.Tube]]:
    """The request's held tubes sorted by freezer, container, box and position, with paths."""
    request = lifecycle.get_request(session, asker, number)
    found = readmodels.tubes(session, request, HELD)
    where = locate(session, [t.aliquot_id for t in found])
    for tube in found:
        tube.location = where.get(tube.aliquot_id)
    return request, sorted(found, key=_order)


def _held(session: Session, request: SampleRequest, code: str) -> tuple[Aliquot, RequestAliquot]:
    """The tube with this code and its row in the request; a tube not in it is a 409."""
    aliquot = session.scalar(select(Aliquot).where(Aliquot.barcode == code))
    if aliquot is None:
        raise NotFound(f"no aliquot {code}")
    row = session.scalar(
        select(RequestAliquot).where(
            RequestAliquot.request_id == request.id, RequestAliquot.aliquot_id == aliquot.id
        )
    )
    if row is None:
        elsewhere = session.scalar(
            select(SampleRequest.number)
            .join(RequestAliquot, RequestAliquot.request_id == SampleRequest.id)
            .where(RequestAliquot.aliquot_id == aliquot.id, RequestAliquot.state.in_(HELD))
        )
        whose = (
            f"it is held for request {elsewhere}"
            if elsewhere
            else f"it is {aliquot.status} and held for no request"
        )
        raise Conflict(
            f"{code} is not in request {request.number}: {whose}; put it back", field="barcode"
        )
    return aliquot, row


@dataclass
class Picked:
    """A scan's answer: the tube, and how many are left to pick."""

    request: SampleRequest
    tube: readmodels.Tube
    remaining: int


def pick(session: Session, asker: Asker, number: str, code: str) -> Picked:
    """Scan a tube out for the request: it is taken out of its box and marked picked."""
    request = lifecycle.get_request(session, asker, number, act="pick")
    if request.state not in PICKABLE:
        lifecycle.move(session, asker.username, request, "picking")  # refuses, in words
    aliquot, row = _held(session, request, code)
    if row.state == "picked":
        raise Conflict(
            f"{code} was picked already ({row.picked_at:%Y-%m-%d %H:%M} UTC, by {row.picked_by})",
            field="barcode",
        )
    if row.state != "allocated":
        raise Conflict(
            f"{code} was {row.state} from request {number}"
            + (f": {row.reason}" if row.reason else ""),
            field="barcode",
        )
    if request.state == "allocated":
        lifecycle.move(session, asker.username, request, "picking")
    where = operations.position_of(session, aliquot)
    if where is not None and where.out_since is None:
        operations.take_out(session, asker.username, aliquot, f"picked for request {number}")
    row.state, row.picked_at, row.picked_by = "picked", utcnow(), asker.username
    row.updated_at = row.picked_at
    session.flush()
    record_event(
        session,
        asker.username,
        "picked",
        aliquot_id=aliquot.id,
        reason=f"picked for request {number}",
        new_values={"request": number},
    )
    [tube] = [
        t for t in readmodels.tubes(session, request, ("picked",)) if t.aliquot_id == aliquot.id
    ]
    tube.location = locate(session, [aliquot.id]).get(aliquot.id)
    remaining = session.scalar(
        select(func.count())
        .select_from(RequestAliquot)
        .where(RequestAliquot.request_id == request.id, RequestAliquot.state == "allocated")
    )
    return Picked(request, tube, remaining or 0)


def drop(
    session: Session, asker: Asker, number: str, code: str, reason: str
) -> lifecycle.Cancelled:
    """Take one tube out of the request before shipping (damaged, empty, not found)."""
    request = lifecycle.get_request(session, asker, number, act="drop")
    if request.state not in PICKABLE:
        raise Conflict(
            f"request {number} is {request.state}: tubes are dropped only while "
            "it is allocated or being picked",
            field="state",
        )
    aliquot, row = _held(session, request, code)
    if row.state not in HELD:
        raise Conflict(f"{code} was {row.state} from request {number} already", field="barcode")
    released, put_back = lifecycle.release_held(
        session, asker.username, request, f"dropped from request {number}: {reason}", [aliquot.id]
    )
    return lifecycle.Cancelled(request, released, put_back)
