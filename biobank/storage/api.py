"""Storage endpoints: freezers, containers, boxes and their maps, tube places, rack scans,
temperature excursions and capacity."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_smorest import Blueprint
from sqlalchemy import select

from biobank.auth.permissions import requires
from biobank.auth.web import current_actor, current_scope
from biobank.db import get_session
from biobank.errors import Invalid, NotFound, UnsupportedMediaType
from biobank.guards import body_limit, read_body
from biobank.pagination import SelectPage
from biobank.samples.models import Aliquot
from biobank.samples.numbering import numbering
from biobank.samples.service import get_aliquot
from biobank.storage import (
    actions,
    boxmap,
    excursions,
    operations,
    reconcile,
    schemas,
    service,
)
from biobank.storage import location as whereabouts  # `location` is a view here
from biobank.storage.models import BoxType, Container
from biobank.storage.rackscan import MAX_SCAN_BYTES

blp = Blueprint("storage", __name__, description="Freezers, boxes and where every tube is")

CSV_TYPES = {"text/csv", "text/plain", "application/csv", "application/vnd.ms-excel"}


def _box(code: str, field: str | None = None) -> Container:
    return service.get_box(get_session(), code, numbering(), field)


def _container(code: str, field: str | None = None) -> Container:
    return service.get_container(get_session(), code, numbering(), field)


def _tube_answer(code: str) -> dict[str, Any]:
    session = get_session()
    return whereabouts.aliquot_storage(session, get_aliquot(session, code, numbering()))


# --- hierarchy -------------------------------------------------------------------------


@blp.route("/box-types", methods=["GET"])
@blp.response(200, schemas.BoxTypeOut(many=True))
@requires("storage:read")
def list_box_types() -> Any:
    """List box types: grids with their position naming, and grid-free bags and bins."""
    return get_session().scalars(select(BoxType).order_by(BoxType.code)).all()


@blp.route("/box-types", methods=["POST"])
@blp.arguments(schemas.BoxTypeIn)
@blp.response(201, schemas.BoxTypeOut)
@requires("storage:configure")
def create_box_type(values: dict[str, Any]) -> Any:
    """Add a box type."""
    return service.create_box_type(get_session(), current_actor(), values)


@blp.route("/freezers", methods=["GET"])
@blp.response(200, schemas.ContainerOut(many=True))
@requires("storage:read")
def list_freezers() -> Any:
    """List freezers and LN2 tanks, by site and name."""
    session = get_session()
    freezers = session.scalars(service.containers_query(current_scope(), "freezer")).all()
    paths = service.lineages(session, [f.id for f in freezers])
    return sorted(
        (
            {
                "barcode": f.barcode,
                "kind": f.kind,
                "name": f.name,
                "path": paths[f.id].path,
                "freezer": f.barcode,
                "site": paths[f.id].site,
                "freezer_type": f.freezer_type,
                "temperature_band": f.temperature_band,
                "room": f.room,
            }
            for f in freezers
        ),
        key=lambda f: f["path"],
    )


@blp.route("/freezers", methods=["POST"])
@blp.arguments(schemas.FreezerIn)
@blp.response(201, schemas.ContainerOut)
@requires("storage:configure")
def create_freezer(values: dict[str, Any]) -> Any:
    """Register a freezer or LN2 tank at a site; the service issues its barcode."""
    session = get_session()
    freezer = service.create_freezer(session, current_actor(), values, numbering())
    return whereabouts.describe_container(session, freezer)


@blp.route("/containers", methods=["POST"])
@blp.arguments(schemas.ContainerIn)
@blp.response(201, schemas.ContainerOut)
@requires("storage:write")
def create_container(values: dict[str, Any]) -> Any:
    """Add a shelf, rack, drawer, tower… inside a freezer or another holder."""
    session = get_session()
    container = service.create_container(session, current_actor(), values, numbering())
    return whereabouts.describe_container(session, container)


@blp.route("/containers/<code>", methods=["GET"])
@blp.response(200, schemas.ContainerOut)
@requires("storage:read")
def get_container(code: str) -> Any:
    """A freezer, holder or box: its path and what it directly holds."""
    return whereabouts.describe_container(get_session(), _container(code))


@blp.route("/containers/<code>/move", methods=["POST"])
@blp.arguments(schemas.MoveContainerIn)
@blp.response(200, schemas.ContainerOut)
@requires("storage:write")
def move_container(values: dict[str, Any], code: str) -> Any:
    """Move a box or a rack (with all it holds) into another container, in one go."""
    session = get_session()
    container = _container(code)
    into = _container(values["into"], "into")
    service.move_container(session, current_actor(), container, into, values["reason"])
    return whereabouts.describe_container(session, container)


# --- boxes -----------------------------------------------------------------------------


class BoxPage(SelectPage):
    """A page of boxes, each with its path and occupancy (two more queries per page)."""

    @property
    def items(self) -> list:  # type: ignore[override]
        """The boxes of this page, summarised."""
        return boxmap.describe_boxes(get_session(), super().items)


@blp.route("/boxes", methods=["GET"])
@blp.arguments(schemas.BoxQuery, location="query")
@blp.response(200, schemas.BoxOut(many=True))
@blp.paginate(BoxPage)
@requires("storage:read")
def list_boxes(filters: dict[str, Any]) -> Any:
    """List boxes (filter by box type, or by a container they are in), with their paths."""
    query = service.containers_query(current_scope(), "box")
    if filters.get("box_type"):
        query = query.where(Container.box_type.has(BoxType.code == filters["box_type"]))
    if filters.get("within"):
        within = _container(filters["within"], "within")
        query = query.where(Container.id.in_(service.subtree_ids(get_session(), within.id)))
    return query


@blp.route("/boxes", methods=["POST"])
@blp.arguments(schemas.BoxIn)
@blp.response(201, schemas.BoxOut)
@requires("storage:write")
def create_box(values: dict[str, Any]) -> Any:
    """Add a box (or bag) inside a holder; the service issues its barcode."""
    session = get_session()
    box = service.create_box(session, current_actor(), values, numbering())
    return boxmap.describe_boxes(session, [box])[0]


@blp.route("/boxes/<code>", methods=["GET"])
@blp.response(200, schemas.BoxOut)
@requires("storage:read")
def get_box(code: str) -> Any:
    """One box: its type, path and how full it is."""
    return boxmap.describe_boxes(get_session(), [_box(code)])[0]


@blp.route("/boxes/<code>/map", methods=["GET"])
@blp.response(200, schemas.BoxMapOut)
@requires("storage:read")
def box_map(code: str) -> Any:
    """The box map: every position with its tube, in a fixed number of queries."""
    return boxmap.box_map(get_session(), _box(code))


@blp.route("/boxes/<code>/suggest", methods=["GET"])
@blp.arguments(schemas.CountQuery, location="query")
@blp.response(200, schemas.OfferOut)
@requires("storage:read")
def suggest_in_box(args: dict[str, Any], code: str) -> Any:
    """Free positions in this box for N tubes, in one unbroken run where possible."""
    return boxmap.suggest(get_session(), _box(code), args["count"])


@blp.route("/storage/suggest", methods=["GET"])
@blp.arguments(schemas.SuggestQuery, location="query")
@blp.response(200, schemas.OfferOut(many=True))
@requires("storage:read")
def suggest(args: dict[str, Any]) -> Any:
    """Where to store N new tubes: one box with an unbroken run, else spread over boxes."""
    session = get_session()
    within = _container(args["within"], "within") if args.get("within") else None
    kind = service.box_type_by_code(session, args["box_type"]) if args.get("box_type") else None
    return boxmap.suggest_anywhere(session, args["count"], within, kind)


@blp.route("/storage/capacity", methods=["GET"])
@blp.response(200, schemas.CapacityOut)
@requires("storage:read")
def capacity() -> Any:
    """Occupied and free positions per freezer and per box type."""
    return boxmap.capacity(get_session())


# --- rack scans ------------------------------------------------------------------------


@blp.route("/boxes/<code>/scan-upload", methods=["POST"])
@body_limit(MAX_SCAN_BYTES)
@blp.doc(
    requestBody={
        "required": True,
        "content": {
            "text/csv": {
                "schema": {"type": "string"},
                "example": "TR00012345,A1,FX05653701\nTR00012345,A2,NO READ\n",
            }
        },
    }
)
@blp.response(200, schemas.ReconciliationOut)
@requires("storage:write")
def scan_upload(code: str) -> Any:
    """Compare a rack-scanner CSV with the box; changes nothing, returns a token to confirm."""
    box = _box(code)
    if request.mimetype not in CSV_TYPES:
        raise UnsupportedMediaType("send the scanner's file as text/csv")
    raw = read_body()  # at most MAX_SCAN_BYTES: a 413 beyond
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid(
            "the file is not text (UTF-8 or ASCII CSV expected)", field="file", location="body"
        ) from None
    return reconcile.preview(get_session(), current_actor(), box, text)


@blp.route("/boxes/<code>/scan-upload/<token>/confirm", methods=["POST"])
@blp.arguments(schemas.ScanConfirmIn)
@blp.response(200, schemas.ConfirmOut)
@blp.alt_response(
    409,
    description="the box changed since the preview, or a finding of the "
    "preview (rack mismatch, unknown tubes, unreadable wells) "
    "is not acknowledged",
)
@requires("storage:write")
def scan_confirm(values: dict[str, Any], code: str, token: str) -> Any:
    """Apply a previewed scan: every move at once; 409 if the box changed since or a finding
    is not acknowledged."""
    return reconcile.confirm(
        get_session(),
        current_actor(),
        _box(code),
        token,
        values["acknowledge"],
        values["record_rack"],
    )


# --- tubes -----------------------------------------------------------------------------


@blp.route("/aliquots/<code>/location", methods=["GET"])
@blp.response(200, schemas.TubeStorageOut)
@requires("storage:read")
def location(code: str) -> Any:
    """Where a tube is (box, position, path), whether it is thawed, its condition notes."""
    return _tube_answer(code)


def _tube_endpoint(action: actions.TubeAction) -> None:
    """Register ``POST /aliquots/<code>/<action>``: the tube, the action, its answer."""

    def view(values: dict[str, Any], code: str) -> Any:
        session = get_session()
        action.run(
            session, current_actor(), get_aliquot(session, code, numbering()), values, numbering()
        )
        return _tube_answer(code)

    view.__name__ = view.__qualname__ = action.name
    view.__doc__ = action.summary
    view = requires("storage:write")(view)
    view = blp.response(201 if action.created else 200, schemas.TubeStorageOut)(view)
    view = blp.arguments(action.schema)(view)
    blp.route(f"/aliquots/<code>/{action.path}", methods=["POST"])(view)


# The tube actions (place, move, take out, put back, thaw, refreeze, missing, found): one
# table, shared with the scan station's card.
for _action in actions.TUBE_ACTIONS.values():
    _tube_endpoint(_action)


@blp.route("/storage/moves", methods=["POST"])
@blp.arguments(schemas.BulkMoveIn)
@blp.response(200, schemas.MovedOut)
@requires("storage:write")
def bulk_move(values: dict[str, Any]) -> Any:
    """Move many tubes at once (swaps included): all or nothing, one event per tube."""
    session = get_session()
    moves = []
    boxes: dict[str, Container] = {}
    for index, spec in enumerate(values["moves"]):
        aliquot = _aliquot_field(spec["aliquot"], f"moves.{index}.aliquot")
        if spec["box"] not in boxes:
            boxes[spec["box"]] = _box(spec["box"], f"moves.{index}.box")
        box = boxes[spec["box"]]
        row, col = operations.resolve(box, spec["position"], f"moves.{index}.position")
        moves.append(operations.Target(aliquot, box, row, col))
    operations.move(session, current_actor(), moves, values["reason"])
    return {"moved": len(moves), "aliquots": [m.aliquot.barcode for m in moves]}


def _aliquot_field(code: str, field: str) -> Aliquot:
    try:
        return get_aliquot(get_session(), code, numbering())
    except NotFound as exc:
        raise Invalid(exc.message, field=field) from None
    except Invalid as exc:
        raise Invalid(exc.message, field=field) from None


# --- excursions ------------------------------------------------------------------------


@blp.route("/freezers/<code>/excursions", methods=["POST"])
@blp.arguments(schemas.ExcursionIn)
@blp.response(201, schemas.ExcursionOut)
@requires("storage:write")
def record_excursion(values: dict[str, Any], code: str) -> Any:
    """Record a temperature excursion; every tube inside during it gets a condition note."""
    return excursions.record(get_session(), current_actor(), _container(code), values)


@blp.route("/freezers/<code>/excursions", methods=["GET"])
@blp.response(200, schemas.ExcursionOut(many=True))
@requires("storage:read")
def list_excursions(code: str) -> Any:
    """A freezer's temperature excursions, newest first, with the tubes flagged."""
    session = get_session()
    return [
        excursions.describe(session, e) for e in excursions.for_freezer(session, _container(code))
    ]


@blp.route("/excursions/<excursion_id>", methods=["GET"])
@blp.response(200, schemas.ExcursionOut)
@requires("storage:read")
def get_excursion(excursion_id: str) -> Any:
    """One temperature excursion with the tubes that sat through it."""
    session = get_session()
    return excursions.describe(session, excursions.get(session, excursion_id))
