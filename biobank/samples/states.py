"""The aliquot status state machine: one table, consulted for every change."""

from __future__ import annotations

STATUSES = (
    "available",  # in storage, free to use
    "reserved",   # allocated to a request
    "shipped",    # left the biobank
    "consumed",   # used up (by a split, an assay or a recipient)
    "destroyed",  # disposed of
    "missing",    # not where it should be
    "blocked",    # held: consent withdrawn, quality problem
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

# Statuses from which a tube may be released (and so a withdrawal blocks it), in this order.
RELEASABLE = ("available", "reserved")

# Statuses in which a tube still physically sits in the biobank's freezers.
IN_HOUSE = frozenset({"available", "reserved", "blocked"})


def can_transition(old: str, new: str) -> bool:
    """Whether an aliquot may go from status ``old`` to ``new``."""
    return new in TRANSITIONS.get(old, frozenset())


def event_type(old: str, new: str) -> str:
    """The custody event type recorded for a status change."""
    return EVENT_FOR.get((old, new), EVENT_FOR_TARGET[new])
