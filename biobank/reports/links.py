"""Where a report's picture links to, for the asker of the request (the API and the page)."""

from __future__ import annotations

from collections.abc import Callable

from flask import url_for

from biobank.auth.permissions import allowed
from biobank.auth.web import current_asker


def patient_link() -> Callable[[str], str] | None:
    """A patient's page by study id, for an asker who may read patients (else no links)."""
    if not allowed(current_asker().role, "patient:read"):
        return None
    return lambda study_id: url_for("web_patients.patient_page", study_id=study_id)
