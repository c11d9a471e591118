"""Consent: sub-studies, form versions, the append-only consent log, withdrawals and
what they set in motion (destruction tasks, recall notices), and release justifications."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, Index, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import Base, Code, Str64, Str200, utcnow

# The trial's general research parts; every sub-study is a component of its own.
GENERAL_COMPONENTS = ("storage", "data")
COMPONENT_KINDS = (*GENERAL_COMPONENTS, "substudy")
DECISIONS = ("given", "declined", "withdrawn")
# Who signed: infants cannot, so a parent or guardian; the participant at re-consent.
SIGNATORIES = ("mother", "father", "legal_guardian", "participant", "other")
WITHDRAWAL_SCOPES = ("storage", "data", "all", "substudy")
# What becomes of the tubes when storage consent ends (anonymise only where the law allows).
OUTCOMES = ("destroy", "anonymise")
# Why a release was allowed: the patient's consent, or the tube being anonymised.
RELEASE_BASES = ("consent", "anonymised")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _substudy_iff(column: str, value: str) -> str:
    return (
        f"({column} = '{value}' AND substudy_id IS NOT NULL) OR "
        f"({column} <> '{value}' AND substudy_id IS NULL)"
    )


class Substudy(Base):
    """A research project that uses the material, opted into separately by the parents."""

    __tablename__ = "substudy"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[Code] = mapped_column(unique=True)
    title: Mapped[Str200]
    principal_investigator: Mapped[Str200]
    description: Mapped[str | None] = mapped_column(Text)
    open: Mapped[bool] = mapped_column(default=True)
    # Whether it may receive anonymised tubes (no patient, no consent to check).
    accepts_anonymised: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ConsentFormVersion(Base):
    """A version of the informed-consent form: its language and the components it covers."""

    __tablename__ = "consent_form_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[Code] = mapped_column(unique=True)
    title: Mapped[Str200]
    version: Mapped[Code]
    language: Mapped[Code]
    # "storage", "data" and sub-study codes.
    covers: Mapped[list[str]]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ConsentEntry(Base):
    """One line of a patient's consent log (append-only; the current state is derived).

    A correction is a new entry naming the one it replaces; a withdrawal writes one
    ``withdrawn`` entry per component it ends.
    """

    __tablename__ = "consent_entry"
    __table_args__ = (
        CheckConstraint(_in("component", COMPONENT_KINDS), name="component"),
        CheckConstraint(_substudy_iff("component", "substudy"), name="substudy_component"),
        CheckConstraint(_in("decision", DECISIONS), name="decision"),
        CheckConstraint(_in("signed_by", SIGNATORIES), name="signed_by"),
        CheckConstraint(
            "decision = 'withdrawn' OR form_version_id IS NOT NULL", name="form_for_decision"
        ),
        CheckConstraint(
            "(decision = 'withdrawn' AND withdrawal_id IS NOT NULL) OR "
            "(decision <> 'withdrawn' AND withdrawal_id IS NULL)",
            name="withdrawn_by_withdrawal",
        ),
        CheckConstraint("corrects_id IS NULL OR reason IS NOT NULL", name="correction_reason"),
        Index("ix_consent_entry_patient", "patient_id", "component", "substudy_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    component: Mapped[Code]
    substudy_id: Mapped[int | None] = mapped_column(ForeignKey("substudy.id"))
    decision: Mapped[Code]
    # The day the form was signed, or the day the withdrawal takes effect.
    effective_date: Mapped[dt.date]
    form_version_id: Mapped[int | None] = mapped_column(ForeignKey("consent_form_version.id"))
    signed_by: Mapped[Code]
    signatory_note: Mapped[Str200 | None]
    # One correction per entry: a second one corrects the correction.
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("consent_entry.id"), unique=True)
    withdrawal_id: Mapped[int | None] = mapped_column(
        ForeignKey("consent_withdrawal.id"), index=True
    )
    reason: Mapped[Str200 | None]
    recorded_by: Mapped[Str64]
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    substudy: Mapped[Substudy | None] = relationship(lazy="joined")
    form_version: Mapped[ConsentFormVersion | None] = relationship(lazy="joined")
    # The entry that replaced this one; load it with selectinload where it is shown.
    corrected_by: Mapped[ConsentEntry | None] = relationship(
        primaryjoin="ConsentEntry.id == foreign(ConsentEntry.corrects_id)",
        uselist=False,
        viewonly=True,
        lazy="raise",
    )

    @property
    def component_code(self) -> str:
        """ "storage", "data", or the sub-study's code."""
        return self.substudy.code if self.substudy else self.component


class Withdrawal(Base):
    """A withdrawal of consent: the minimal record GDPR Art. 7(3) asks to keep."""

    __tablename__ = "consent_withdrawal"
    __table_args__ = (
        CheckConstraint(_in("scope", WITHDRAWAL_SCOPES), name="scope"),
        CheckConstraint(_substudy_iff("scope", "substudy"), name="substudy_scope"),
        CheckConstraint(_in("requested_by", SIGNATORIES), name="requested_by"),
        CheckConstraint(f"outcome IS NULL OR {_in('outcome', OUTCOMES)}", name="outcome"),
        CheckConstraint(
            "outcome IS NULL OR scope IN ('storage', 'all')", name="outcome_for_storage"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    scope: Mapped[Code]
    substudy_id: Mapped[int | None] = mapped_column(ForeignKey("substudy.id"))
    withdrawn_on: Mapped[dt.date]
    requested_by: Mapped[Code]
    reason: Mapped[Str200 | None]
    # For a withdrawal that ends storage: destroy or anonymise the tubes; None otherwise.
    outcome: Mapped[Code | None]
    recorded_by: Mapped[Str64]
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    substudy: Mapped[Substudy | None] = relationship(lazy="joined")

    @property
    def scope_code(self) -> str:
        """ "storage", "data", "all", or the sub-study's code."""
        return self.substudy.code if self.substudy else self.scope


class WithdrawalCorrection(Base):
    """A withdrawal recorded in error, corrected (append-only, one per withdrawal).

    The withdrawal stays as it was recorded; its consent entries are replaced by correcting
    entries (``ConsentEntry.corrects_id``) that restore what was in force before it.
    """

    __tablename__ = "consent_withdrawal_correction"

    id: Mapped[int] = mapped_column(primary_key=True)
    withdrawal_id: Mapped[int] = mapped_column(ForeignKey("consent_withdrawal.id"), unique=True)
    reason: Mapped[Str200]
    recorded_by: Mapped[Str64]
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DestructionTask(Base):
    """A tube a technician must take out and destroy after a storage withdrawal."""

    __tablename__ = "destruction_task"
    __table_args__ = (
        UniqueConstraint("withdrawal_id", "aliquot_id"),
        CheckConstraint("completed_at IS NULL OR cancelled_at IS NULL", name="one_ending"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    withdrawal_id: Mapped[int] = mapped_column(ForeignKey("consent_withdrawal.id"))
    aliquot_id: Mapped[int] = mapped_column(ForeignKey("aliquot.id"), index=True)
    # The tube's status when the withdrawal came (re-consent restores only what it blocked).
    blocked_from: Mapped[Code]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[dt.datetime | None]
    completed_by: Mapped[Str64 | None]
    # Re-consent before the tube was destroyed: it goes back into use.
    cancelled_at: Mapped[dt.datetime | None]


class AnonymisationTask(Base):
    """A tube a technician must relabel (its label may carry the study pseudonym) after a
    storage withdrawal whose outcome is anonymise.

    The tube's sample lost its patient when the withdrawal was recorded; this task is the
    last row tying the tube to the withdrawal (and so to the patient): completing it clears
    ``aliquot_id`` and ``barcode``, keeping only that a tube was anonymised, when and by whom.
    """

    __tablename__ = "anonymisation_task"
    __table_args__ = (
        CheckConstraint(
            "(completed_at IS NULL AND aliquot_id IS NOT NULL "
            "AND barcode IS NOT NULL) OR "
            "(completed_at IS NOT NULL AND aliquot_id IS NULL AND barcode IS NULL)",
            name="link_until_done",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    withdrawal_id: Mapped[int] = mapped_column(ForeignKey("consent_withdrawal.id"), index=True)
    aliquot_id: Mapped[int | None] = mapped_column(ForeignKey("aliquot.id"), index=True)
    barcode: Mapped[Str64 | None]
    # The tube's status when the withdrawal came: it goes back to it once relabelled.
    blocked_from: Mapped[Code]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[dt.datetime | None]
    completed_by: Mapped[Str64 | None]


class RecallNotice(Base):
    """A shipped tube whose recipient must be told that consent was withdrawn."""

    __tablename__ = "recall_notice"
    __table_args__ = (UniqueConstraint("withdrawal_id", "aliquot_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    withdrawal_id: Mapped[int] = mapped_column(ForeignKey("consent_withdrawal.id"))
    aliquot_id: Mapped[int] = mapped_column(ForeignKey("aliquot.id"), index=True)
    # Known once the requests domain says which request shipped the tube, and to whom.
    request_reference: Mapped[Str64 | None]
    recipient: Mapped[Str200 | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledged_by: Mapped[Str64 | None]
    destruction_reported_at: Mapped[dt.datetime | None]
    # The withdrawal was corrected as entered in error before the recipient answered: the
    # notice no longer asks anything of anybody.
    cancelled_at: Mapped[dt.datetime | None]


class ReleaseJustification(Base):
    """Which consent entries allowed a tube to be released for a sub-study, and when; or,
    for an anonymised tube, that it was anonymised and the sub-study accepts that."""

    __tablename__ = "release_justification"
    __table_args__ = (
        UniqueConstraint("release_kind", "release_reference", "aliquot_id"),
        CheckConstraint(f"{_in('basis', RELEASE_BASES)}", name="basis"),
        CheckConstraint(
            "(basis = 'consent' AND storage_consent_id IS NOT NULL "
            "AND substudy_consent_id IS NOT NULL) OR "
            "(basis = 'anonymised' AND storage_consent_id IS NULL "
            "AND substudy_consent_id IS NULL)",
            name="basis_entries",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    release_kind: Mapped[Code]
    release_reference: Mapped[Str64]
    aliquot_id: Mapped[int] = mapped_column(ForeignKey("aliquot.id"), index=True)
    substudy_id: Mapped[int] = mapped_column(ForeignKey("substudy.id"))
    basis: Mapped[Code] = mapped_column(default="consent")
    storage_consent_id: Mapped[int | None] = mapped_column(ForeignKey("consent_entry.id"))
    substudy_consent_id: Mapped[int | None] = mapped_column(ForeignKey("consent_entry.id"))
    released_at: Mapped[dt.datetime]
    actor: Mapped[Str64]

    @property
    def consent_entry_ids(self) -> list[int]:
        """The consent entries that allowed the release (none for an anonymised tube)."""
        return [i for i in (self.storage_consent_id, self.substudy_consent_id) if i is not None]
