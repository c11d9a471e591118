"""Samples and aliquots: registration, splitting, status changes, lookups."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, insert, select, update
from sqlalchemy.orm import Session

from biobank import clock
from biobank.auth import scope
from biobank.custody.service import record_event, record_events
from biobank.db import utcnow
from biobank.errors import Conflict, Invalid, NotFound
from biobank.locking import lock_tubes
from biobank.patients.models import Patient
from biobank.reference import sprec
from biobank.reference.models import AliquotType, Material, Timepoint
from biobank.reference.service import by_code
from biobank.samples import barcodes, states
from biobank.samples.models import Aliquot, Sample
from biobank.samples.numbering import Numbering


def check_code(code: str, numbering: Numbering, field: str = "code") -> str:
    """Normalize a scanned or typed code; an own code with a wrong check character is a 422."""
    code = barcodes.normalize(code)
    if not code:
        raise Invalid("the code is empty", field=field)
    if barcodes.looks_own(code, numbering.prefixes) and not barcodes.check_ok(code):
        raise Invalid(
            f"the check character of {code} does not match: the code was "
            "probably mistyped or misread",
            field=field,
        )
    return code


# --- samples ---------------------------------------------------------------------------


def register_sample(
    session: Session, actor: str, values: dict[str, Any], numbering: Numbering
) -> Sample:
    """Register a primary sample received from a patient."""
    patient = session.scalar(
        select(Patient).where(
            Patient.study_id == values.pop("study_id"),
            scope.patient_filter(scope.of(session), Patient.site_id),
        )
    )
    if patient is None:
        raise Invalid("unknown study_id", field="study_id")
    timepoint_code = values.pop("timepoint", None)
    timepoint = by_code(session, Timepoint, timepoint_code, "timepoint") if timepoint_code else None
    if timepoint is None and not values.get("unscheduled_reason"):
        raise Invalid(
            "give a timepoint, or an unscheduled_reason for an unscheduled sample",
            field="timepoint",
        )
    material = by_code(session, Material, values.pop("material"), "material")
    if values["container_code"] not in sprec.PRIMARY_CONTAINERS:
        raise Invalid(
            f"{values['container_code']!r} is not a SPREC primary container code",
            field="container_code",
        )
    collected = values["collected_at"] = values["collected_at"].astimezone(dt.UTC)
    received = values["received_at"] = values["received_at"].astimezone(dt.UTC)
    now = utcnow()
    if collected > now:
        raise Invalid("collected_at is in the future", field="collected_at")
    if received > now:
        raise Invalid("received_at is in the future", field="received_at")
    if received < collected:
        raise Invalid("received_at is before collected_at", field="received_at")
    if clock.day_of(collected) < patient.diagnosis_date - dt.timedelta(days=7):
        raise Invalid(
            "collected_at is more than a week before the patient's diagnosis", field="collected_at"
        )
    [code] = barcodes.issue(session, numbering.sample_prefix, 1, numbering.digits)
    sample = Sample(
        barcode=code,
        patient=patient,
        timepoint=timepoint,
        material=material,
        volume_remaining_ml=values["volume_ml"],
        **values,
    )
    session.add(sample)
    session.flush()
    record_event(
        session,
        actor,
        "received",
        sample_id=sample.id,
        new_values={
            "barcode": code,
            "study_id": patient.study_id,
            "timepoint": timepoint.code if timepoint else None,
            "material": material.code,
            "volume_ml": sample.volume_ml,
            "collected_at": collected,
            "received_at": received,
        },
    )
    return sample


def get_sample(session: Session, code: str, numbering: Numbering) -> Sample:
    """A sample by barcode, or 404."""
    code = check_code(code, numbering)
    sample = session.scalar(
        select(Sample).where(
            Sample.barcode == code, scope.sample_filter(scope.of(session), Sample.id)
        )
    )
    if sample is None:
        raise NotFound(f"no sample {code}")
    return sample


def samples_query(
    within: scope.Scope,
    patient: str | None = None,
    timepoint: str | None = None,
    material: str | None = None,
) -> Select[tuple[Sample]]:
    """The select behind the sample list, filtered (``within``: the asker's sites)."""
    query = select(Sample).where(scope.sample_filter(within, Sample.id)).order_by(Sample.id)
    if patient:
        query = query.where(Sample.patient.has(Patient.study_id == patient))
    if timepoint:
        query = query.where(Sample.timepoint.has(Timepoint.code == timepoint))
    if material:
        query = query.where(Sample.material.has(Material.code == material))
    return query


# --- aliquots --------------------------------------------------------------------------


def get_aliquot(session: Session, code: str, numbering: Numbering) -> Aliquot:
    """An aliquot by barcode, or 404."""
    code = check_code(code, numbering)
    aliquot = session.scalar(
        select(Aliquot).where(
            Aliquot.barcode == code, scope.aliquot_filter(scope.of(session), Aliquot.id)
        )
    )
    if aliquot is None:
        raise NotFound(f"no aliquot {code}")
    return aliquot


def aliquots_query(
    within: scope.Scope,
    patient: str | None = None,
    timepoint: str | None = None,
    material: str | None = None,
    aliquot_type: str | None = None,
    status: str | None = None,
    sample: str | None = None,
) -> Select[tuple[Aliquot]]:
    """The select behind the aliquot list, filtered (``within``: the asker's sites)."""
    query = select(Aliquot).where(scope.aliquot_filter(within, Aliquot.id)).order_by(Aliquot.id)
    sample_filters = []
    if patient:
        sample_filters.append(Sample.patient.has(Patient.study_id == patient))
    if timepoint:
        sample_filters.append(Sample.timepoint.has(Timepoint.code == timepoint))
    if material:
        sample_filters.append(Sample.material.has(Material.code == material))
    if sample:
        sample_filters.append(Sample.barcode == barcodes.normalize(sample))
    if sample_filters:
        query = query.where(Aliquot.sample.has(and_(*sample_filters)))
    if aliquot_type:
        query = query.where(Aliquot.aliquot_type.has(AliquotType.code == aliquot_type))
    if status:
        query = query.where(Aliquot.status == status)
    return query


def _children_barcodes(
    session: Session, children: list[dict[str, Any]], numbering: Numbering
) -> list[str]:
    """Issue barcodes for children without one; check the external ones."""
    external = []
    for index, child in enumerate(children):
        code = child.get("barcode")
        if code is None:
            continue
        code = barcodes.normalize(code)
        if why := barcodes.external_problem(code):
            raise Invalid(why, field=f"aliquots.{index}.barcode")
        if barcodes.looks_own(code, numbering.prefixes):
            raise Invalid(
                f"{code} looks like a code this service issues; pre-barcoded tubes "
                "must carry their own code",
                field=f"aliquots.{index}.barcode",
            )
        external.append(code)
        child["barcode"] = code
    if len(set(external)) != len(external):
        raise Conflict("the same barcode is given twice", field="aliquots")
    if external:
        taken = sorted(
            session.scalars(select(Aliquot.barcode).where(Aliquot.barcode.in_(external)))
        )
        if taken:
            raise Conflict(f"barcode already registered: {', '.join(taken)}", field="aliquots")
    issued = iter(
        barcodes.issue(
            session,
            numbering.aliquot_prefix,
            sum(1 for c in children if c.get("barcode") is None),
            numbering.digits,
        )
    )
    return [c["barcode"] if c.get("barcode") else next(issued) for c in children]


def _debit(index: int, child: dict[str, Any]) -> Decimal:
    amount = child.get("source_volume_ml") or child.get("volume_ml")
    if amount is None:
        raise Invalid(
            "give volume_ml or source_volume_ml: how much of the parent this aliquot takes",
            field=f"aliquots.{index}.source_volume_ml",
        )
    return Decimal(amount)


def sprec_code(
    kind: AliquotType,
    sample: Sample,
    parent: Aliquot | None,
    storage: str,
    processing: dict[str, Any] | None,
) -> str:
    """A new tube's SPREC v3.0 code: its type's, or for DNA and RNA its source's."""
    if kind.sprec_type is None:
        if parent is not None and parent.sprec_code:
            return parent.sprec_code
        return sprec.source_code(
            sample.material.sprec_type,
            sample.container_code,
            sample.precentrifugation_delay_hours,
            sample.precentrifugation_temperature,
        )
    return sprec.aliquot_code(
        kind.sprec_type,
        sample.container_code,
        sample.precentrifugation_delay_hours,
        sample.precentrifugation_temperature,
        kind.spins,
        processing,
        storage,
    )


def split(
    session: Session,
    actor: str,
    parent: Sample | Aliquot,
    children: list[dict[str, Any]],
    numbering: Numbering,
    *,
    consume_parent: bool = False,
    reason: str | None = None,
    processing: dict[str, Any] | None = None,
) -> list[Aliquot]:
    """Split a sample or an aliquot into aliquots, atomically; barcodes come back in order.

    The parent is debited with one conditional UPDATE, so concurrent splits can never take
    more than it has left. ``processing`` (centrifugations, delay before freezing) gives the
    new tubes' SPREC elements 4–6 and is kept in their ``aliquoted`` events.
    """
    is_sample = isinstance(parent, Sample)
    sample = parent if is_sample else parent.sample
    if not is_sample and parent.status != "available":
        raise Conflict(
            f"aliquot {parent.barcode} is {parent.status}, not available", field="barcode"
        )
    types = {
        t.code: t
        for t in session.scalars(
            select(AliquotType).where(AliquotType.code.in_({c["aliquot_type"] for c in children}))
        )
    }
    for index, child in enumerate(children):
        kind = types.get(child["aliquot_type"])
        if kind is None:
            raise Invalid(
                f"unknown aliquot type {child['aliquot_type']!r}",
                field=f"aliquots.{index}.aliquot_type",
            )
        if kind.materials and sample.material.code not in kind.materials:
            raise Invalid(
                f"{kind.name} cannot be made from {sample.material.name}",
                field=f"aliquots.{index}.aliquot_type",
            )
        if child.get("volume_ml") is None and child.get("cell_count") is None:
            raise Invalid("give volume_ml or cell_count", field=f"aliquots.{index}.volume_ml")

    model = Sample if is_sample else Aliquot
    remaining = parent.volume_remaining_ml
    if remaining is None:
        if not consume_parent:
            raise Conflict(
                f"{parent.barcode} has no volume recorded; split it with "
                "consume_parent to use it up",
                field="consume_parent",
            )
        taken = Decimal(0)
    else:
        taken = sum((_debit(i, c) for i, c in enumerate(children)), Decimal(0))
        debited = session.execute(
            update(model)
            .where(model.id == parent.id, model.volume_remaining_ml >= taken)
            .values(volume_remaining_ml=model.volume_remaining_ml - taken)
            .returning(model.volume_remaining_ml)
        ).scalar()
        if debited is None:
            session.refresh(parent)
            raise Conflict(
                f"splitting {taken} mL but {parent.barcode} has only "
                f"{parent.volume_remaining_ml} mL left",
                field="aliquots",
            )
        session.expire(parent, ["volume_remaining_ml"])

    codes = _children_barcodes(session, children, numbering)
    now = utcnow()
    rows = []
    for code, child in zip(codes, children, strict=True):
        kind = types[child["aliquot_type"]]
        code_of = sprec_code(
            kind, sample, None if is_sample else parent, child.get("storage", "X"), processing
        )
        rows.append(
            {
                "barcode": code,
                "barcode_source": "external" if child.get("barcode") else "issued",
                "sample_id": sample.id,
                "parent_aliquot_id": None if is_sample else parent.id,
                "aliquot_type_id": kind.id,
                "volume_ml": child.get("volume_ml"),
                "volume_remaining_ml": child.get("volume_ml"),
                "source_volume_ml": child.get("source_volume_ml"),
                "cell_count": child.get("cell_count"),
                "sprec_code": code_of,
                "freeze_thaw_count": 0,
                "status": "available",
                "created_at": now,
            }
        )
    # Ids matched by barcode: RETURNING in parameter order would make SQLAlchemy send SQLite
    # one row per statement.
    table = Aliquot.__table__
    by_code = dict(
        session.execute(insert(table).returning(table.c.barcode, table.c.id), rows).all()
    )
    ids = [by_code[row["barcode"]] for row in rows]
    parent_ref = {"sample_id": sample.id} if is_sample else {"aliquot_id": parent.id}
    record_events(
        session,
        [
            {
                "event_type": "aliquoted",
                "aliquot_id": new_id,
                "reason": reason,
                "new_values": {
                    "barcode": row["barcode"],
                    "parent": parent.barcode,
                    "aliquot_type": child["aliquot_type"],
                    "volume_ml": row["volume_ml"],
                    "cell_count": row["cell_count"],
                    "sprec_code": row["sprec_code"],
                    **({"processing": processing} if processing else {}),
                },
            }
            for new_id, row, child in zip(ids, rows, children, strict=True)
        ],
        actor,
        now,
        new_chains=True,
    )  # the tubes were inserted just above
    record_events(
        session,
        [
            {
                "event_type": "split",
                **parent_ref,
                "reason": reason,
                "old_values": {"volume_remaining_ml": remaining},
                "new_values": {
                    "volume_remaining_ml": None if remaining is None else remaining - taken,
                    "children": codes,
                },
            }
        ],
        actor,
        now,
    )
    if consume_parent and not is_sample:
        change_status(session, actor, parent, "consumed", reason or "used up by a split")
    by_id = {a.id: a for a in session.scalars(select(Aliquot).where(Aliquot.id.in_(ids)))}
    return [by_id[i] for i in ids]


REASON_REQUIRED = {"destroyed", "missing", "blocked"}


def change_status(
    session: Session, actor: str, aliquot: Aliquot, new: str, reason: str | None = None
) -> Aliquot:
    """Move an aliquot through the state machine; an illegal move is a 409 naming both.

    The tube is locked first (``biobank.locking``) and the move judged from its status
    then, not from what was read to find it."""
    old = lock_tubes(session, [aliquot.id]).get(aliquot.id, aliquot.status)
    if not states.can_transition(old, new):
        raise Conflict(f"an aliquot cannot go from {old} to {new}", field="status")
    if new in REASON_REQUIRED and not reason:
        raise Invalid(f"say why the aliquot is {new}", field="reason")
    changed = session.execute(
        update(Aliquot).where(Aliquot.id == aliquot.id, Aliquot.status == old).values(status=new)
    ).rowcount
    if changed != 1:
        raise Conflict(
            f"aliquot {aliquot.barcode} changed meanwhile; scan it again", field="status"
        )
    session.expire(aliquot, ["status"])
    record_event(
        session,
        actor,
        states.event_type(old, new),
        aliquot_id=aliquot.id,
        reason=reason,
        old_values={"status": old},
        new_values={"status": new},
    )
    return aliquot


def change_statuses(
    session: Session,
    actor: str,
    aliquot_ids: list[int],
    old: str,
    new: str,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> list[int]:
    """Move many aliquots from ``old`` to ``new``: one conditional UPDATE, one event each.

    Only tubes still in ``old`` move, so concurrent changes never both win; the ids that
    moved come back, and the caller decides whether a shortfall is a conflict.
    """
    if not states.can_transition(old, new):
        raise Conflict(f"an aliquot cannot go from {old} to {new}", field="status")
    if not aliquot_ids:
        return []
    # The tubes' locks in the one order (an UPDATE locks its rows in whatever order it finds
    # them: two overlapping bulk changes could deadlock).
    lock_tubes(session, aliquot_ids)
    moved = sorted(
        session.scalars(
            update(Aliquot)
            .where(Aliquot.id.in_(set(aliquot_ids)), Aliquot.status == old)
            .values(status=new)
            .returning(Aliquot.id)
            .execution_options(synchronize_session="fetch")
        )
    )
    record_events(
        session,
        [
            {
                "event_type": states.event_type(old, new),
                "aliquot_id": aliquot_id,
                "reason": reason,
                "old_values": {"status": old},
                "new_values": {"status": new, **(details or {})},
            }
            for aliquot_id in moved
        ],
        actor,
        at,
    )
    return moved
