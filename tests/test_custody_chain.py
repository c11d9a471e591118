"""Tamper evidence: every custody event is hash-chained; the database refuses edits; verify
finds an event changed by someone who got around the database's refusal."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from biobank.custody import audit, chain
from biobank.custody.models import CustodyEvent
from biobank.custody.service import record_event, record_events
from biobank.samples import service as samples

APPEND_ONLY_SQLITE = """CREATE TRIGGER custody_event_no_{verb} BEFORE {VERB} ON custody_event
BEGIN SELECT RAISE(ABORT, 'custody events are append-only'); END"""


def around_the_guard(session, statement: str, **params) -> None:  # type: ignore[no-untyped-def]
    """Run a statement the way a database owner could: triggers off, then on again.

    Inside the test's transaction, so it is all rolled back afterwards.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ALTER TABLE custody_event DISABLE TRIGGER USER"))
        session.execute(text(statement), params)
        session.execute(text("ALTER TABLE custody_event ENABLE TRIGGER USER"))
    else:
        for verb in ("update", "delete"):
            session.execute(text(f"DROP TRIGGER custody_event_no_{verb}"))
        session.execute(text(statement), params)
        for verb in ("update", "delete"):
            session.execute(text(APPEND_ONLY_SQLITE.format(verb=verb, VERB=verb.upper())))


def events_of(session, aliquot):  # type: ignore[no-untyped-def]
    """An aliquot's events, oldest first."""
    return list(
        session.scalars(
            select(CustodyEvent)
            .where(CustodyEvent.aliquot_id == aliquot.id)
            .order_by(CustodyEvent.id)
        )
    )


@pytest.fixture
def tube(make_aliquots, session):  # type: ignore[no-untyped-def]
    """An aliquot with three events: aliquoted, blocked, made available."""
    aliquot = make_aliquots(n=2)[0]
    samples.change_status(session, "tech-a", aliquot, "blocked", "haemolysed?")
    samples.change_status(session, "tech-b", aliquot, "available")
    session.commit()
    return aliquot


def test_every_event_links_to_the_one_before_in_its_chain(tube, session):
    """The first event links to the chain's genesis, each next one to its predecessor."""
    events = events_of(session, tube)
    assert [e.event_type for e in events] == ["aliquoted", "blocked", "unblocked"]
    assert events[0].prev_hash == chain.genesis(f"a{tube.id}")
    assert events[1].prev_hash == events[0].hash
    assert events[2].prev_hash == events[1].hash
    assert len({e.hash for e in events}) == 3


def test_a_samples_own_events_form_their_own_chain(tube, session):
    """Receipt and split of the sample are chained per sample."""
    own = list(
        session.scalars(
            select(CustodyEvent)
            .where(CustodyEvent.sample_id == tube.sample_id, CustodyEvent.aliquot_id.is_(None))
            .order_by(CustodyEvent.id)
        )
    )
    assert [e.event_type for e in own] == ["received", "split"]
    assert own[0].prev_hash == chain.genesis(f"s{tube.sample_id}")
    assert own[1].prev_hash == own[0].hash


def test_an_intact_tube_verifies(tube, tech):
    """GET …/events/verify walks the tube's chain."""
    response = tech.get(f"/api/v1/aliquots/{tube.barcode}/events/verify")
    assert response.status_code == 200
    assert response.json == {"ok": True, "checked": 3, "broken": None}
    sample = tech.get(f"/api/v1/samples/{tube.sample.barcode}/events/verify").json
    assert sample["ok"] is True and sample["checked"] == 2


def test_the_hash_survives_the_round_trip_through_the_database(make_aliquots, session, tech):
    """Decimals, dates, other time zones, nested values and non-ASCII text verify after
    being stored and read back."""
    aliquot = make_aliquots(n=1)[0]
    cest = dt.timezone(dt.timedelta(hours=2))
    record_events(
        session,
        [
            {
                "event_type": "noted",
                "aliquot_id": aliquot.id,
                "reason": "Überprüfung — ok",
                "old_values": {"volume_ml": Decimal("0.500"), "when": dt.date(2026, 1, 2)},
                "new_values": {"z": [1, 2.5, None, {"b": True, "a": "é"}], "a": {"y": 1, "x": 2}},
            }
        ],
        "tëch",
        at=dt.datetime(2026, 5, 6, 7, 8, 9, 123, tzinfo=cest),
    )
    record_event(session, "tech", "noted", aliquot_id=aliquot.id)  # no values, no reason
    session.commit()
    session.expire_all()
    result = tech.get(f"/api/v1/aliquots/{aliquot.barcode}/events/verify").json
    assert result == {"ok": True, "checked": 3, "broken": None}
    # The text the database assembles for the hash is exactly the service's canonical form.
    assert audit.verify_aliquot(session, aliquot.id).looked_at == 0


def test_a_value_stored_with_other_spacing_or_key_order_is_not_an_alteration(tube, session):
    """Same content, spelled differently (as a JSONB column or another tool would): the
    closer look accepts it."""
    target = events_of(session, tube)[1]
    around_the_guard(
        session,
        "UPDATE custody_event SET new_values = :value WHERE id = :id",
        value='{ "status" :"blocked" }',
        id=target.id,
    )
    result = audit.verify_aliquot(session, tube.id)
    assert result.ok and result.looked_at == 1


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("reason", "nothing happened"),
        ("actor", "someone-else"),
        ("new_values", '{"status": "destroyed"}'),
        ("occurred_at", "2020-01-01 00:00:00.000000"),
        ("event_type", "found"),
    ],
)
def test_a_deliberately_edited_event_is_caught(tube, session, tech, runner, column, value):
    """Someone with the database owner's rights rewrites an event: verify names it."""
    target = events_of(session, tube)[1]
    around_the_guard(
        session,
        f"UPDATE custody_event SET {column} = :value WHERE id = :id",
        value=value,
        id=target.id,
    )
    session.commit()
    result = tech.get(f"/api/v1/aliquots/{tube.barcode}/events/verify").json
    assert result["ok"] is False
    assert result["broken"]["event_id"] == target.id
    assert result["broken"]["aliquot"] == tube.barcode
    assert "altered" in result["broken"]["problem"]
    cli = runner.invoke(args=["custody", "verify", "--quiet"])
    assert cli.exit_code == 1
    assert f"event {target.id} (aliquot {tube.barcode})" in cli.output


def test_a_removed_event_breaks_the_link_of_the_next(tube, session, tech, runner):
    """Deleting an event from the middle of a chain is found at the event after it."""
    first, middle, last = events_of(session, tube)
    around_the_guard(session, "DELETE FROM custody_event WHERE id = :id", id=middle.id)
    session.commit()
    result = tech.get(f"/api/v1/aliquots/{tube.barcode}/events/verify").json
    assert result["broken"]["event_id"] == last.id
    assert "removed, inserted or reordered" in result["broken"]["problem"]
    assert runner.invoke(args=["custody", "verify", "--quiet"]).exit_code == 1


def test_a_forged_event_with_a_made_up_hash_is_caught(tube, session, tech):
    """An event appended around the service, linked to the head but with a wrong hash."""
    head = events_of(session, tube)[-1]
    session.execute(
        insert(CustodyEvent).values(
            aliquot_id=tube.id,
            event_type="destroyed",
            actor="mallory",
            occurred_at=dt.datetime.now(dt.UTC),
            prev_hash=head.hash,
            hash="0" * 64,
        )
    )
    session.commit()
    result = tech.get(f"/api/v1/aliquots/{tube.barcode}/events/verify").json
    assert result["ok"] is False and "altered" in result["broken"]["problem"]


def test_a_removed_first_event_leaves_the_next_unlinked_to_the_genesis(tube, session):
    """Deleting the first event of a chain is found at the event after it."""
    first, second, _ = events_of(session, tube)
    around_the_guard(session, "DELETE FROM custody_event WHERE id = :id", id=first.id)
    result = audit.verify_all(session)
    assert result.broken is not None and result.broken.event_id == second.id
    assert "removed, inserted or reordered" in result.broken.problem


def test_a_reordered_event_breaks_the_link_of_the_one_now_after_it(tube, session, tech):
    """An event given a later id (moved to the end of its chain) breaks the chain's order."""
    _, middle, last = events_of(session, tube)
    around_the_guard(
        session,
        "UPDATE custody_event SET id = :new WHERE id = :id",
        new=last.id + 1000,
        id=middle.id,
    )
    session.commit()
    result = tech.get(f"/api/v1/aliquots/{tube.barcode}/events/verify").json
    assert result["broken"]["event_id"] == last.id
    assert "removed, inserted or reordered" in result["broken"]["problem"]


def test_an_edited_event_of_a_samples_own_chain_is_caught_by_the_full_walk(tube, session):
    """The walk over every chain reads the samples' own chains too."""
    received = session.scalars(
        select(CustodyEvent)
        .where(CustodyEvent.sample_id == tube.sample_id, CustodyEvent.aliquot_id.is_(None))
        .order_by(CustodyEvent.id)
    ).first()
    around_the_guard(
        session, "UPDATE custody_event SET reason = 'lost' WHERE id = :id", id=received.id
    )
    result = audit.verify_all(session)
    assert result.broken is not None and result.broken.event_id == received.id
    assert result.broken.sample == tube.sample.barcode and result.broken.aliquot is None
    assert "altered" in result.broken.problem


def test_of_several_broken_chains_the_oldest_broken_event_is_named(make_aliquots, session):
    """The chains are walked one after another, yet the event named is the oldest broken
    one, and "checked" counts the events up to it, as a walk in id order would."""
    first_tube, second_tube = make_aliquots(n=2)
    record_event(session, "tech", "checked", aliquot_id=first_tube.id)
    session.commit()
    late = events_of(session, first_tube)[-1]
    early = events_of(session, second_tube)[0]
    assert first_tube.id < second_tube.id and early.id < late.id
    for target in (late, early):
        around_the_guard(
            session, "UPDATE custody_event SET actor = 'mallory' WHERE id = :id", id=target.id
        )
    result = audit.verify_all(session)
    assert result.broken is not None and result.broken.event_id == early.id
    assert result.checked == session.scalar(
        select(func.count()).select_from(CustodyEvent).where(CustodyEvent.id <= early.id)
    )


def test_the_cli_walks_every_chain(tube, runner):
    """`custody verify` reports every event intact and exits 0."""
    result = runner.invoke(args=["custody", "verify"])
    assert result.exit_code == 0, result.output
    assert "ok:" in result.output and "intact" in result.output


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE custody_event SET reason = 'rewritten' WHERE id = :id",
        "DELETE FROM custody_event WHERE id = :id",
    ],
)
def test_the_database_refuses_to_update_or_delete_an_event(tube, session, statement):
    """The triggers refuse UPDATE and DELETE on custody_event, on SQLite and PostgreSQL."""
    target = events_of(session, tube)[0]
    with pytest.raises(DBAPIError, match="append-only"):
        with session.begin_nested():
            session.execute(text(statement), {"id": target.id})
    session.expire_all()
    assert session.get(CustodyEvent, target.id).reason is None


def test_the_database_refuses_a_fork_in_a_chain(tube, session):
    """A second event linking to the same predecessor is refused by a unique index."""
    head = events_of(session, tube)[-1]
    with pytest.raises(IntegrityError):
        with session.begin_nested():
            session.execute(
                insert(CustodyEvent).values(
                    aliquot_id=tube.id,
                    event_type="forked",
                    actor="x",
                    occurred_at=dt.datetime.now(dt.UTC),
                    prev_hash=head.prev_hash,
                    hash="f" * 64,
                )
            )


def test_an_event_without_a_hash_cannot_be_stored(tube, session):
    """prev_hash and hash are required columns."""
    with pytest.raises(IntegrityError):
        with session.begin_nested():
            session.execute(
                insert(CustodyEvent).values(
                    aliquot_id=tube.id,
                    event_type="sneaked",
                    actor="x",
                    occurred_at=dt.datetime.now(dt.UTC),
                )
            )


def test_bulk_recording_reads_all_chain_heads_in_one_query(make_aliquots, session, count_queries):
    """Recording events for many tubes costs one head query and one insert."""
    tubes = make_aliquots(n=20, volume="0.1")
    with count_queries() as counted:
        record_events(
            session,
            [{"event_type": "checked", "aliquot_id": t.id} for t in tubes]
            + [{"event_type": "checked", "sample_id": tubes[0].sample_id}],
            "tech",
        )
    selects = [
        s
        for s in counted.statements
        if s.lstrip().upper().startswith("SELECT") and "pg_advisory" not in s
    ]
    assert len(selects) == 1
    assert audit.verify_all(session).ok
