"""What follows a withdrawal: destruction tasks, recall notices, and the withdrawals with
their outstanding actions (re-consents falling due: ``biobank.consent.reconsent``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from biobank.auth import scope
from biobank.consent import anonymise
from biobank.consent.models import (
    AnonymisationTask,
    DestructionTask,
    RecallNotice,
    Withdrawal,
    WithdrawalCorrection,
)
from biobank.consent.places import locations
from biobank.custody.service import record_event
from biobank.db import utcnow
from biobank.errors import Conflict, NotFound
from biobank.locking import lock_tubes
from biobank.patients.models import Patient
from biobank.samples import service as samples
from biobank.samples.models import Aliquot

# --- what a site-scoped user sees of a withdrawal's consequences ------------------------
# A destruction task and a recall notice belong to their tube's site (auth.scope's tube
# rule); the lists and the withdrawals' counts filter by these, so they never disagree.


def task_visible(within: scope.Scope) -> ColumnElement[bool]:
    """The destruction tasks of the scope's sites."""
    return scope.aliquot_filter(within, DestructionTask.aliquot_id)


def recall_visible(within: scope.Scope) -> ColumnElement[bool]:
    """The recall notices of the scope's sites."""
    return scope.aliquot_filter(within, RecallNotice.aliquot_id)


# --- destruction tasks ------------------------------------------------------------------


@dataclass
class TaskView:
    """A destruction task as a technician sees it."""

    task: DestructionTask
    barcode: str
    aliquot_status: str
    study_id: str
    location: Any

    @property
    def state(self) -> str:
        """pending, done or cancelled."""
        if self.task.completed_at is not None:
            return "done"
        return "cancelled" if self.task.cancelled_at is not None else "pending"


def tasks(
    session: Session, *, pending_only: bool = False, withdrawal_id: int | None = None
) -> list[TaskView]:
    """Destruction tasks with each tube's location (a fixed number of queries)."""
    query = (
        select(DestructionTask, Aliquot.barcode, Aliquot.status, Patient.study_id)
        .join(Aliquot, DestructionTask.aliquot_id == Aliquot.id)
        .join(Withdrawal, DestructionTask.withdrawal_id == Withdrawal.id)
        .join(Patient, Withdrawal.patient_id == Patient.id)
        .where(task_visible(scope.of(session)))
        .order_by(DestructionTask.id)
    )
    if pending_only:
        query = query.where(
            DestructionTask.completed_at.is_(None), DestructionTask.cancelled_at.is_(None)
        )
    if withdrawal_id is not None:
        query = query.where(DestructionTask.withdrawal_id == withdrawal_id)
    rows = session.execute(query).all()
    where = locations(session, [row[0].aliquot_id for row in rows])
    return [
        TaskView(task, barcode, status, study_id, where.get(task.aliquot_id))
        for task, barcode, status, study_id in rows
    ]


def complete_task(session: Session, actor: str, task_id: int) -> TaskView:
    """The technician destroyed the tube: the task is done and the tube destroyed."""
    task = session.scalar(
        select(DestructionTask).where(
            DestructionTask.id == task_id, task_visible(scope.of(session))
        )
    )
    if task is None:
        raise NotFound(f"no destruction task {task_id}")
    # The tube's lock first (biobank.locking), then the task as it is once locked: a
    # correction or a re-consent holding the tube may have cancelled it meanwhile.
    lock_tubes(session, [task.aliquot_id])
    session.refresh(task)
    if task.completed_at is not None or task.cancelled_at is not None:
        raise Conflict(
            f"destruction task {task_id} is already {'done' if task.completed_at else 'cancelled'}",
            field="task",
        )
    aliquot = session.get(Aliquot, task.aliquot_id)
    assert aliquot is not None
    samples.change_status(
        session,
        actor,
        aliquot,
        "destroyed",
        f"consent withdrawn: destroyed for withdrawal #{task.withdrawal_id}",
    )
    task.completed_at, task.completed_by = utcnow(), actor
    session.flush()
    [view] = [v for v in tasks(session, withdrawal_id=task.withdrawal_id) if v.task.id == task_id]
    return view


# --- recall notices ---------------------------------------------------------------------


@dataclass
class RecallView:
    """A recall notice with its tube's barcode."""

    notice: RecallNotice
    barcode: str


def recalls(
    session: Session,
    *,
    withdrawal_id: int | None = None,
    open_only: bool = False,
    notice_id: int | None = None,
) -> list[RecallView]:
    """Recall notices with their tube's barcode."""
    query = (
        select(RecallNotice, Aliquot.barcode)
        .join(Aliquot, RecallNotice.aliquot_id == Aliquot.id)
        .where(recall_visible(scope.of(session)))
        .order_by(RecallNotice.id)
    )
    if withdrawal_id is not None:
        query = query.where(RecallNotice.withdrawal_id == withdrawal_id)
    if notice_id is not None:
        query = query.where(RecallNotice.id == notice_id)
    if open_only:
        query = query.where(
            RecallNotice.acknowledged_at.is_(None), RecallNotice.cancelled_at.is_(None)
        )
    return [RecallView(notice, barcode) for notice, barcode in session.execute(query)]


def _notice(session: Session, notice_id: int) -> RecallView:
    """The notice, its tube locked first (biobank.locking) and the notice read again once
    locked: a correction holding the tube may have cancelled it meanwhile."""
    found = recalls(session, notice_id=notice_id)
    if not found:
        raise NotFound(f"no recall notice {notice_id}")
    lock_tubes(session, [found[0].notice.aliquot_id])
    session.refresh(found[0].notice)
    return found[0]


def _not_cancelled(notice: RecallNotice) -> None:
    if notice.cancelled_at is not None:
        raise Conflict(
            f"recall notice {notice.id} was cancelled on "
            f"{notice.cancelled_at:%Y-%m-%d}: its withdrawal was corrected as "
            "entered in error",
            field="notice",
        )


def acknowledge_recall(session: Session, actor: str, notice_id: int) -> RecallView:
    """The recipient confirmed the recall notice."""
    view = _notice(session, notice_id)
    notice = view.notice
    _not_cancelled(notice)
    if notice.acknowledged_at is not None:
        raise Conflict(
            f"recall notice {notice_id} was already acknowledged on "
            f"{notice.acknowledged_at:%Y-%m-%d}",
            field="notice",
        )
    notice.acknowledged_at, notice.acknowledged_by = utcnow(), actor
    record_event(
        session,
        actor,
        "recall_acknowledged",
        aliquot_id=notice.aliquot_id,
        reason=f"recall for withdrawal #{notice.withdrawal_id} acknowledged",
        new_values={"recipient": notice.recipient},
    )
    session.flush()
    return view


def report_recall_destroyed(session: Session, actor: str, notice_id: int) -> RecallView:
    """The recipient reports the recalled tube destroyed; so is it here."""
    view = _notice(session, notice_id)
    notice = view.notice
    _not_cancelled(notice)
    if notice.destruction_reported_at is not None:
        raise Conflict("destruction of this tube was already reported", field="notice")
    now = utcnow()
    notice.destruction_reported_at = now
    notice.acknowledged_at = notice.acknowledged_at or now
    notice.acknowledged_by = notice.acknowledged_by or actor
    aliquot = session.get(Aliquot, notice.aliquot_id)
    assert aliquot is not None
    if aliquot.status == "shipped":
        samples.change_status(
            session,
            actor,
            aliquot,
            "destroyed",
            f"destroyed by the recipient after recall (withdrawal #{notice.withdrawal_id})",
        )
    session.flush()
    return view


# --- withdrawals and their outstanding actions -----------------------------------------


@dataclass
class WithdrawalView:
    """A withdrawal with the state of what it set in motion."""

    withdrawal: Withdrawal
    study_id: str
    tasks: Counter[str]
    recalls: Counter[str]
    anonymisation: Counter[str]
    # Set when the withdrawal was corrected as entered in error.
    correction: WithdrawalCorrection | None

    @property
    def outstanding(self) -> bool:
        """Whether a tube still awaits destruction or relabelling, or a recipient has not
        answered."""
        return bool(
            self.tasks["pending"] or self.anonymisation["pending"] or self.recalls["unacknowledged"]
        )


def withdrawals(
    session: Session,
    *,
    outstanding_only: bool = False,
    study_id: str | None = None,
    withdrawal_id: int | None = None,
) -> list[WithdrawalView]:
    """Withdrawals, newest first, with task and recall counts (four queries). A site-scoped
    user sees their sites' patients' withdrawals, and counts the tasks and recalls of their
    sites' tubes only: those the lists show them."""
    within = scope.of(session)
    query = (
        select(Withdrawal, Patient.study_id, WithdrawalCorrection)
        .join(Patient, Withdrawal.patient_id == Patient.id)
        .outerjoin(WithdrawalCorrection, WithdrawalCorrection.withdrawal_id == Withdrawal.id)
        .where(scope.patient_filter(within, Patient.site_id))
        .order_by(Withdrawal.id.desc())
    )
    if study_id is not None:
        query = query.where(Patient.study_id == study_id)
    if withdrawal_id is not None:
        query = query.where(Withdrawal.id == withdrawal_id)
    rows = session.execute(query).all()
    ids = [w.id for w, _, _ in rows]
    task_counts: dict[int, Counter[str]] = {i: Counter() for i in ids}
    recall_counts: dict[int, Counter[str]] = {i: Counter() for i in ids}
    relabel_counts: dict[int, Counter[str]] = {i: Counter() for i in ids}
    if ids:
        relabelled = AnonymisationTask.completed_at.is_not(None)
        for wid, is_done, n in session.execute(
            select(AnonymisationTask.withdrawal_id, relabelled, func.count())
            .where(AnonymisationTask.withdrawal_id.in_(ids), anonymise.visible(within))
            .group_by(AnonymisationTask.withdrawal_id, relabelled)
        ):
            relabel_counts[wid]["done" if is_done else "pending"] += n
        done = DestructionTask.completed_at.is_not(None)
        cancelled = DestructionTask.cancelled_at.is_not(None)
        for wid, is_done, is_cancelled, n in session.execute(
            select(DestructionTask.withdrawal_id, done, cancelled, func.count())
            .where(DestructionTask.withdrawal_id.in_(ids), task_visible(within))
            .group_by(DestructionTask.withdrawal_id, done, cancelled)
        ):
            task_counts[wid]["done" if is_done else "cancelled" if is_cancelled else "pending"] += n
        acknowledged = RecallNotice.acknowledged_at.is_not(None)
        reported = RecallNotice.destruction_reported_at.is_not(None)
        recall_cancelled = RecallNotice.cancelled_at.is_not(None)
        for wid, is_ack, is_reported, is_cancelled, n in session.execute(
            select(
                RecallNotice.withdrawal_id, acknowledged, reported, recall_cancelled, func.count()
            )
            .where(RecallNotice.withdrawal_id.in_(ids), recall_visible(within))
            .group_by(RecallNotice.withdrawal_id, acknowledged, reported, recall_cancelled)
        ):
            recall_counts[wid][
                "acknowledged" if is_ack else "cancelled" if is_cancelled else "unacknowledged"
            ] += n
            if is_reported:
                recall_counts[wid]["destruction_reported"] += n
    views = [
        WithdrawalView(
            w, sid, task_counts[w.id], recall_counts[w.id], relabel_counts[w.id], correction
        )
        for w, sid, correction in rows
    ]
    return [v for v in views if v.outstanding] if outstanding_only else views


@dataclass
class WithdrawalDetail(WithdrawalView):
    """A withdrawal with every destruction task and recall notice."""

    destruction_tasks: list[TaskView]
    recall_notices: list[RecallView]
    anonymisation_tasks: list[Any]


def get_withdrawal(session: Session, withdrawal_id: int) -> WithdrawalDetail:
    """One withdrawal with its tasks (and each tube's location) and recalls, or 404."""
    found = withdrawals(session, withdrawal_id=withdrawal_id)
    if not found:
        raise NotFound(f"no withdrawal {withdrawal_id}")
    return WithdrawalDetail(
        **found[0].__dict__,
        destruction_tasks=tasks(session, withdrawal_id=withdrawal_id),
        recall_notices=recalls(session, withdrawal_id=withdrawal_id),
        anonymisation_tasks=anonymise.tasks(session, withdrawal_id=withdrawal_id),
    )
