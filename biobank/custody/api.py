"""Custody event endpoints (read-only: nothing updates or deletes an event)."""

from __future__ import annotations

from flask_smorest import Blueprint

from biobank.auth.permissions import requires
from biobank.custody import service
from biobank.custody.schemas import EventOut
from biobank.db import get_session
from biobank.samples.api import numbering
from biobank.samples.service import get_aliquot, get_sample

blp = Blueprint("custody", __name__, description="Chain-of-custody events")


@blp.route("/aliquots/<code>/events", methods=["GET"])
@blp.response(200, EventOut(many=True))
@requires("custody:read")
def aliquot_events(code: str):  # type: ignore[no-untyped-def]
    """An aliquot's custody events, oldest first."""
    session = get_session()
    return service.aliquot_events(session, get_aliquot(session, code, numbering()).id)


@blp.route("/samples/<code>/events", methods=["GET"])
@blp.response(200, EventOut(many=True))
@requires("custody:read")
def sample_events(code: str):  # type: ignore[no-untyped-def]
    """A sample's own custody events (receipt, splits), oldest first."""
    session = get_session()
    return service.sample_events(session, get_sample(session, code, numbering()).id)
