"""Withdrawal of consent: its impact (shown first, in a dry run) and applying it at once.

Withdrawing storage (or everything) blocks every tube of the patient still in house and
gives technicians a destruction task per tube, or, where the country allows it and the
outcome asked is ``anonymise``, cuts the tubes loose from the patient and gives a relabelling
task per tube (``biobank.consent.anonymise``); tubes already shipped get recall notices.
Withdrawing one sub-study leaves the tubes in use for the others. Either way the effects
other domains registered (open requests losing the tubes) run in the same transaction.

Consent knows no site: a withdrawal acts on every tube of the patient wherever it is. What
it shows a site-scoped user (the impact, previewed or recorded) holds only the tubes of their
sites (``seen``, by ``biobank.auth.scope``'s tube rule), as every list of theirs does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from biobank import clock
from biobank.auth import scope as site_scope
from biobank.consent import anonymise, places, rule, service
from biobank.consent.models import (
    ConsentEntry,
    DestructionTask,
    RecallNotice,
    ReleaseJustification,
    Substudy,
    Withdrawal,
)
from biobank.consent.rule import Key
from biobank.consent.service import EffectAction, WithdrawalContext
from biobank.custody.service import record_audit, record_events
from biobank.db import utcnow
from biobank.errors import Conflict, Invalid
from biobank.patients.models import Patient
from biobank.samples import states
from biobank.samples.models import Aliquot, Sample


@dataclass
class Tube:
    """A tube the withdrawal touches."""

    id: int
    barcode: str
    status: str
    request_reference: str | None = None
    recipient: str | None = None
    location: Any = None


@dataclass
class Impact:
    """What a withdrawal does (or, in a dry run, would do)."""

    study_id: str
    scope: str
    withdrawn_on: dt.date
    requested_by: str
    reason: str | None
    dry_run: bool
    ends: list[ConsentEntry]
    outcome: str | None = None
    blocked: list[Tube] = field(default_factory=list)
    destruction: list[Tube] = field(default_factory=list)
    anonymisation: list[Tube] = field(default_factory=list)
    recalls: list[Tube] = field(default_factory=list)
    missing: list[Tube] = field(default_factory=list)
    stays_usable_for: list[str] = field(default_factory=list)
    effects: dict[str, list[EffectAction]] = field(default_factory=dict)
    withdrawal: Withdrawal | None = None
    context: WithdrawalContext | None = field(default=None, repr=False)

    @property
    def summary(self) -> str:
        """The impact in one sentence."""
        what = {
            "storage": "storage consent",
            "data": "consent to data collection",
            "all": "all consent",
        }.get(self.scope, f"consent for sub-study {self.scope}")
        parts = [
            f"{len(self.blocked)} tube(s) blocked" if self.blocked else None,
            f"{len(self.destruction)} destruction task(s)" if self.destruction else None,
            "anonymised (the link to the patient cut), "
            f"{len(self.anonymisation)} relabelling task(s)"
            if self.outcome == "anonymise"
            else None,
            f"{len(self.recalls)} recall notice(s)" if self.recalls else None,
            f"{len(self.missing)} missing tube(s), refused by the gate if found"
            if self.missing
            else None,
            self._stays,
        ]
        done = ", ".join(p for p in parts if p) or "no tube changes"
        prefix = "dry run, nothing written: " if self.dry_run else ""
        return f"{prefix}{self.study_id}: {what} withdrawn from {self.withdrawn_on}: {done}"

    @property
    def _stays(self) -> str | None:
        if self.scope in ("storage", "data", "all"):
            return None
        usable = ", ".join(self.stays_usable_for) or "no other sub-study"
        return f"tubes stay stored, still usable for {usable}"


def _targets(
    entries: list[ConsentEntry], scope_key: Key | None, scope: str, day: dt.date
) -> list[ConsentEntry]:
    """The given entries the withdrawal ends; refuses what cannot be withdrawn."""
    current = rule.state_on(entries)
    if scope_key is not None:
        entry = current.get(scope_key)
        if entry is None:
            raise Invalid(f"{scope} consent was never given: nothing to withdraw", field="scope")
        if entry.decision == "withdrawn":
            raise Conflict(
                f"{scope} consent was already withdrawn on {entry.effective_date}", field="scope"
            )
        if entry.decision == "declined":
            raise Invalid(
                f"{scope} consent was declined on {entry.effective_date}: nothing to withdraw",
                field="scope",
            )
        given = [entry]
    else:
        given = [e for e in current.values() if e.decision == "given"]
        if not given:
            if any(e.decision == "withdrawn" for e in current.values()):
                raise Conflict("every consent of this patient is already withdrawn", field="scope")
            raise Invalid("this patient never gave consent: nothing to withdraw", field="scope")
    for entry in given:
        if day < entry.effective_date:
            raise Invalid(
                f"the withdrawal is dated before the {entry.component_code} consent "
                f"it withdraws ({entry.effective_date})",
                field="date",
            )
    return sorted(given, key=lambda e: (e.component != "storage", e.component_code))


def plan(
    session: Session, actor: str, patient: Patient, values: dict[str, Any], *, dry_run: bool
) -> Impact:
    """Check a withdrawal and work out its impact, without writing anything."""
    day: dt.date = values["date"]
    if day > clock.today():
        raise Invalid("a withdrawal cannot be dated in the future", field="date")
    scope = values["scope"]
    scope_key = None if scope == "all" else service.resolve_component(session, scope, "scope")[0]
    entries = service.patient_entries(session, patient.id)
    ends = _targets(entries, scope_key, scope, day)
    impact = Impact(
        patient.study_id, scope, day, values["requested_by"], values.get("reason"), dry_run, ends
    )
    storage_ended = any(e.component == "storage" for e in ends)
    if storage_ended:
        impact.outcome = values.get("outcome") or "destroy"
        if impact.outcome == "anonymise":
            anonymise.check_allowed(session, patient)
    elif values.get("outcome") == "anonymise":
        raise Invalid(
            "anonymise applies only to a withdrawal that ends storage consent: "
            "this one leaves the tubes stored",
            field="outcome",
        )
    ended_substudies = {e.substudy_id for e in ends if e.substudy_id is not None}
    tubes = [
        Tube(*row)
        for row in session.execute(
            select(Aliquot.id, Aliquot.barcode, Aliquot.status)
            .join(Sample, Aliquot.sample_id == Sample.id)
            .where(Sample.patient_id == patient.id)
            .order_by(Aliquot.id)
        )
    ]
    shipped = [t for t in tubes if t.status == "shipped"]
    if storage_ended:
        pending = set(
            session.scalars(
                select(DestructionTask.aliquot_id).where(
                    DestructionTask.aliquot_id.in_([t.id for t in tubes]),
                    DestructionTask.completed_at.is_(None),
                    DestructionTask.cancelled_at.is_(None),
                )
            )
        )
        impact.blocked = [t for t in tubes if t.status in states.RELEASABLE]
        to_handle = [t for t in tubes if t.status in states.IN_HOUSE and t.id not in pending]
        if impact.outcome == "anonymise":
            impact.anonymisation = to_handle
        else:
            impact.destruction = to_handle
        impact.missing = [t for t in tubes if t.status == "missing"]
        impact.recalls = shipped
        handled = impact.destruction + impact.anonymisation + impact.missing
        where = places.locations(session, [t.id for t in handled])
        for tube in handled:
            tube.location = where.get(tube.id)
    elif ended_substudies:
        impact.recalls = _shipped_for(session, shipped, ended_substudies)
        # What the gate would still let out, today: the same rule, majority included.
        today, of_age = clock.today(), service.comes_of_age(session, patient)
        still = rule.state_on(entries, today)
        if rule.standing(still.get(rule.STORAGE), today, of_age) == "given":
            impact.stays_usable_for = sorted(
                e.component_code
                for k, e in still.items()
                if k[0] == "substudy"
                and k[1] not in ended_substudies
                and rule.standing(e, today, of_age) == "given"
            )
    _fill_shipments(session, impact.recalls)
    codes = sorted(e.component_code for e in ends if e.substudy_id is not None)
    context = WithdrawalContext(
        study_id=patient.study_id,
        scope=scope,
        withdrawn_on=day,
        storage_ended=storage_ended,
        substudies_ended=codes,
        aliquot_ids=[t.id for t in tubes if t.status in states.IN_HOUSE],
        actor=actor,
        dry_run=True,
    )
    impact.effects = (
        {name: effect(session, context) for name, effect in service.WITHDRAWAL_EFFECTS.items()}
        if dry_run
        else {}
    )
    impact.context = context
    return seen(session, impact) if dry_run else impact


def seen(session: Session, impact: Impact) -> Impact:
    """The impact as the asker may see it: a site-scoped user sees the tubes at their sites
    only, in every list, count and effect (the withdrawal itself acts on them all)."""
    within = site_scope.of(session)
    if within.everywhere:
        return impact
    tubes = (
        impact.blocked + impact.destruction + impact.anonymisation + impact.recalls + impact.missing
    )
    codes = {t.barcode for t in tubes} | {
        a.barcode for actions in impact.effects.values() for a in actions if a.barcode is not None
    }
    ours: set[str] = set()
    if codes:
        ours = set(
            session.scalars(
                select(Aliquot.barcode).where(
                    Aliquot.barcode.in_(codes), site_scope.aliquot_filter(within, Aliquot.id)
                )
            )
        )

    def kept(found: list[Tube]) -> list[Tube]:
        return [t for t in found if t.barcode in ours]

    return replace(
        impact,
        blocked=kept(impact.blocked),
        destruction=kept(impact.destruction),
        anonymisation=kept(impact.anonymisation),
        recalls=kept(impact.recalls),
        missing=kept(impact.missing),
        effects={
            name: [a for a in actions if a.barcode is None or a.barcode in ours]
            for name, actions in impact.effects.items()
        },
    )


def _shipped_for(session: Session, shipped: list[Tube], substudy_ids: set[int]) -> list[Tube]:
    """The shipped tubes whose last release was for one of these sub-studies."""
    if not shipped:
        return []
    last: dict[int, int] = {}
    for aliquot_id, substudy_id in session.execute(
        select(ReleaseJustification.aliquot_id, ReleaseJustification.substudy_id)
        .where(ReleaseJustification.aliquot_id.in_([t.id for t in shipped]))
        .order_by(ReleaseJustification.id)
    ):
        last[aliquot_id] = substudy_id
    return [t for t in shipped if last.get(t.id) in substudy_ids]


def _fill_shipments(session: Session, tubes: list[Tube]) -> None:
    """Name each recalled tube's request (from its release) and recipient (from requests)."""
    if not tubes:
        return
    ids = [t.id for t in tubes]
    references = dict(
        session.execute(
            select(ReleaseJustification.aliquot_id, ReleaseJustification.release_reference)
            .where(ReleaseJustification.aliquot_id.in_(ids))
            .order_by(ReleaseJustification.id)
        ).all()
    )
    for tube in tubes:
        tube.request_reference = references.get(tube.id)
    for lookup in service.SHIPMENT_LOOKUPS:
        found = lookup(session, ids)
        for tube in tubes:
            if tube.id in found:
                tube.request_reference = found[tube.id].request_reference or tube.request_reference
                tube.recipient = found[tube.id].recipient or tube.recipient


def withdraw(session: Session, actor: str, patient: Patient, values: dict[str, Any]) -> Impact:
    """Record a withdrawal and carry out its impact, all in the caller's transaction."""
    service.lock_patient(session, patient)
    impact = plan(session, actor, patient, values, dry_run=False)
    scope = values["scope"]
    substudy = (
        None
        if scope in ("storage", "data", "all")
        else session.scalar(select(Substudy).where(Substudy.code == scope))
    )
    withdrawal = Withdrawal(
        patient_id=patient.id,
        scope="substudy" if substudy else scope,
        substudy=substudy,
        withdrawn_on=impact.withdrawn_on,
        requested_by=values["requested_by"],
        reason=values.get("reason"),
        outcome=impact.outcome,
        recorded_by=actor,
    )
    session.add(withdrawal)
    session.flush()
    impact.withdrawal = withdrawal
    session.add_all(
        [
            ConsentEntry(
                patient_id=patient.id,
                component=entry.component,
                substudy_id=entry.substudy_id,
                decision="withdrawn",
                effective_date=impact.withdrawn_on,
                signed_by=values["requested_by"],
                withdrawal_id=withdrawal.id,
                reason=values.get("reason"),
                recorded_by=actor,
            )
            for entry in impact.ends
        ]
    )
    now = utcnow()
    why = (
        f"consent withdrawn ({impact.scope}) from {impact.withdrawn_on}: "
        f"withdrawal #{withdrawal.id}"
    )
    if impact.outcome == "anonymise":
        # The block's reason names no withdrawal: the chain must not lead back to the patient.
        why = f"storage consent withdrawn from {impact.withdrawn_on}: to be anonymised"
    _block(session, actor, impact.blocked, why, now)
    if impact.destruction:
        session.execute(
            DestructionTask.__table__.insert(),
            [
                {
                    "withdrawal_id": withdrawal.id,
                    "aliquot_id": t.id,
                    "blocked_from": t.status,
                    "created_at": now,
                }
                for t in impact.destruction
            ],
        )
    if impact.recalls:
        session.execute(
            RecallNotice.__table__.insert(),
            [
                {
                    "withdrawal_id": withdrawal.id,
                    "aliquot_id": t.id,
                    "created_at": now,
                    "request_reference": t.request_reference,
                    "recipient": t.recipient,
                }
                for t in impact.recalls
            ],
        )
    context = impact.context
    assert context is not None
    context.dry_run, context.withdrawal_id = False, withdrawal.id
    impact.effects = {
        name: effect(session, context) for name, effect in service.WITHDRAWAL_EFFECTS.items()
    }
    if impact.outcome == "anonymise":
        # Last: the other domains' effects (requests dropping the tubes) still see the patient.
        anonymise.cut(
            session,
            actor,
            patient,
            withdrawal.id,
            [(t.id, t.barcode, t.status) for t in impact.anonymisation],
            now,
        )
    session.flush()
    record_audit(
        session,
        actor,
        "patient",
        patient.study_id,
        "consent_withdrawn",
        reason=values.get("reason"),
        new_values={
            "withdrawal": withdrawal.id,
            "scope": impact.scope,
            "withdrawn_on": impact.withdrawn_on,
            "requested_by": values["requested_by"],
            "ended": [e.component_code for e in impact.ends],
            "blocked": len(impact.blocked),
            "destruction_tasks": len(impact.destruction),
            "outcome": impact.outcome,
            "anonymisation_tasks": len(impact.anonymisation),
            "recalls": len(impact.recalls),
        },
    )
    return seen(session, impact)


def _block(session: Session, actor: str, tubes: list[Tube], why: str, now: dt.datetime) -> None:
    """Block tubes with one conditional UPDATE per status, and one custody event each."""
    events = []
    for status in states.RELEASABLE:
        ids = [t.id for t in tubes if t.status == status]
        if not ids:
            continue
        changed = session.execute(
            update(Aliquot)
            .where(Aliquot.id.in_(ids), Aliquot.status == status)
            .values(status="blocked")
        ).rowcount
        if changed != len(ids):
            raise Conflict(
                "a tube of this patient changed status meanwhile; try again", field="scope"
            )
        events += [
            {
                "event_type": states.event_type(status, "blocked"),
                "aliquot_id": i,
                "reason": why,
                "old_values": {"status": status},
                "new_values": {"status": "blocked"},
            }
            for i in ids
        ]
    record_events(session, events, actor, now)
