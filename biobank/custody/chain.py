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
    """JSON values with every object's keys in sorted order.

    Stored this way, the JSON text the database keeps is already the canonical text, so
    verifying needs no JSON parsing.
    """
    if isinstance(value, dict):
        return {key: sorted_values(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [sorted_values(item) for item in value]
    return value


def canonical_json(value: Any) -> str:
    """The canonical JSON text of old/new values (``null`` for none)."""
    return json.dumps(value, sort_keys=True)


def canonical_text(stored: str | None) -> str:
    """Canonical JSON text from the text a database returned (any spacing, key order)."""
    return "null" if stored is None else canonical_json(json.loads(stored))


def timestamp(moment: dt.datetime) -> str:
    """UTC, to the microsecond: what both databases keep of ``occurred_at``."""
    if moment.utcoffset() != dt.timedelta(0):
        moment = moment.astimezone(dt.UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds")


def event_hash(key: str, event_type: str, actor: str, stamp: str, reason: str | None,
               old_json: str, new_json: str, prev_hash: str) -> str:
    """SHA-256 (hex) of an event's canonical form.

    Free-text parts carry their length, so no text can be moved from one field to the
    next without changing the hash; ``reason`` None and "" differ.
    """
    why = "-" if reason is None else f"{len(reason)}:{reason}"
    text = (f"{key}|{len(event_type)}:{event_type}|{len(actor)}:{actor}|{stamp}|{why}|"
            f"{len(old_json)}:{old_json}|{len(new_json)}:{new_json}|{prev_hash}")
    return _sha256(text.encode()).hexdigest()


class ChainCheck:
    """Checks events read in id order, remembering the last hash of every chain."""

    def __init__(self) -> None:
        self.heads: dict[str, str] = {}
        self.checked = 0

    def check(self, aliquot_id: int | None, sample_id: int | None, event_type: str,
              actor: str, occurred_at: dt.datetime, reason: str | None,
              old_text: str | None, new_text: str | None, prev_hash: str | None,
              stored_hash: str | None) -> str | None:
        """What is wrong with the next event (None: it is intact and linked)."""
        key = f"a{aliquot_id}" if aliquot_id is not None else f"s{sample_id}"
        expected_prev = self.heads.get(key) or genesis(key)
        self.heads[key] = stored_hash or ""
        self.checked += 1
        if stored_hash is None or prev_hash is None:
            return "it carries no hash: it was written around the service"
        stamp = timestamp(occurred_at)
        old = "null" if old_text is None else old_text
        new = "null" if new_text is None else new_text
        if event_hash(key, event_type, actor, stamp, reason, old, new, prev_hash) != stored_hash:
            # The stored JSON text may merely be spelled differently (spacing, key order).
            try:
                old, new = canonical_text(old_text), canonical_text(new_text)
            except ValueError:
                return "its values are not valid JSON: the event was altered"
            if event_hash(key, event_type, actor, stamp, reason, old, new,
                          prev_hash) != stored_hash:
                return "its content does not match its hash: the event was altered"
        if prev_hash != expected_prev:
            return ("it does not link to the event before it in its chain: an event was "
                    "removed, inserted or reordered")
        return None
