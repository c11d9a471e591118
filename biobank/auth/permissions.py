"""The permission matrix: the one place that says which role may do what.

Every view declares an action with ``@requires(action)``; the request hook in
``biobank.auth.web`` enforces it before the view runs. ``PUBLIC`` actions need no token.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
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
    "custody:export": frozenset({M, A}),
    # Labels: technicians print; managers set up printers.
    "label:print": frozenset({T, M, A}),
    "printer:admin": frozenset({M, A}),
    # Storage: technicians keep the freezers; managers set up freezers and box types.
    "storage:read": frozenset({T, C, M, A}),
    "storage:write": frozenset({T, M, A}),
    "storage:configure": frozenset({M, A}),
    # Consent: officers record it; staff read the state, only officers see who signed;
    # researchers only ask the gate, and only about their own sub-studies.
    "substudy:read": frozenset({T, R, C, M, A}),
    "substudy:write": frozenset({M, A}),
    "consent:read": frozenset({T, C, M, A}),
    "consent:signatory": frozenset({C, A}),
    "consent:write": frozenset({C, A}),
    "consent:check": frozenset({T, R, C, M, A}),
    # Who stands behind a sub-study's pseudonym: managers, to answer researchers' questions.
    "pseudonym:resolve": frozenset({M, A}),
    # Sample requests: researchers ask (own sub-studies only, others' are a 404); managers
    # decide, allocate and ship; technicians pick and put returns back.
    "request:availability": frozenset({R, M, A}),
    "request:read": frozenset({T, R, M, A}),
    "request:write": frozenset({R, M, A}),
    "request:cancel": frozenset({R, M, A}),
    "request:decide": frozenset({M, A}),
    "request:pick": frozenset({T, M, A}),
    "request:ship": frozenset({M, A}),
    "request:receipt": frozenset({R, M, A}),
    "request:return": frozenset({T, M, A}),
    "request:recall": frozenset({R, M, A}),
    # The FHIR API: everyone reads, each within their scope (researchers: what their
    # sub-studies received, pseudonymised; site-scoped users: their sites).
    "fhir:read": frozenset({T, R, C, M, A}),
    # Reports and pictures (site-scoped users: their sites; researchers: only the requests
    # report, of their own sub-studies).
    "report:read": frozenset({T, C, M, A}),
    "report:requests": frozenset({T, R, M, A}),
    # Accounts.
    "user:self": frozenset({T, R, C, M, A}),
    "user:admin": frozenset({A}),
}

ACTION_DESCRIPTIONS = {
    PUBLIC: "front page, login and logout, health check, OpenAPI document and docs, "
    "FHIR CapabilityStatement (/fhir/metadata)",
    "reference:read": "read reference data: sites, materials, aliquot types, timepoints...",
    "reference:write": "create and edit reference data",
    "patient:read": "read patients, their timelines and risk-group history",
    "patient:write": "register patients, correct clinical data, record MRD results",
    "patient:clinical": "reassign a risk group by hand",
    "sample:read": "read samples",
    "sample:write": "register samples",
    "aliquot:read": "read aliquots",
    "aliquot:write": "split samples and aliquots into aliquots, change an aliquot's status",
    "scan": "resolve any code at the scan station",
    "custody:read": "read the custody events of samples and aliquots",
    "custody:export": "verify custody hash chains; export custody histories for inspectors",
    "label:print": "print tube labels on a registered printer; list printers",
    "printer:admin": "register and change label printers",
    "substudy:read": "read sub-studies and consent components",
    "substudy:write": "create, edit, open and close sub-studies",
    "consent:read": "read consent state and history, withdrawals, destruction tasks, recalls, "
    "re-consents due",
    "consent:signatory": "see who signed a consent form or asked for a withdrawal",
    "consent:write": "record consent, corrections and withdrawals; add form versions; "
    "record recall answers",
    "consent:check": "ask the consent gate about tubes, now or as of a moment (researchers: "
    "only tubes of their sub-study's requests, without consent entry ids)",
    "pseudonym:resolve": "map a sub-study's patient pseudonym back to the study_id",
    "request:availability": "count the consented, available tubes a sub-study may receive "
    "(researchers: own sub-studies only)",
    "request:read": "read sample requests, their tubes and manifests (researchers: own "
    "sub-studies only)",
    "request:write": "create, edit and submit sample requests (researchers: their own)",
    "request:cancel": "cancel a request before it ships (researchers: their own)",
    "request:decide": "approve (never one's own), reject and allocate sample requests",
    "request:pick": "see pick lists, scan tubes out for a request, drop a tube with a reason",
    "request:ship": "ship a picked request: courier, tracking, conditions, recipient",
    "request:receipt": "record receipt, tubes consumed, and close a request",
    "request:return": "store a tube the recipient sent back",
    "request:recall": "acknowledge a recall notice on a shipped request, report destruction",
    "storage:read": "read freezers, boxes, box maps, tube locations, capacity, excursions",
    "storage:write": "place, move, take out, thaw tubes; add racks and boxes; rack scans; "
    "record temperature excursions",
    "storage:configure": "register freezers and box types",
    "fhir:read": "read the FHIR R4 API under /fhir: Specimen, Patient, Consent, MIABIS "
    "(researchers: what their sub-studies received, pseudonymised)",
    "report:read": "reports and pictures: cohort completeness, freezer capacity, inventory "
    "over time (site-scoped users: their sites)",
    "report:requests": "the requests and shipments report (researchers: own sub-studies only)",
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

    lines = ["| action | what | " + " | ".join(ROLES) + " |", "|---|---|" + "---|" * len(ROLES)]
    for action, roles in MATRIX.items():
        marks = " | ".join("✔" if role in roles else "" for role in ROLES)
        lines.append(f"| `{action}` | {ACTION_DESCRIPTIONS[action]} | {marks} |")
    return "\n".join(lines)


DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"
_SECTION = re.compile(r"<!-- matrix:start.*?<!-- matrix:end -->", re.DOTALL)


def render_into(document: str) -> str:
    """The document with its generated matrix section brought up to date."""
    if not _SECTION.search(document):
        raise ValueError("the document has no matrix:start / matrix:end section")
    fresh = (
        "<!-- matrix:start (generated by `python -m biobank.auth.permissions`; "
        f"do not edit) -->\n{matrix_markdown()}\n<!-- matrix:end -->"
    )
    return _SECTION.sub(lambda _match: fresh, document, count=1)


if __name__ == "__main__":
    DOC_PATH.write_text(render_into(DOC_PATH.read_text(encoding="utf-8")), encoding="utf-8")
