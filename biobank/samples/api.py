"""Sample and aliquot endpoints."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from biobank.auth.permissions import allowed, requires
from biobank.auth.web import current_actor, current_asker, current_scope
from biobank.db import get_session
from biobank.errors import Forbidden, Invalid
from biobank.pagination import SelectPage
from biobank.samples import schemas, service
from biobank.samples.models import Aliquot, Sample
from biobank.samples.numbering import numbering
from biobank.storage import operations
from biobank.storage import service as storage

blp = Blueprint("samples", __name__, description="Samples, aliquots and splitting")


@blp.route("/samples", methods=["GET"])
@blp.arguments(schemas.SampleQuery, location="query")
@blp.response(200, schemas.SampleOut(many=True))
@blp.paginate(SelectPage)
@requires("sample:read")
def list_samples(filters: dict[str, Any]) -> Any:
    """List samples (filter by patient, timepoint, material)."""
    return service.samples_query(current_scope(), **filters)


@blp.route("/samples", methods=["POST"])
@blp.arguments(schemas.SampleIn)
@blp.response(201, schemas.SampleOut)
@requires("sample:write")
def register_sample(values: dict[str, Any]) -> Any:
    """Register a primary sample received from a patient; the service issues its barcode."""
    return service.register_sample(get_session(), current_actor(), values, numbering())


@blp.route("/samples/<code>", methods=["GET"])
@blp.response(200, schemas.SampleOut)
@requires("sample:read")
def get_sample(code: str) -> Any:
    """One sample, by barcode."""
    return service.get_sample(get_session(), code, numbering())


@blp.route("/samples/<code>/split", methods=["POST"])
@blp.arguments(schemas.SplitIn)
@blp.response(201, schemas.AliquotOut(many=True))
@requires("aliquot:write")
def split_sample(values: dict[str, Any], code: str) -> Any:
    """Split a sample into aliquots, atomically; the new barcodes come back in order.

    With ``box``, the new tubes are stored there in the same request (each at its
    ``position``, or at the next free places): a rack of 96 pre-barcoded tubes in one go.
    """
    return _split(service.get_sample(get_session(), code, numbering()), values)


def _split(parent: Sample | Aliquot, values: dict) -> list[Aliquot]:  # type: ignore[type-arg]
    """Split, and with ``box`` store the new tubes there: one transaction, one request."""
    session = get_session()
    positions = [child.pop("position") for child in values["aliquots"]]
    box = None
    if values["box"] is not None:
        if not allowed(current_asker().role, "storage:write"):
            raise Forbidden(f"role {current_asker().role!r} may not store tubes", field="box")
        box = storage.get_box(session, values["box"], numbering(), "box")
    elif any(positions):
        index = next(i for i, p in enumerate(positions) if p)
        raise Invalid(
            "a position needs a box: say which box the tubes go into",
            field=f"aliquots.{index}.position",
        )
    made = service.split(
        session,
        current_actor(),
        parent,
        values["aliquots"],
        numbering(),
        consume_parent=values["consume_parent"],
        reason=values["reason"],
        processing=values["processing"],
    )
    if box is not None:
        operations.store_new(session, current_actor(), made, box, positions, values["reason"])
    return made


@blp.route("/aliquots", methods=["GET"])
@blp.arguments(schemas.AliquotQuery, location="query")
@blp.response(200, schemas.AliquotOut(many=True))
@blp.paginate(SelectPage)
@requires("aliquot:read")
def list_aliquots(filters: dict[str, Any]) -> Any:
    """List aliquots (filter by patient, timepoint, material, type, status, sample)."""
    return service.aliquots_query(current_scope(), **filters)


@blp.route("/aliquots/<code>", methods=["GET"])
@blp.response(200, schemas.AliquotOut)
@requires("aliquot:read")
def get_aliquot(code: str) -> Any:
    """One aliquot, by barcode."""
    return service.get_aliquot(get_session(), code, numbering())


@blp.route("/aliquots/<code>/split", methods=["POST"])
@blp.arguments(schemas.SplitIn)
@blp.response(201, schemas.AliquotOut(many=True))
@requires("aliquot:write")
def split_aliquot(values: dict[str, Any], code: str) -> Any:
    """Split an aliquot into aliquots (DNA from a cell pellet), atomically; ``box`` as for
    a sample."""
    return _split(service.get_aliquot(get_session(), code, numbering()), values)


@blp.route("/aliquots/<code>/status", methods=["POST"])
@blp.arguments(schemas.StatusIn)
@blp.response(200, schemas.AliquotOut)
@requires("aliquot:write")
def change_status(values: dict[str, Any], code: str) -> Any:
    """Change an aliquot's status; an illegal transition is a 409 naming both states."""
    session = get_session()
    aliquot = service.get_aliquot(session, code, numbering())
    return service.change_status(
        session, current_actor(), aliquot, values["status"], values["reason"]
    )
