"""The scan: resolve any code this service knows, in a fixed number of queries."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, bindparam, case, lambda_stmt, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from biobank.auth import scope
from biobank.auth.service import asker_column, asker_of
from biobank.consent import rule
from biobank.consent.gate import anonymised_card, card_of, patient_card, sample_anonymised_card
from biobank.consent.models import ConsentEntry
from biobank.custody.service import events_of, recent_events_column, sample_events
from biobank.errors import NotFound
from biobank.patients.models import Patient
from biobank.reference.models import AliquotType, Material, Site, Timepoint
from biobank.samples.models import Aliquot, Sample
from biobank.samples.service import Numbering, check_code
from biobank.storage.location import location_columns, location_of, scan_container


def _card_query() -> Select[Any]:
    """The whole card of a tube in one statement, built once: the tube by barcode with its
    sample, patient, timepoint, material, type and parent, and, as JSON values, where it
    is, its condition notes, its patient's consent log and its last events (each domain
    gives its own column), and the owner of the bearer token the API checks in this same
    statement. Parameters: ``code``, ``recent`` and ``token_hash`` (None: not asked)."""
    a, s, p = Aliquot.__table__, Sample.__table__, Patient.__table__
    t, m, k = Timepoint.__table__, Material.__table__, AliquotType.__table__
    enrolled = Site.__table__.alias("enrolled_at")
    parent = a.alias("parent")
    code = bindparam("code")
    where = location_columns(a.c.id, code)
    return (
        select(
            a.c.id,
            a.c.barcode,
            a.c.status,
            a.c.volume_remaining_ml,
            a.c.cell_count,
            a.c.freeze_thaw_count,
            a.c.sprec_code,
            s.c.barcode.label("sample"),
            p.c.study_id,
            p.c.risk_group,
            enrolled.c.code.label("enrolled_at"),
            t.c.code.label("timepoint"),
            m.c.code.label("material"),
            k.c.code.label("aliquot_type"),
            k.c.name.label("aliquot_type_name"),
            parent.c.barcode.label("parent"),
            *(column.label(name) for name, column in where.items()),
            rule.log_column(ConsentEntry.patient_id == p.c.id).label("consent_log"),
            rule.majority_day_of(p.c).label("of_age"),
            # Only read for an anonymised tube (no patient): CASE skips it otherwise.
            case((p.c.id.is_(None), rule.anonymised_takers())).label("anonymised_takers"),
            recent_events_column(a.c.id).label("recent_events"),
            asker_column(bindparam("token_hash")).label("asker"),
        )
        .select_from(
            a.join(s, s.c.id == a.c.sample_id)
            .outerjoin(p, p.c.id == s.c.patient_id)
            .outerjoin(enrolled, enrolled.c.id == p.c.site_id)
            .join(m, m.c.id == s.c.material_id)
            .join(k, k.c.id == a.c.aliquot_type_id)
            .outerjoin(t, t.c.id == s.c.timepoint_id)
            .outerjoin(parent, parent.c.id == a.c.parent_aliquot_id)
        )
        .where(a.c.barcode == code)
    )


_CARD_SELECT = _card_query()
# As a lambda statement SQLAlchemy finds the compiled SQL under a key of this line, instead
# of hashing the whole statement tree on every execution (a part of each scan worth saving).
# The lambda reads a module global, which SQLAlchemy does not track: the statement is fixed.
_CARD = lambda_stmt(lambda: _CARD_SELECT)


def _in_iso(place: dict[str, Any]) -> dict[str, Any]:
    """Location and conditions with their times in ISO 8601 (the card's ``location`` is free
    form: a box or freezer scan shows other keys)."""
    location = place["location"]
    if location is not None and location["taken_out_at"] is not None:
        location["taken_out_at"] = location["taken_out_at"].isoformat()
    for note in place["conditions"]:
        note["recorded_at"] = note["recorded_at"].isoformat()
    return place


def scan(session: Session, raw_code: str, numbering: Numbering, recent: int = 5) -> dict[str, Any]:
    """What a technician needs at a glance about a scanned tube.

    One statement for an aliquot (``aliquot_card``: the scan is the busiest request of a
    biobank), two more when the code is a sample's, two or three for a box or container.
    """
    code = check_code(raw_code, numbering)
    card = aliquot_card(session.connection(), code, recent)
    if card is None:
        return other_card(session, code, recent)
    return in_scope(card, scope.of(session))


def in_scope(card: dict[str, Any], within: scope.Scope) -> dict[str, Any]:
    """An aliquot's card if the tube is at one of the scope's sites; else a 404 saying only
    that it is not at the asker's site (the card was read in the same statement)."""
    stored_at, enrolled_at = card.pop("site")
    if not within.admits_tube(stored_at, enrolled_at):
        raise NotFound(f"tube {card['barcode']} is not at your site")
    return card


def aliquot_card(
    connection: Connection, code: str, recent: int = 5, token_hash: str | None = None
) -> dict[str, Any] | None:
    """An aliquot's card in one statement (None: no aliquot has this checked code). With
    ``token_hash`` it carries ``asker``: that token's owner, or None
    (``biobank.auth.web.checks_token_itself``)."""
    tube = connection.execute(
        _CARD, {"code": code, "recent": recent, "token_hash": token_hash}
    ).first()
    if tube is None:
        return None
    asker = {"asker": asker_of(tube.asker)} if token_hash is not None else {}
    place = location_of(tube.location_nodes, tube.location_conditions)
    stored_at = max(tube.location_nodes or (), key=lambda n: n["depth"], default={"site": None})[
        "site"
    ]
    return {
        **asker,
        "kind": "aliquot",
        "barcode": tube.barcode,
        "study_id": tube.study_id,
        "risk_group": tube.risk_group,
        "timepoint": tube.timepoint,
        "material": tube.material,
        "aliquot_type": tube.aliquot_type,
        "aliquot_type_name": tube.aliquot_type_name,
        "volume_ml": tube.volume_remaining_ml,
        "cell_count": tube.cell_count,
        "status": tube.status,
        "freeze_thaw_count": tube.freeze_thaw_count,
        "sample": tube.sample,
        "parent": tube.parent,
        "sprec_code": tube.sprec_code,
        **_in_iso(place),
        "consent": (
            anonymised_card(tube.anonymised_takers)
            if tube.study_id is None
            else card_of(tube.consent_log, tube.of_age, tube.status)
        ),
        "recent_events": events_of(tube.recent_events),
        # Where the tube belongs (biobank.auth.scope), popped by ``in_scope``.
        "site": (stored_at, tube.enrolled_at),
    }


def other_card(session: Session, code: str, recent: int = 5) -> dict[str, Any]:
    """The card of a checked code that is no aliquot's: a sample, a box, rack or freezer,
    or NotFound."""
    sample = session.scalar(
        select(Sample).where(
            Sample.barcode == code, scope.sample_filter(scope.of(session), Sample.id)
        )
    )
    if sample is None:
        return scan_container(session, code)  # storage: a box, rack or freezer; else 404
    return {
        "kind": "sample",
        "barcode": sample.barcode,
        "study_id": sample.patient.study_id if sample.patient else None,
        "risk_group": sample.patient.risk_group if sample.patient else None,
        "timepoint": sample.timepoint.code if sample.timepoint else None,
        "material": sample.material.code,
        "aliquot_type": None,
        "aliquot_type_name": None,
        "volume_ml": sample.volume_remaining_ml,
        "cell_count": None,
        "status": "received",
        "freeze_thaw_count": 0,
        "sample": sample.barcode,
        "parent": None,
        "sprec_code": None,
        "location": None,
        "consent": (
            sample_anonymised_card(session)
            if sample.patient_id is None  # 1 query
            else patient_card(session, sample.patient_id, "received")
        ),
        "recent_events": sample_events(session, sample.id)[-recent:][::-1],
    }
