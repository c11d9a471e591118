"""The hash chain over custody events: the canonical form of an event and its hash.

Each aliquot's events form one chain, and each sample's own events (those without an
aliquot) another. An event's ``hash`` is SHA-256 over its content and ``prev_hash``, the
hash of the event before it in the same chain; the first event of a chain links to the
chain's genesis value. The canonical form below is frozen: changing it breaks every chain
already stored, so a new form would need a new column and a migration.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

_sha256 = hashlib.sha256


def chain_key(aliquot_id: int | None, sample_id: int | None) -> str:
    """The chain an event belongs to: its aliquot's, else its sample's own."""
    return f"a{aliquot_id}" if aliquot_id is not None else f"s{sample_id}"


def genesis(key: str) -> str:
    """The value the first event of a chain links to (distinct per chain, so no two
    chains ever share a ``prev_hash``)."""
    return _sha256(f"biobank-custody-genesis:{key}".encode()).hexdigest()


def sorted_values(value: Any) -> Any:
    """JSON values with every object's keys in sorted order (the migration that chained
    the events stored before the chain existed uses it)."""
    if isinstance(value, dict):
        return {key: sorted_values(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [sorted_values(item) for item in value]
    return value


def _plain(value: Any) -> str:
    """What JSON cannot hold, as text: decimals and dates (custody values hold both)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_encode = json.JSONEncoder(sort_keys=True, default=_plain).encode


def canonical_json(value: Any) -> str:
    """The canonical JSON text of old/new values (``null`` for none): keys sorted, default
    separators, non-ASCII escaped; decimals and dates become strings.

    The service stores this very text in the JSON columns, so verifying needs no JSON
    parsing.
    """
    return _encode(value)


def timestamp(moment: dt.datetime) -> str:
    """UTC, to the microsecond, as "YYYY-MM-DD HH:MM:SS.ffffff": what both databases keep
    of ``occurred_at`` (and the very text SQLAlchemy stores in SQLite)."""
    if moment.utcoffset() != dt.timedelta(0):
        moment = moment.astimezone(dt.UTC)
    return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def event_hash(
    key: str,
    event_type: str,
    actor: str,
    stamp: str,
    reason: str | None,
    old_json: str,
    new_json: str,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of an event's canonical form.

    Free-text parts carry their length, so no text can be moved from one field to the
    next without changing the hash; ``reason`` None and "" differ.
    """
    why = "-" if reason is None else f"{len(reason)}:{reason}"
    text = (
        f"{key}|{len(event_type)}:{event_type}|{len(actor)}:{actor}|{stamp}|{why}|"
        f"{len(old_json)}:{old_json}|{len(new_json)}:{new_json}|{prev_hash}"
    )
    return _sha256(text.encode()).hexdigest()


def linker(actor: str, stamp: str) -> Callable[[str, str, str | None, str, str, str], str]:
    """``event_hash`` for many events of one actor at one moment, as a faster function of
    (key, event_type, reason, old_json, new_json, prev_hash)."""
    who = f"{len(actor)}:{actor}|{stamp}|"
    sha256 = _sha256

    def link(
        key: str, event_type: str, reason: str | None, old_json: str, new_json: str, prev_hash: str
    ) -> str:
        why = "-" if reason is None else f"{len(reason)}:{reason}"
        return sha256(
            f"{key}|{len(event_type)}:{event_type}|{who}{why}|{len(old_json)}:"
            f"{old_json}|{len(new_json)}:{new_json}|{prev_hash}".encode()
        ).hexdigest()

    return link


# An event as verification reads it, chain by chain and oldest first: id, the number of
# its chain (the aliquot's or the sample's id), its canonical text as UTF-8 that the
# database assembled (None if the database checked the hash itself; see
# biobank.custody.audit), prev_hash, hash.
ChainRow = tuple[int, int | None, bytes | None, str | None, str | None]

_NO_CHAIN = object()  # before the first row: differs from every chain number, None too


class ChainCheck:
    """Checks events read chain by chain, each chain oldest first, so it needs to remember
    only the hash of the event before.

    An event the fast check cannot settle (its text does not hash to its ``hash``, or its
    ``prev_hash`` is not the hash of the event before it in its chain, or the chain's
    genesis for the first) is kept, with its chain and the link it should have had, for a
    closer look by ``diagnose`` once the walk is over: a merely re-spelled value (JSON
    spacing or key order, another time format) is not an alteration.
    """

    def __init__(self) -> None:
        self.checked = 0
        self.chains = 0
        self.suspects: list[tuple[int, str, str]] = []  # (event id, chain, expected prev)
        self._prefix = ""
        self._last: int | None | object = _NO_CHAIN
        self._expected = ""

    def start(self, prefix: str) -> None:
        """The next rows are chains of this kind: "a" (aliquots) or "s" (samples' own)."""
        self._prefix = prefix
        self._last = _NO_CHAIN
        self._expected = ""

    def scan(self, rows: list[ChainRow]) -> None:
        """Check the next events (the walk may cut a chain between two calls)."""
        sha256 = _sha256
        suspects = self.suspects
        prefix = self._prefix
        last = self._last
        expected = self._expected
        chains = 0
        for event_id, number, text, prev, stored in rows:
            if number != last:
                last = number
                chains += 1
                expected = genesis(f"{prefix}{number}")
            # text is None when the database already found the hash right.
            if prev != expected or (text is not None and sha256(text).hexdigest() != stored):
                suspects.append((event_id, f"{prefix}{number}", expected))
            expected = stored  # type: ignore[assignment]
        self._last = last
        self._expected = expected
        self.chains += chains
        self.checked += len(rows)


def diagnose(
    key: str,
    event_type: str,
    actor: str,
    occurred_at: dt.datetime,
    reason: str | None,
    old_values: Any,
    new_values: Any,
    prev_hash: str | None,
    stored_hash: str | None,
    expected_prev: str,
) -> str | None:
    """What is wrong with an event, from its values as the application reads them."""
    if stored_hash is None or prev_hash is None:
        return "it carries no hash: it was written around the service"
    if (
        event_hash(
            key,
            event_type,
            actor,
            timestamp(occurred_at),
            reason,
            canonical_json(old_values),
            canonical_json(new_values),
            prev_hash,
        )
        != stored_hash
    ):
        return "its content does not match its hash: the event was altered"
    if prev_hash != expected_prev:
        return (
            "it does not link to the event before it in its chain: an event was "
            "removed, inserted or reordered"
        )
    return None
