"""The permission matrix: the one place that says which role may do what.

Every view declares an action with ``@requires(action)``; the request hook in
``biobank.auth.web`` enforces it before the view runs. ``PUBLIC`` actions need no token.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

PUBLIC = "public"

T = "technician"
R = "researcher"
C = "consent_officer"
M = "manager"
A = "admin"

MATRIX: dict[str, frozenset[str]] = {
    PUBLIC: frozenset({T, R, C, M, A}),
    # Reference data: everyone reads; managers and admins edit.
    "reference:read": frozenset({T, R, C, M, A}),
    "reference:write": frozenset({M, A}),
    # Patients and their clinical data (pseudonymous, but not for researchers).
    "patient:read": frozenset({T, C, M, A}),
    "patient:write": frozenset({T, M, A}),
    "patient:clinical": frozenset({M, A}),
    # Samples and aliquots.
    "sample:read": frozenset({T, C, M, A}),
    "sample:write": frozenset({T, M, A}),
    "aliquot:read": frozenset({T, C, M, A}),
    "aliquot:write": frozenset({T, M, A}),
    "scan": frozenset({T, C, M, A}),
    "custody:read": frozenset({T, C, M, A}),
    # Accounts.
    "user:self": frozenset({T, R, C, M, A}),
    "user:admin": frozenset({A}),
}

ACTION_DESCRIPTIONS = {
    PUBLIC: "health check, OpenAPI document and docs",
    "reference:read": "read sites, timepoints, materials, aliquot types",
    "reference:write": "create and edit reference data",
    "patient:read": "read patients, their timelines and risk-group history",
    "patient:write": "register patients, record MRD results",
    "patient:clinical": "reassign a risk group by hand",
    "sample:read": "read samples",
    "sample:write": "register samples, split them into aliquots",
    "aliquot:read": "read aliquots and their custody events",
    "aliquot:write": "register aliquots, change their status, split them",
    "scan": "resolve any code at the scan station",
    "custody:read": "read custody events",
    "user:self": "see one's own account",
    "user:admin": "manage users and tokens",
}

F = TypeVar("F", bound=Callable[..., Any])


def requires(action: str) -> Callable[[F], F]:
    """Declare the action a view performs; the request hook checks the role against it."""
    if action not in MATRIX:
        raise KeyError(f"unknown action {action!r}: add it to the permission matrix")

    def decorate(view: F) -> F:
        view.__dict__["biobank_permission"] = action
        return view

    return decorate


def allowed(role: str, action: str) -> bool:
    """Whether a role may perform an action."""
    return role in MATRIX.get(action, frozenset())


def matrix_markdown() -> str:
    """The matrix as a Markdown table (for the docs)."""
    from biobank.auth.models import ROLES

    lines = ["| action | what | " + " | ".join(ROLES) + " |",
             "|---|---|" + "---|" * len(ROLES)]
    for action, roles in MATRIX.items():
        marks = " | ".join("✔" if role in roles else "" for role in ROLES)
        lines.append(f"| `{action}` | {ACTION_DESCRIPTIONS[action]} | {marks} |")
    return "\n".join(lines)
