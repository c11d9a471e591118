"""For inspectors: verifying the hash chains, and exporting custody histories.

Verification streams events in id order (the chains interleave) and keeps only the last
hash of each chain, reading the JSON values as the text the database stores, so it needs
no JSON parsing on the normal path.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Text, cast, func, select
from sqlalchemy.orm import Session, aliased

from biobank.custody.chain import ChainCheck
from biobank.custody.models import CustodyEvent
from biobank.samples.models import Aliquot, Sample

_STREAM = 10_000


@dataclass
class Broken:
    """The first event found broken, and what is wrong with it."""

    event_id: int
    aliquot: str | None
    sample: str | None
    problem: str

    def describe(self) -> str:
        """One line naming the event and the tube."""
        tube = (f"aliquot {self.aliquot}" if self.aliquot else
                f"sample {self.sample}" if self.sample else "no tube")
        return f"event {self.event_id} ({tube}): {self.problem}"


@dataclass
class Verification:
    """How many events were checked, and the first broken one if any."""

    checked: int
    chains: int
    broken: Broken | None

    @property
    def ok(self) -> bool:
        """Whether every chain checked is intact."""
        return self.broken is None


def _rows(where: Any = None) -> Select[Any]:
    e = CustodyEvent
    query = select(e.id, e.aliquot_id, e.sample_id, e.event_type, e.actor, e.occurred_at,
                   e.reason, cast(e.old_values, Text), cast(e.new_values, Text), e.prev_hash,
                   e.hash).order_by(e.id)
    return query if where is None else query.where(where)


def _walk(session: Session, query: Select[Any],
          progress: Callable[[int], None] | None = None) -> Verification:
    checker = ChainCheck()
    check = checker.check
    result = session.execute(query.execution_options(yield_per=_STREAM))
    for partition in result.partitions():
        for (event_id, aliquot_id, sample_id, event_type, actor, occurred_at, reason, old,
             new, prev_hash, digest) in partition:
            problem = check(aliquot_id, sample_id, event_type, actor, occurred_at, reason,
                            old, new, prev_hash, digest)
            if problem is not None:
                result.close()
                return Verification(checker.checked, len(checker.heads),
                                    _broken(session, event_id, aliquot_id, sample_id, problem))
        if progress is not None:
            progress(len(partition))
    return Verification(checker.checked, len(checker.heads), None)


def _broken(session: Session, event_id: int, aliquot_id: int | None, sample_id: int | None,
            problem: str) -> Broken:
    aliquot = session.scalar(select(Aliquot.barcode).where(Aliquot.id == aliquot_id)) \
        if aliquot_id is not None else None
    sample = session.scalar(select(Sample.barcode).where(Sample.id == sample_id)) \
        if sample_id is not None else None
    return Broken(event_id, aliquot, sample, problem)


def count_events(session: Session) -> int:
    """How many custody events there are (for a progress bar)."""
    return session.scalar(select(func.count()).select_from(CustodyEvent)) or 0


def verify_all(session: Session, progress: Callable[[int], None] | None = None) -> Verification:
    """Walk every chain; stop at the first broken event."""
    return _walk(session, _rows(), progress)


def verify_aliquot(session: Session, aliquot_id: int) -> Verification:
    """Walk one tube's chain."""
    return _walk(session, _rows(CustodyEvent.aliquot_id == aliquot_id))


def verify_sample(session: Session, sample_id: int) -> Verification:
    """Walk a sample's own chain (its events without an aliquot)."""
    return _walk(session, _rows((CustodyEvent.sample_id == sample_id)
                                & CustodyEvent.aliquot_id.is_(None)))


# --- export ------------------------------------------------------------------------------

COLUMNS = ("id", "aliquot", "sample", "event_type", "actor", "occurred_at", "reason",
           "old_values", "new_values", "prev_hash", "hash")


def _export_query(where: Any) -> Select[Any]:
    e = CustodyEvent
    tube = aliased(Aliquot)
    own = aliased(Sample)
    tube_sample = aliased(Sample)
    return (select(e.id, tube.barcode, func.coalesce(own.barcode, tube_sample.barcode),
                   e.event_type, e.actor, e.occurred_at, e.reason, e.old_values, e.new_values,
                   e.prev_hash, e.hash)
            .outerjoin(tube, tube.id == e.aliquot_id)
            .outerjoin(tube_sample, tube_sample.id == tube.sample_id)
            .outerjoin(own, own.id == e.sample_id)
            .where(where).order_by(e.id))


def aliquot_history(aliquot_id: int) -> Select[Any]:
    """The select behind a tube's full custody history."""
    return _export_query(CustodyEvent.aliquot_id == aliquot_id)


def events_between(start: dt.datetime, end: dt.datetime) -> Select[Any]:
    """The select behind every event with start <= occurred_at < end."""
    return _export_query((CustodyEvent.occurred_at >= start) & (CustodyEvent.occurred_at < end))


def _records(session: Session, query: Select[Any]) -> Iterator[dict[str, Any]]:
    for partition in session.execute(query.execution_options(yield_per=_STREAM)).partitions():
        for row in partition:
            record = dict(zip(COLUMNS, row, strict=True))
            record["occurred_at"] = record["occurred_at"].isoformat()
            yield record


def csv_lines(session: Session, query: Select[Any]) -> Iterator[str]:
    """The events as CSV (header first), a chunk of lines at a time; values as JSON."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for count, record in enumerate(_records(session, query), start=1):
        for key in ("old_values", "new_values"):
            value = record[key]
            record[key] = "" if value is None else json.dumps(value, sort_keys=True)
        writer.writerow(record.values())
        if count % 1000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def json_chunks(session: Session, query: Select[Any], header: dict[str, Any]) -> Iterator[str]:
    """The events as one JSON document: ``header`` plus an "events" list, streamed."""
    head = json.dumps(header, sort_keys=True)
    yield head[:-1] + (", " if header else "") + '"events": ['
    for count, record in enumerate(_records(session, query)):
        yield ("," if count else "") + "\n" + json.dumps(record, sort_keys=True)
    yield "\n]}\n"
