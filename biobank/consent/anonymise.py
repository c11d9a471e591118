"""Anonymise instead of destroy, where the country's law allows it.

A storage withdrawal whose outcome is ``anonymise`` cuts the link between the patient and
every sample taken from them, at once and for good: each sample loses its patient, its
collection and receipt times, its hospital accession number and its notes (material,
timepoint, volumes, aliquot types and SPREC codes stay). Each sample's and tube's custody
chain continues with an ``anonymised`` event. Tubes still in house are blocked and get an
anonymisation task: a technician relabels the tube (its old label may carry the study
pseudonym); completing the task unblocks the tube and clears the task's own link to it, the
last row tying the tube to the withdrawal. The gate then lets an anonymised tube out only to
sub-studies that accept anonymised material (``gate``), recording that as the basis.

What stays, and why (docs/consent.md, "Anonymisation"): the withdrawal itself (GDPR Art.
7(3): a minimal record of it), and the append-only, hash-chained custody and audit logs,
whose earlier events still name the tube's sample (21 CFR 11.10(e), EU GMP Annex 11 §9, ISO
20387 §7.5: a trail is never rewritten). Nothing the service shows or exports joins them
back to a patient.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, true, update
from sqlalchemy.orm import Session

from biobank.auth import scope
from biobank.consent.models import AnonymisationTask, Withdrawal
from biobank.consent.places import locations
from biobank.custody.service import record_events
from biobank.db import utcnow
from biobank.errors import Conflict, Invalid, NotFound
from biobank.patients.models import Patient
from biobank.reference import service as reference
from biobank.samples import states
from biobank.samples.models import Aliquot, Sample

# What an anonymised sample no longer carries (the patient, and what dates or names them).
CLEARED = {
    "patient_id": None,
    "collected_at": None,
    "received_at": None,
    "accession_number": None,
    "notes": None,
}
ANONYMISED = "anonymised: no link to a patient"


def check_allowed(session: Session, patient: Patient) -> None:
    """Refuse (422 naming the country) where the patient's country does not allow it."""
    country = patient.site.country
    if not reference.anonymisation_allowed(session, country):
        raise Invalid(
            f"anonymisation after a storage withdrawal is not allowed in {country} "
            "(reference data: anonymisation rules): the tubes must be destroyed",
            field="outcome",
        )


def cut(
    session: Session,
    actor: str,
    patient: Patient,
    withdrawal_id: int,
    in_house: list[tuple[int, str, str]],
    now: dt.datetime,
) -> None:
    """Cut the patient's samples loose, log it on every chain, and give technicians a
    relabelling task per tube in house (``in_house``: id, barcode, status before blocking)."""
    sample_ids = list(
        session.scalars(
            select(Sample.id).where(Sample.patient_id == patient.id).order_by(Sample.id)
        )
    )
    if not sample_ids:
        return
    tube_ids = list(
        session.scalars(
            select(Aliquot.id).where(Aliquot.sample_id.in_(sample_ids)).order_by(Aliquot.id)
        )
    )
    session.execute(update(Sample).where(Sample.id.in_(sample_ids)).values(**CLEARED))
    why = "storage consent withdrawn: anonymised, the link to the patient cut"
    gone = {"patient": None, "collected_at": None, "received_at": None}
    record_events(
        session,
        [
            {"event_type": "anonymised", "sample_id": i, "reason": why, "new_values": gone}
            for i in sample_ids
        ]
        + [
            {"event_type": "anonymised", "aliquot_id": i, "reason": why, "new_values": gone}
            for i in tube_ids
        ],
        actor,
        now,
    )
    if in_house:
        session.execute(
            AnonymisationTask.__table__.insert(),
            [
                {
                    "withdrawal_id": withdrawal_id,
                    "aliquot_id": i,
                    "barcode": code,
                    "blocked_from": status,
                    "created_at": now,
                }
                for i, code, status in in_house
            ],
        )


@dataclass
class AnonymisationTaskView:
    """An anonymisation task as a technician sees it (no patient: there is none any more)."""

    task: AnonymisationTask
    aliquot_status: str | None
    location: Any

    @property
    def state(self) -> str:
        """pending or done."""
        return "pending" if self.task.completed_at is None else "done"

    @property
    def barcode(self) -> str | None:
        """The tube's code while the task is pending; none once done."""
        return self.task.barcode


def visible(within: scope.Scope) -> ColumnElement[bool]:
    """The tasks of the scope's sites: by the tube while it is known, else by the patient
    whose withdrawal made the task (``biobank.auth.scope``)."""
    if within.everywhere:
        return true()
    of_patients = select(Withdrawal.id).where(
        scope.patient_id_filter(within, Withdrawal.patient_id)
    )
    return or_(
        scope.aliquot_filter(within, AnonymisationTask.aliquot_id),
        and_(
            AnonymisationTask.aliquot_id.is_(None), AnonymisationTask.withdrawal_id.in_(of_patients)
        ),
    )


def tasks(
    session: Session, *, pending_only: bool = False, withdrawal_id: int | None = None
) -> list[AnonymisationTaskView]:
    """Anonymisation tasks with each pending tube's status and location."""
    query = (
        select(AnonymisationTask, Aliquot.status)
        .outerjoin(Aliquot, AnonymisationTask.aliquot_id == Aliquot.id)
        .where(visible(scope.of(session)))
        .order_by(AnonymisationTask.id)
    )
    if pending_only:
        query = query.where(AnonymisationTask.completed_at.is_(None))
    if withdrawal_id is not None:
        query = query.where(AnonymisationTask.withdrawal_id == withdrawal_id)
    rows = session.execute(query).all()
    where = locations(session, [t.aliquot_id for t, _ in rows if t.aliquot_id is not None])
    return [
        AnonymisationTaskView(task, status, where.get(task.aliquot_id)) for task, status in rows
    ]


def complete_task(session: Session, actor: str, task_id: int) -> AnonymisationTaskView:
    """The technician relabelled the tube: it goes back to use (for sub-studies accepting
    anonymised tubes) and the task forgets which tube it was."""
    task = session.get(AnonymisationTask, task_id, with_for_update=True)
    if task is not None and not session.scalar(
        select(AnonymisationTask.id).where(
            AnonymisationTask.id == task_id, visible(scope.of(session))
        )
    ):
        task = None
    if task is None:
        raise NotFound(f"no anonymisation task {task_id}")
    if task.completed_at is not None:
        raise Conflict(f"anonymisation task {task_id} is already done", field="task")
    aliquot = session.get(Aliquot, task.aliquot_id)
    assert aliquot is not None
    now = utcnow()
    if aliquot.status == "blocked" and task.blocked_from in ("available", "reserved"):
        changed = session.execute(
            update(Aliquot)
            .where(Aliquot.id == aliquot.id, Aliquot.status == "blocked")
            .values(status="available")
        ).rowcount
        if changed != 1:
            raise Conflict("the tube changed status meanwhile; try again", field="task")
        record_events(
            session,
            [
                {
                    "event_type": states.event_type("blocked", "available"),
                    "aliquot_id": aliquot.id,
                    "reason": "relabelled after anonymisation: usable for sub-studies that accept "
                    "anonymised material",
                    "old_values": {"status": "blocked"},
                    "new_values": {"status": "available"},
                }
            ],
            actor,
            now,
        )
    task.completed_at, task.completed_by = now, actor
    task.aliquot_id, task.barcode = None, None
    session.flush()
    return AnonymisationTaskView(task, None, None)
