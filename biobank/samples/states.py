"""The aliquot status state machine: one table, consulted for every change."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """An aliquot's status: where it is in its life, and whether it may be used."""

    AVAILABLE = "available"  # in storage, free to use
    RESERVED = "reserved"  # allocated to a request
    SHIPPED = "shipped"  # left the biobank
    CONSUMED = "consumed"  # used up (by a split, an assay or a recipient)
    DESTROYED = "destroyed"  # disposed of
    MISSING = "missing"  # not where it should be
    BLOCKED = "blocked"  # held: consent withdrawn, quality problem


def _values(*statuses: Status) -> tuple[str, ...]:
    # Plain strings, in the order given: they go into SQL parameters, schemas' enums and
    # messages, where an enum member is not wanted.
    return tuple(status.value for status in statuses)


# Every status, in the order the schemas and the model's CHECK constraint list them.
STATUSES = _values(*Status)

# The named sets every rule reads (one place: the gate, withdrawals, storage, requests).
# Usable, and so released by the consent gate, and blocked by a withdrawal (in this order).
RELEASABLE = _values(Status.AVAILABLE, Status.RESERVED)
# May be thawed (taken out and put back).
THAWABLE = frozenset(_values(Status.AVAILABLE, Status.RESERVED))
# Left the biobank for good or gone: holds no place in a box.
DEPARTED = frozenset(_values(Status.SHIPPED, Status.CONSUMED, Status.DESTROYED))
# Still physically sits in the biobank's freezers.
IN_HOUSE = frozenset(_values(Status.AVAILABLE, Status.RESERVED, Status.BLOCKED))
# Set by hand; reserving and shipping belong to the request workflow.
MANUAL = _values(
    Status.AVAILABLE, Status.CONSUMED, Status.DESTROYED, Status.MISSING, Status.BLOCKED
)

TRANSITIONS: dict[str, frozenset[str]] = {
    "available": frozenset({"reserved", "consumed", "destroyed", "missing", "blocked"}),
    "reserved": frozenset({"available", "shipped", "missing", "blocked"}),
    "shipped": frozenset({"available", "consumed", "destroyed"}),  # back: a return
    "missing": frozenset({"available", "destroyed"}),  # found, or written off
    "blocked": frozenset({"available", "destroyed"}),
    "consumed": frozenset(),
    "destroyed": frozenset(),
}

# What a transition is called in the custody log.
EVENT_FOR = {
    ("reserved", "available"): "released",
    ("shipped", "available"): "returned",
    ("missing", "available"): "found",
    ("blocked", "available"): "unblocked",
}
EVENT_FOR_TARGET = {
    "reserved": "reserved",
    "shipped": "shipped",
    "consumed": "consumed",
    "destroyed": "destroyed",
    "missing": "marked_missing",
    "blocked": "blocked",
    "available": "made_available",
}


def can_transition(old: str, new: str) -> bool:
    """Whether an aliquot may go from status ``old`` to ``new``."""
    return new in TRANSITIONS.get(old, frozenset())


def event_type(old: str, new: str) -> str:
    """The custody event type recorded for a status change."""
    return EVENT_FOR.get((old, new), EVENT_FOR_TARGET[new])
