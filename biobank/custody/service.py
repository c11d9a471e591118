"""Appending custody events and audit records; reading a tube's history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, bindparam, func, select, text, union_all
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from biobank.bulk import insert_rows
from biobank.custody import chain
from biobank.custody.models import AuditRecord, CustodyEvent
from biobank.db import json_rows, json_timestamp, json_value, utcnow
from biobank.errors import Conflict


def jsonable(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Values as JSON can hold them: decimals and dates become strings."""
    if values is None:
        return None
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, dt.date | dt.datetime):
            value = value.isoformat()
        out[key] = value
    return out


def record_events(
    session: Session,
    events: Iterable[Mapping[str, Any]],
    actor: str,
    at: dt.datetime | None = None,
    *,
    new_chains: bool = False,
) -> None:
    """Append many custody events in one statement, each linked into its chain.

    Each mapping holds ``event_type`` and one of ``aliquot_id`` / ``sample_id``, and
    optionally ``reason``, ``old_values`` and ``new_values``. The chains involved are
    locked (PostgreSQL) and their last hashes read in one query before the insert, unless
    the caller says ``new_chains``: every tube named was inserted in this transaction and
    has no event yet (no other transaction can see it, so there is nothing to lock or
    read). Should that be wrong, the unique index on ``prev_hash`` refuses the second link
    to the chain's genesis.
    """
    canonical = chain.canonical_json
    # The JSON values are serialized once, to the canonical text the column stores and the
    # hash covers.
    events_in = []
    for e in events:
        aliquot_id, sample_id = e.get("aliquot_id"), e.get("sample_id")
        if aliquot_id is None and sample_id is None:
            raise ValueError("a custody event needs an aliquot_id or a sample_id")
        events_in.append(
            (
                aliquot_id,
                sample_id,
                e["event_type"],
                e.get("reason"),
                canonical(e.get("old_values")),
                canonical(e.get("new_values")),
            )
        )
    append_events(session, events_in, actor, at, new_chains=new_chains)


# An event as append_events takes it: aliquot_id, sample_id, event_type, reason, and the old
# and new values as their canonical JSON text (chain.canonical_json).
CanonicalEvent = tuple[int | None, int | None, str, str | None, str, str]


def append_events(
    session: Session,
    events: list[CanonicalEvent],
    actor: str,
    at: dt.datetime | None = None,
    *,
    new_chains: bool = False,
) -> None:
    """``record_events`` for values already serialized by ``chain.canonical_json`` (or to
    the very same text): a bulk writer that knows its values' shape saves the encoding."""
    if not events:
        return
    at = (at or utcnow()).astimezone(dt.UTC)
    stamp = chain.timestamp(at)
    dialect = session.get_bind().dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise NotImplementedError(
            f"custody events are written for SQLite and PostgreSQL, not {dialect}"
        )
    # What the column keeps: the text itself in SQLite, a naive UTC timestamp in PostgreSQL.
    when = stamp if dialect == "sqlite" else at.replace(tzinfo=None)
    session.flush()  # the tubes the events name may still be pending in the session
    heads = (
        {}
        if new_chains
        else _lock_and_read_heads(
            session, {e[0] for e in events} - {None}, {e[1] for e in events if e[0] is None}
        )
    )
    link = chain.linker(actor, stamp)
    genesis = chain.genesis
    rows = []
    for aliquot_id, sample_id, event_type, reason, old, new in events:
        if aliquot_id is not None:  # chain.chain_key
            key = f"a{aliquot_id}"
        elif sample_id is not None:
            key = f"s{sample_id}"
        else:
            raise ValueError("a custody event needs an aliquot_id or a sample_id")
        prev = heads.get(key) or genesis(key)
        digest = heads[key] = link(key, event_type, reason, old, new, prev)
        rows.append(
            (aliquot_id, sample_id, event_type, actor, when, reason, old, new, prev, digest)
        )
    insert_rows(
        session.connection(),
        "custody_event",
        _EVENT_COLUMNS,
        rows,
        json_columns=("old_values", "new_values"),
    )


_EVENT_COLUMNS = (
    "aliquot_id",
    "sample_id",
    "event_type",
    "actor",
    "occurred_at",
    "reason",
    "old_values",
    "new_values",
    "prev_hash",
    "hash",
)


# Advisory-lock key spaces (pg_advisory_xact_lock(space, id)) for the two kinds of chain.
_ALIQUOT_CHAINS = 0x43550001
_SAMPLE_CHAINS = 0x43550002
_IN_CHUNK = 5000


def _lock_and_read_heads(
    session: Session, aliquot_ids: set[int], sample_ids: set[int]
) -> dict[str, str]:
    """Lock the chains (PostgreSQL), then read the hash of each one's last event.

    Transactions appending to the same chain queue on its lock, in one global order (so
    they cannot deadlock on each other), and each reads the head the previous one wrote.
    SQLite has one writer at a time. Should anything slip through, the unique index on
    ``prev_hash`` refuses the fork.
    """
    if session.get_bind().dialect.name == "postgresql":
        spaces = ([_ALIQUOT_CHAINS] * len(aliquot_ids)) + ([_SAMPLE_CHAINS] * len(sample_ids))
        objects = sorted(aliquot_ids) + sorted(sample_ids)
        try:
            session.execute(
                text(
                    "SELECT pg_advisory_xact_lock(s, o) FROM "
                    "unnest(CAST(:spaces AS integer[]), CAST(:objects AS integer[])) AS t(s, o)"
                ),
                {"spaces": spaces, "objects": objects},
            )
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == "40P01":  # deadlock_detected
                raise Conflict(
                    "another change to the same tubes got in the way; try again"
                ) from exc
            raise
    heads: dict[str, str] = {}
    aliquots, samples = sorted(aliquot_ids), sorted(sample_ids)
    for start in range(0, max(len(aliquots), len(samples)), _IN_CHUNK):
        parts = []
        chunk = aliquots[start : start + _IN_CHUNK]
        if chunk:
            parts.append(
                select(func.max(CustodyEvent.id))
                .where(CustodyEvent.aliquot_id.in_(chunk))
                .group_by(CustodyEvent.aliquot_id)
            )
        chunk = samples[start : start + _IN_CHUNK]
        if chunk:
            parts.append(
                select(func.max(CustodyEvent.id))
                .where(CustodyEvent.sample_id.in_(chunk), CustodyEvent.aliquot_id.is_(None))
                .group_by(CustodyEvent.sample_id)
            )
        last_ids = parts[0] if len(parts) == 1 else union_all(*parts)
        for aliquot_id, sample_id, digest in session.execute(
            select(CustodyEvent.aliquot_id, CustodyEvent.sample_id, CustodyEvent.hash).where(
                CustodyEvent.id.in_(last_ids)
            )
        ):
            heads[chain.chain_key(aliquot_id, sample_id)] = digest
    return heads


def record_event(
    session: Session,
    actor: str,
    event_type: str,
    *,
    aliquot_id: int | None = None,
    sample_id: int | None = None,
    reason: str | None = None,
    old_values: Mapping[str, Any] | None = None,
    new_values: Mapping[str, Any] | None = None,
) -> None:
    """Append one custody event."""
    record_events(
        session,
        [
            {
                "event_type": event_type,
                "aliquot_id": aliquot_id,
                "sample_id": sample_id,
                "reason": reason,
                "old_values": old_values,
                "new_values": new_values,
            }
        ],
        actor,
    )


def record_audit(
    session: Session,
    actor: str,
    entity_type: str,
    entity_key: str,
    action: str,
    *,
    reason: str | None = None,
    old_values: Mapping[str, Any] | None = None,
    new_values: Mapping[str, Any] | None = None,
) -> None:
    """Append an audit record for a change that is not a custody event."""
    session.add(
        AuditRecord(
            entity_type=entity_type,
            entity_key=entity_key,
            action=action,
            actor=actor,
            reason=reason,
            old_values=jsonable(old_values),
            new_values=jsonable(new_values),
        )
    )


def aliquot_events(
    session: Session, aliquot_id: int, limit: int | None = None, newest_first: bool = False
) -> list[CustodyEvent]:
    """An aliquot's custody events, oldest first unless asked otherwise."""
    order = CustodyEvent.id.desc() if newest_first else CustodyEvent.id
    query = select(CustodyEvent).where(CustodyEvent.aliquot_id == aliquot_id).order_by(order)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def recent_events_column(aliquot_id: ColumnElement[int]) -> ScalarSelect[Any]:
    """A tube's last ``:recent`` events as one JSON value of the enclosing statement (read
    back by ``events_of``); ``aliquot_id`` is the tube's id column there."""
    table = CustodyEvent.__table__
    last = (
        select(
            table.c.id,
            table.c.event_type,
            table.c.actor,
            table.c.occurred_at,
            table.c.reason,
            table.c.old_values,
            table.c.new_values,
            table.c.prev_hash,
            table.c.hash,
        )
        .where(table.c.aliquot_id == aliquot_id)
        .correlate_except(table)
        .order_by(table.c.id.desc())
        .limit(bindparam("recent"))
        .subquery("last_events")
    )
    return select(
        json_rows(
            id=last.c.id,
            event_type=last.c.event_type,
            actor=last.c.actor,
            occurred_at=last.c.occurred_at,
            reason=last.c.reason,
            old_values=json_value(last.c.old_values),
            new_values=json_value(last.c.new_values),
            prev_hash=last.c.prev_hash,
            hash=last.c.hash,
        )
    ).scalar_subquery()


def events_of(rows: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The events of ``recent_events_column``, newest first, with aware timestamps."""
    events = sorted(rows or (), key=lambda e: -e["id"])
    for event in events:
        event["occurred_at"] = json_timestamp(event["occurred_at"])
    return events


def sample_events(session: Session, sample_id: int) -> list[CustodyEvent]:
    """A sample's own custody events (not its aliquots'), oldest first."""
    return list(
        session.scalars(
            select(CustodyEvent)
            .where(CustodyEvent.sample_id == sample_id, CustodyEvent.aliquot_id.is_(None))
            .order_by(CustodyEvent.id)
        )
    )


def audit_trail(session: Session, entity_type: str, entity_key: str) -> list[AuditRecord]:
    """An entity's audit records, oldest first."""
    return list(
        session.scalars(
            select(AuditRecord)
            .where(AuditRecord.entity_type == entity_type, AuditRecord.entity_key == entity_key)
            .order_by(AuditRecord.id)
        )
    )
