"""Correcting a withdrawal recorded in error, through the append-only correction path.

Nothing is erased: the withdrawal stays as it was recorded, and the correction is a record of
its own (who, when, why). Each consent entry the withdrawal wrote is replaced by a correcting
entry (``ConsentEntry.corrects_id``) that restates the entry in force before it (the same
decision, date, form and signatory), so the one consent rule (``biobank.consent.rule``) sees
that consent as never withdrawn, on every day.

What the withdrawal set in motion is undone where it still can be, in the same transaction:
destruction tasks not yet done are cancelled and the tubes the withdrawal blocked go back
into use (as a re-consent does), and recall notices the recipient has not answered are
cancelled. What cannot be undone is said, not hidden: destroyed tubes stay destroyed, tubes
dropped from requests are not put back, recalls already acknowledged stay. A withdrawal whose
tubes were anonymised cannot be corrected (the link to the patient is gone).

The correction acts on every tube of the patient, wherever it is (consent knows no site);
its answer to a site-scoped officer counts and names only their sites' tubes (``_seen``),
while the audit record keeps the whole count.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from biobank.auth import scope
from biobank.consent import rule, service
from biobank.consent.models import (
    ConsentEntry,
    DestructionTask,
    RecallNotice,
    Withdrawal,
    WithdrawalCorrection,
)
from biobank.custody.service import record_audit, record_events
from biobank.db import utcnow
from biobank.errors import Conflict, NotFound
from biobank.locking import lock_tubes
from biobank.patients.models import Patient
from biobank.samples.models import Aliquot, Sample


@dataclass
class Correction:
    """A corrected withdrawal and what the correction could and could not undo."""

    study_id: str
    withdrawal: Withdrawal
    record: WithdrawalCorrection
    restored: list[ConsentEntry] = field(default_factory=list)
    tubes_back_in_use: int = 0
    tasks_cancelled: int = 0
    already_destroyed: list[str] = field(default_factory=list)
    recalls_cancelled: int = 0
    recalls_already_answered: int = 0

    @property
    def summary(self) -> str:
        """What the correction did, in one sentence."""
        parts = [
            f"consent restored for {', '.join(e.component_code for e in self.restored)}",
            f"{self.tubes_back_in_use} tube(s) back in use" if self.tubes_back_in_use else None,
            f"{self.tasks_cancelled} destruction task(s) cancelled"
            if self.tasks_cancelled
            else None,
            f"{len(self.already_destroyed)} tube(s) already destroyed stay destroyed"
            if self.already_destroyed
            else None,
            f"{self.recalls_cancelled} recall notice(s) cancelled"
            if self.recalls_cancelled
            else None,
            f"{self.recalls_already_answered} recall(s) already answered: tell those recipients"
            if self.recalls_already_answered
            else None,
        ]
        done = ", ".join(p for p in parts if p)
        return (
            f"{self.study_id}: withdrawal #{self.withdrawal.id} corrected as entered in "
            f"error: {done}"
        )


def correct(session: Session, actor: str, withdrawal_id: int, reason: str) -> Correction:
    """Correct withdrawal ``withdrawal_id`` as entered in error (409 where it cannot be)."""
    found = session.scalar(
        select(Withdrawal).where(
            Withdrawal.id == withdrawal_id,
            scope.patient_id_filter(scope.of(session), Withdrawal.patient_id),
        )
    )
    if found is None:  # none, or another site's patient's (biobank.auth.scope)
        raise NotFound(f"no withdrawal {withdrawal_id}")
    patient = session.get(Patient, found.patient_id)
    assert patient is not None
    service.lock_patient(session, patient)
    # Then every tube of the patient, in one ascending batch (biobank.locking): what the
    # correction reads of them (destroyed, blocked, recalled) is then what it changes.
    lock_tubes(
        session,
        session.scalars(select(Aliquot.id).join(Sample).where(Sample.patient_id == patient.id)),
    )
    if (
        session.scalar(
            select(WithdrawalCorrection.id).where(
                WithdrawalCorrection.withdrawal_id == withdrawal_id
            )
        )
        is not None
    ):
        raise Conflict(f"withdrawal {withdrawal_id} was already corrected", field="withdrawal")
    if found.outcome == "anonymise":
        raise Conflict(
            f"withdrawal {withdrawal_id} anonymised the patient's tubes: the link to "
            "the patient is cut and cannot be restored",
            field="withdrawal",
        )
    entries = service.patient_entries(session, patient.id, with_corrections=True)
    current = rule.state_on(entries)
    ended = [e for e in entries if e.withdrawal_id == withdrawal_id]
    for entry in ended:
        latest = current.get(rule.key_of(entry))
        if latest is not entry:
            raise Conflict(
                f"{entry.component_code} consent changed after this withdrawal "
                f"(entry {latest.id if latest else '?'}): only the latest entry "
                "can be corrected",
                field="withdrawal",
            )
    now = utcnow()
    record = WithdrawalCorrection(
        withdrawal_id=withdrawal_id, reason=reason, recorded_by=actor, recorded_at=now
    )
    session.add(record)
    why = f"withdrawal #{withdrawal_id} entered in error: {reason}"
    done = Correction(patient.study_id, found, record)
    for entry in ended:
        before = rule.state_on(
            e
            for e in entries
            if (e.effective_date, e.id) < (entry.effective_date, entry.id) and e.id != entry.id
        )[rule.key_of(entry)]
        done.restored.append(
            ConsentEntry(
                patient_id=patient.id,
                component=entry.component,
                substudy_id=entry.substudy_id,
                decision=before.decision,
                effective_date=before.effective_date,
                form_version_id=before.form_version_id,
                signed_by=before.signed_by,
                signatory_note=before.signatory_note,
                corrects_id=entry.id,
                reason=why[:200],
                recorded_by=actor,
                recorded_at=now,
                substudy=entry.substudy,
            )
        )
    session.add_all(done.restored)
    session.flush()
    storage = next((e for e in done.restored if e.component == "storage"), None)
    undone = _Undone()
    if storage is not None:
        undone.destroyed = [
            (i, code)
            for i, code in session.execute(
                select(Aliquot.id, Aliquot.barcode)
                .join(DestructionTask, DestructionTask.aliquot_id == Aliquot.id)
                .where(
                    DestructionTask.withdrawal_id == withdrawal_id,
                    DestructionTask.completed_at.is_not(None),
                )
                .order_by(Aliquot.barcode)
            )
        ]
        undone.tasks_cancelled, undone.back_in_use = service.restore_after_reconsent(
            session, actor, patient, storage, why=f"{why} (consent entry {storage.id})"
        )
    undone.recalls_cancelled, undone.recalls_answered = _cancel_recalls(
        session, actor, withdrawal_id, why, now
    )
    record_audit(
        session,
        actor,
        "patient",
        patient.study_id,
        "consent_withdrawal_corrected",
        reason=reason,
        new_values={
            "withdrawal": withdrawal_id,
            "restored": {e.component_code: e.id for e in done.restored},
            "tubes_back_in_use": len(undone.back_in_use),
            "destruction_tasks_cancelled": len(undone.tasks_cancelled),
            "already_destroyed": len(undone.destroyed),
            "recalls_cancelled": len(undone.recalls_cancelled),
            "recalls_already_answered": len(undone.recalls_answered),
        },
    )
    _seen(session, undone, done)
    return done


@dataclass
class _Undone:
    """The tubes (ids) each part of the correction touched, at every site."""

    destroyed: list[tuple[int, str]] = field(default_factory=list)  # (id, barcode)
    tasks_cancelled: list[int] = field(default_factory=list)
    back_in_use: list[int] = field(default_factory=list)
    recalls_cancelled: list[int] = field(default_factory=list)
    recalls_answered: list[int] = field(default_factory=list)


def _seen(session: Session, undone: _Undone, done: Correction) -> None:
    """What the correction tells the asker: the tubes at their sites (``biobank.auth.scope``'s
    tube rule), counted and named."""
    within = scope.of(session)
    ids = {i for i, _ in undone.destroyed} | {
        *undone.tasks_cancelled,
        *undone.back_in_use,
        *undone.recalls_cancelled,
        *undone.recalls_answered,
    }
    ours = (
        ids
        if within.everywhere or not ids
        else set(
            session.scalars(
                select(Aliquot.id).where(
                    Aliquot.id.in_(ids), scope.aliquot_filter(within, Aliquot.id)
                )
            )
        )
    )
    done.already_destroyed = [code for i, code in undone.destroyed if i in ours]
    done.tasks_cancelled = sum(i in ours for i in undone.tasks_cancelled)
    done.tubes_back_in_use = sum(i in ours for i in undone.back_in_use)
    done.recalls_cancelled = sum(i in ours for i in undone.recalls_cancelled)
    done.recalls_already_answered = sum(i in ours for i in undone.recalls_answered)


def _cancel_recalls(
    session: Session, actor: str, withdrawal_id: int, why: str, now: dt.datetime
) -> tuple[list[int], list[int]]:
    """Cancel the withdrawal's unanswered recall notices: the tubes (ids) of the notices
    cancelled, and of those already answered."""
    notices = session.execute(
        select(RecallNotice.id, RecallNotice.aliquot_id, RecallNotice.acknowledged_at).where(
            RecallNotice.withdrawal_id == withdrawal_id, RecallNotice.cancelled_at.is_(None)
        )
    ).all()
    open_ = [n for n in notices if n.acknowledged_at is None]
    answered = [n.aliquot_id for n in notices if n.acknowledged_at is not None]
    if not open_:
        return [], answered
    session.execute(
        update(RecallNotice)
        .where(RecallNotice.id.in_([n.id for n in open_]))
        .values(cancelled_at=now)
    )
    record_events(
        session,
        [
            {
                "event_type": "recall_cancelled",
                "aliquot_id": n.aliquot_id,
                "reason": why,
                "new_values": {"recall_notice": n.id},
            }
            for n in open_
        ],
        actor,
        now,
    )
    return [n.aliquot_id for n in open_], answered
