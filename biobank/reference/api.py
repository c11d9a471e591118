"""Reference data endpoints: sites, materials, aliquot types, MRD timepoints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask_smorest import Blueprint

from biobank.auth.permissions import requires
from biobank.auth.web import current_actor
from biobank.db import get_session
from biobank.reference import schemas, service
from biobank.schema import Schema

blp = Blueprint("reference", __name__, description="Reference data (editable by managers)")

_SCHEMAS: dict[str, tuple[type[Schema], type[Schema], type[Schema]]] = {
    "sites": (schemas.SiteIn, schemas.SitePatch, schemas.SiteOut),
    "materials": (schemas.MaterialIn, schemas.MaterialPatch, schemas.MaterialOut),
    "aliquot_types": (schemas.AliquotTypeIn, schemas.AliquotTypePatch, schemas.AliquotTypeOut),
    "timepoints": (schemas.TimepointIn, schemas.TimepointPatch, schemas.TimepointOut),
    "majority_ages": (
        schemas.CountryMajorityIn,
        schemas.CountryMajorityPatch,
        schemas.CountryMajorityOut,
    ),
    "trials": (schemas.TrialIn, schemas.TrialPatch, schemas.TrialOut),
    "anonymisation_rules": (
        schemas.CountryAnonymisationIn,
        schemas.CountryAnonymisationPatch,
        schemas.CountryAnonymisationOut,
    ),
}


View = TypeVar("View", bound=Callable[..., Any])


def _doc(text: str) -> Callable[[View], View]:
    """Give a view made in a loop its docstring (the OpenAPI summary)."""

    def decorate(view: View) -> View:
        view.__doc__ = text
        return view

    return decorate


def _routes(
    kind: str, in_schema: type[Schema], patch_schema: type[Schema], out_schema: type[Schema]
) -> None:
    """List, read, create and edit one kind of reference row (same rules for every kind)."""
    path = "/" + kind.replace("_", "-")
    label = kind.replace("_", " ")

    @blp.route(path, methods=["GET"], endpoint=f"list_{kind}")
    @blp.response(200, out_schema(many=True))
    @requires("reference:read")
    @_doc(f"List {label}.")
    def list_rows() -> Any:
        return service.list_all(get_session(), kind)

    @blp.route(f"{path}/<code>", methods=["GET"], endpoint=f"get_{kind}")
    @blp.response(200, out_schema)
    @requires("reference:read")
    @_doc(f"One of the {label}, by code.")
    def get_row(code: str) -> Any:
        return service.get(get_session(), kind, code)

    @blp.route(path, methods=["POST"], endpoint=f"create_{kind}")
    @blp.arguments(in_schema)
    @blp.response(201, out_schema)
    @requires("reference:write")
    @_doc(f"Add to the {label}.")
    def create_row(values: dict[str, Any]) -> Any:
        return service.create(get_session(), current_actor(), kind, values)

    @blp.route(f"{path}/<code>", methods=["PATCH"], endpoint=f"update_{kind}")
    @blp.arguments(patch_schema(partial=True))
    @blp.response(200, out_schema)
    @requires("reference:write")
    @_doc(f"Edit one of the {label} (its code stays).")
    def update_row(values: dict[str, Any], code: str) -> Any:
        return service.update(get_session(), current_actor(), kind, code, values)


for _kind, (_in, _patch, _out) in _SCHEMAS.items():
    _routes(_kind, _in, _patch, _out)


@blp.route("/sprec-codes", methods=["GET"])
@blp.response(200, schemas.SprecTablesOut)
@requires("reference:read")
def sprec_codes() -> Any:
    """The SPREC v3.0 fluid tables: every element's codes and names, with their source."""
    return service.sprec_tables(get_session())
