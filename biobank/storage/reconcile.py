"""Rack-scanner reconciliation: compare a scan with what the service expects in a box, and
apply it on confirmation.

The preview changes nothing but a held plan: it records the state of every tube involved
(a fingerprint), and confirming after any of them changed is a 409. Findings a person must
look at before anything moves — the file's rack code differs from the box's registered one
(or belongs to another box), tubes the biobank does not know, wells the camera could not
read — are listed as acknowledgements the confirm must carry (409 without them). A box with
no registered rack code is offered the file's code to record.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from biobank.custody.service import record_audit
from biobank.db import utcnow
from biobank.errors import Conflict, Invalid, NotFound
from biobank.samples import barcodes
from biobank.samples import service as samples
from biobank.samples.models import Aliquot
from biobank.samples.states import DEPARTED
from biobank.storage import naming, rackscan
from biobank.storage.models import Container, Position, RackScan
from biobank.storage.operations import Target, relocate, vacate
from biobank.storage.service import labellers, lineages


def _state(session: Session, box_id: int, codes: list[str]) -> list[Any]:
    """Every tube registered in the box or scanned in it, with its place and status."""
    return list(
        session.execute(
            select(
                Aliquot.id,
                Aliquot.barcode,
                Aliquot.status,
                Position.box_id,
                Position.row_no,
                Position.col_no,
                Position.out_since,
            )
            .outerjoin(Position, Position.aliquot_id == Aliquot.id)
            .where(or_(Position.box_id == box_id, Aliquot.barcode.in_(codes)))
            .order_by(Aliquot.id)
        ).all()
    )


def _fingerprint(state: list[Any]) -> str:
    text = "\n".join(
        f"{r.id}|{r.status}|{r.box_id}|{r.row_no}|{r.col_no}|{r.out_since is not None}"
        for r in state
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _places(box: Container, scan: rackscan.ScanFile) -> dict[tuple[int, int], rackscan.Entry]:
    box_type = box.box_type
    assert box_type is not None and box_type.rows and box_type.columns
    places: dict[tuple[int, int], rackscan.Entry] = {}
    for entry in scan.entries:
        try:
            place = naming.parse(entry.position, box_type.scheme, box_type.rows, box_type.columns)
        except naming.PositionError as exc:
            raise Invalid(f"line {entry.line}: {exc}", field="file", location="body") from exc
        if place in places:
            raise Invalid(
                f"line {entry.line}: position {entry.position} is listed twice (also "
                f"line {places[place].line})",
                field="file",
                location="body",
            )
        places[place] = entry
    return places


# What a confirm must acknowledge, by finding.
FINDINGS = ("rack_mismatch", "unknown_tubes", "unreadable_wells")


def _rack_check(session: Session, box: Container, rack: str | None) -> dict[str, Any]:
    """How the file's rack code relates to the box: match, mismatch, unregistered, or none."""
    registered = box.external_barcode
    answer: dict[str, Any] = {"scanned": rack, "registered": registered, "other_box": None}
    if rack is None:
        return {**answer, "status": "none", "message": "the file names no rack"}
    rack = barcodes.normalize(rack)
    answer["scanned"] = rack
    if rack in {box.barcode, registered}:
        return {**answer, "status": "match", "message": f"rack {rack} is this box"}
    owner = session.scalar(
        select(Container).where(
            or_(Container.external_barcode == rack, Container.barcode == rack),
            Container.id != box.id,
        )
    )
    if owner is not None:
        answer["other_box"] = owner.barcode
        return {
            **answer,
            "status": "mismatch",
            "message": f"the file is of rack {rack}, registered to {owner.barcode} "
            f"({owner.name}), not to box {box.barcode}",
        }
    if registered is not None:
        return {
            **answer,
            "status": "mismatch",
            "message": f"the file is of rack {rack}, but box {box.barcode} is registered "
            f"as rack {registered}",
        }
    if rack[:2] in naming.PREFIXES:
        return {
            **answer,
            "status": "mismatch",
            "message": f"the file names {rack}, a code of this service, not box {box.barcode}",
        }
    return {
        **answer,
        "status": "unregistered",
        "message": f"box {box.barcode} has no registered rack code: confirm with "
        f"record_rack to record {rack} as its rack code",
    }


def _acknowledgements(
    check: dict[str, Any], result: dict[str, list[dict[str, Any]]]
) -> list[dict[str, str]]:
    """The findings a person must acknowledge before the scan is applied."""
    needed = []
    if check["status"] == "mismatch":
        needed.append({"finding": "rack_mismatch", "message": check["message"]})
    if result["unknown"]:
        needed.append(
            {
                "finding": "unknown_tubes",
                "message": (
                    f"{len(result['unknown'])} tube(s) in the file are not registered in the "
                    "biobank and will not be placed: "
                    + ", ".join(f"{u['position']} {u['barcode']}" for u in result["unknown"][:10])
                    + (" …" if len(result["unknown"]) > 10 else "")
                ),
            }
        )
    if result["unreadable"]:
        needed.append(
            {
                "finding": "unreadable_wells",
                "message": (
                    f"{len(result['unreadable'])} well(s) could not be read by the scanner; "
                    "what is in them is unknown: "
                    + ", ".join(u["position"] for u in result["unreadable"])
                ),
            }
        )
    return needed


def preview(session: Session, actor: str, box: Container, text: str) -> dict[str, Any]:
    """Compare a rack scan with the box; hold the resulting plan under a new token."""
    box_type = box.box_type
    assert box_type is not None
    if not box_type.gridded:
        raise Invalid(f"{box.barcode} has no grid: a rack scan needs one", field="barcode")
    try:
        scan = rackscan.parse(text)
    except rackscan.ScanFileError as exc:
        raise Invalid(str(exc), field="file", location="body") from exc
    check = _rack_check(session, box, scan.rack)
    places = _places(box, scan)
    codes = [e.tube for e in places.values() if e.tube]
    state = _state(session, box.id, codes)
    by_code = {r.barcode: r for r in state}
    elsewhere = {r.box_id for r in state if r.box_id is not None}
    paths = lineages(session, elsewhere)
    labels = labellers(session, elsewhere)
    label = (
        labels[box.id]
        if box.id in labels
        else (lambda r, c: naming.label(box_type.scheme, box_type.columns, r, c))  # type: ignore[arg-type]
    )

    result: dict[str, list[dict[str, Any]]] = {
        k: []
        for k in (
            "matches",
            "missing",
            "moved",
            "unknown",
            "unreadable",
            "refused",
            "taken_out",
            "displaced",
        )
    }
    plan: dict[str, Any] = {"codes": codes, "moves": [], "found": [], "displace": []}
    scanned_ids = set()
    for (row, col), entry in sorted(places.items()):
        here = label(row, col)
        if entry.tube is None:
            continue
        tube = by_code.get(entry.tube)
        if tube is None:
            result["unknown"].append({"position": here, "barcode": entry.tube})
            continue
        scanned_ids.add(tube.id)
        if tube.status in DEPARTED:
            result["refused"].append(
                {"position": here, "barcode": tube.barcode, "reason": f"recorded as {tube.status}"}
            )
            continue
        if tube.status == "missing":
            plan["found"].append(tube.id)
        same = (tube.box_id, tube.row_no, tube.col_no) == (box.id, row, col)
        if same and tube.out_since is None:
            result["matches"].append(
                {"position": here, "barcode": tube.barcode, "found": tube.status == "missing"}
            )
            continue
        origin = None
        if tube.box_id is not None:
            origin = {
                "box": paths[tube.box_id].barcodes[-1],
                "position": labels[tube.box_id](tube.row_no, tube.col_no),
                "path": paths[tube.box_id].path,
                "taken_out": tube.out_since is not None,
            }
        result["moved"].append(
            {
                "barcode": tube.barcode,
                "position": here,
                "from": origin,
                "found": tube.status == "missing",
            }
        )
        plan["moves"].append({"aliquot_id": tube.id, "row": row, "col": col})
    targets = {(m["row"], m["col"]) for m in plan["moves"]}
    for tube in state:
        if tube.box_id != box.id or tube.id in scanned_ids:
            continue
        here = label(tube.row_no, tube.col_no)
        entry = places.get((tube.row_no, tube.col_no))
        if (tube.row_no, tube.col_no) in targets:
            result["displaced"].append({"position": here, "barcode": tube.barcode})
            plan["displace"].append(tube.id)
        if tube.status in DEPARTED:
            continue
        if entry is not None and entry.tube is None:
            result["unreadable"].append({"position": here, "expected": tube.barcode})
        elif tube.out_since is not None:
            result["taken_out"].append({"position": here, "barcode": tube.barcode})
        else:
            result["missing"].append({"position": here, "barcode": tube.barcode})
    expected_places = {(t.row_no, t.col_no) for t in state if t.box_id == box.id}
    for place, entry in sorted(places.items()):
        if entry.tube is None and place not in expected_places:
            result["unreadable"].append({"position": label(*place), "expected": None})
    needed = _acknowledgements(check, result)
    plan["acknowledge"] = [n["finding"] for n in needed]
    plan["rack"] = check["scanned"] if check["status"] == "unregistered" else None
    token = secrets.token_urlsafe(24)
    session.add(
        RackScan(
            token=token,
            box_id=box.id,
            fingerprint=_fingerprint(state),
            plan=plan,
            uploaded_by=actor,
            uploaded_at=utcnow(),
        )
    )
    session.flush()
    return {
        "token": token,
        "box": box.barcode,
        "rack": check["scanned"],
        "layout": scan.layout,
        "scanned": len(places),
        "rack_check": check,
        "acknowledge": needed,
        "can_record_rack": plan["rack"] is not None,
        **result,
    }


def _record_rack(session: Session, actor: str, box: Container, rack: str) -> None:
    """Register the scanned rack code as the box's own (offered for boxes without one)."""
    if box.external_barcode is not None:
        raise Conflict(
            f"box {box.barcode} has been given rack code {box.external_barcode} "
            "meanwhile: upload the scan again",
            field="record_rack",
        )
    taken = session.scalar(
        select(Container.barcode).where(
            or_(Container.external_barcode == rack, Container.barcode == rack)
        )
    )
    if taken is not None:
        raise Conflict(f"rack code {rack} belongs to {taken} now", field="record_rack")
    box.external_barcode = rack
    session.flush()
    record_audit(
        session,
        actor,
        "container",
        box.barcode,
        "rack_code_recorded",
        reason="from its rack scan",
        old_values={"external_barcode": None},
        new_values={"external_barcode": rack},
    )


def confirm(
    session: Session,
    actor: str,
    box: Container,
    token: str,
    acknowledge: list[str] | None = None,
    record_rack: bool = False,
) -> dict[str, Any]:
    """Apply a previewed scan: every move at once, with events; 409 if the box changed or a
    finding of the preview is not acknowledged."""
    held = session.scalar(
        select(RackScan).where(RackScan.token == token, RackScan.box_id == box.id)
    )
    if held is None:
        raise NotFound(f"no scan upload {token} for box {box.barcode}")
    if held.confirmed_at is not None:
        raise Conflict(f"this scan was confirmed already, by {held.confirmed_by}", field="token")
    plan = held.plan
    missing = [f for f in plan.get("acknowledge", []) if f not in set(acknowledge or [])]
    if missing:
        raise Conflict(
            "acknowledge the scan's findings before confirming: "
            + ", ".join(f.replace("_", " ") for f in missing)
            + f" (send acknowledge: {missing})",
            field="acknowledge",
        )
    if record_rack and plan.get("rack") is None:
        raise Invalid(
            "there is no rack code to record: the file names none, or the box has one",
            field="record_rack",
        )
    claimed = session.execute(
        update(RackScan)
        .where(RackScan.id == held.id, RackScan.confirmed_at.is_(None))
        .values(confirmed_at=utcnow(), confirmed_by=actor)
    ).rowcount
    if claimed != 1:
        raise Conflict("this scan was confirmed meanwhile by someone else", field="token")
    held.acknowledged = sorted(set(acknowledge or []) & set(plan.get("acknowledge", [])))
    if _fingerprint(_state(session, box.id, plan["codes"])) != held.fingerprint:
        raise Conflict(
            f"box {box.barcode} changed since the scan was uploaded: upload the scan again",
            field="token",
        )
    reason = f"rack scan of {box.barcode}"
    if plan["displace"]:
        vacate(
            session,
            actor,
            plan["displace"],
            f"not seen by the {reason}; another tube is in its place",
        )
    ids = {m["aliquot_id"] for m in plan["moves"]} | set(plan["found"])
    tubes = {a.id: a for a in session.scalars(select(Aliquot).where(Aliquot.id.in_(ids)))}
    for aliquot_id in plan["found"]:
        samples.change_status(
            session, actor, tubes[aliquot_id], "available", f"found by the {reason}"
        )
    relocate(
        session,
        actor,
        [Target(tubes[m["aliquot_id"]], box, m["row"], m["col"]) for m in plan["moves"]],
        reason,
        field="token",
    )
    if record_rack:
        _record_rack(session, actor, box, plan["rack"])
    return {
        "token": token,
        "box": box.barcode,
        "moved": len(plan["moves"]),
        "found": len(plan["found"]),
        "displaced": len(plan["displace"]),
        "acknowledged": held.acknowledged,
        "rack_recorded": plan["rack"] if record_rack else None,
    }
