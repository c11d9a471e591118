"""Reference data: loading the defaults, lookups by code, edits with an audit trail."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank.custody.service import record_audit
from biobank.errors import Conflict, Invalid, NotFound
from biobank.reference import sprec
from biobank.reference.models import (
    AliquotType,
    CountryAnonymisation,
    CountryMajority,
    Material,
    Site,
    SprecCode,
    Timepoint,
    Trial,
)

DEFAULTS_FILE = Path(__file__).with_name("defaults.json")

# The reference kinds, by the name used in URLs, audit records and defaults.json.
KINDS: dict[str, type] = {
    "sites": Site,
    "materials": Material,
    "aliquot_types": AliquotType,
    "timepoints": Timepoint,
    "majority_ages": CountryMajority,
    "trials": Trial,
    "anonymisation_rules": CountryAnonymisation,
}
ModelT = TypeVar("ModelT")


def load_defaults(session: Session, actor: str, path: Path = DEFAULTS_FILE) -> dict[str, int]:
    """Add the default reference rows whose code is missing; returns counts added per kind."""
    data = json.loads(path.read_text(encoding="utf-8"))
    added: dict[str, int] = {}
    for kind, model in KINDS.items():
        existing = set(session.scalars(select(model.code)))
        rows = [row for row in data.get(kind, []) if row["code"] not in existing]
        for row in rows:
            # Keys starting with "_" cite sources; dates come as ISO text.
            values = {k: v for k, v in row.items() if not k.startswith("_")}
            if kind == "trials":
                values["opened_on"] = dt.date.fromisoformat(values["opened_on"])
            create(session, actor, kind, values)
        added[kind] = len(rows)
    return added


def by_code(session: Session, model: type[ModelT], code: str, field: str) -> ModelT:
    """A reference row by its code; an unknown code is a 422 naming the field."""
    row = session.scalar(select(model).where(model.code == code))  # type: ignore[attr-defined]
    if row is None:
        raise Invalid(f"unknown {field} code {code!r}", field=field)
    return row


def get(session: Session, kind: str, code: str) -> Any:
    """A reference row by kind and code, or 404."""
    model = KINDS[kind]
    row = session.scalar(select(model).where(model.code == code))
    if row is None:
        raise NotFound(f"no {kind[:-1].replace('_', ' ')} {code!r}")
    return row


def list_all(session: Session, kind: str) -> list[Any]:
    """Every row of a reference kind, in display order."""
    model = KINDS[kind]
    order = (model.sort_order, model.code) if model is Timepoint else (model.code,)
    return list(session.scalars(select(model).order_by(*order)))


def _check_material_codes(session: Session, codes: list[str], field: str) -> None:
    known = set(session.scalars(select(Material.code)))
    unknown = sorted(set(codes) - known)
    if unknown:
        raise Invalid(f"unknown material code(s): {', '.join(unknown)}", field=field)


def _validate(session: Session, kind: str, values: dict[str, Any]) -> None:
    if kind == "timepoints" and "expected_materials" in values:
        _check_material_codes(session, values["expected_materials"], "expected_materials")
    if kind == "aliquot_types" and "materials" in values:
        _check_material_codes(session, values["materials"], "materials")


def create(session: Session, actor: str, kind: str, values: dict[str, Any]) -> Any:
    """Create a reference row; a duplicate code is a 409."""
    model = KINDS[kind]
    if session.scalar(select(model.id).where(model.code == values["code"])) is not None:
        raise Conflict(f"{values['code']!r} already exists", field="code")
    _validate(session, kind, values)
    row = model(**values)
    session.add(row)
    session.flush()
    record_audit(session, actor, kind, row.code, "created", new_values=values)
    return row


def update(
    session: Session,
    actor: str,
    kind: str,
    code: str,
    values: dict[str, Any],
    reason: str | None = None,
) -> Any:
    """Change a reference row (its code stays); old and new values go to the audit trail."""
    row = get(session, kind, code)
    _validate(session, kind, values)
    old = {key: getattr(row, key) for key in values}
    for key, value in values.items():
        setattr(row, key, value)
    session.flush()
    record_audit(
        session, actor, kind, code, "updated", reason=reason, old_values=old, new_values=values
    )
    return row


def sprec_tables(session: Session) -> dict[str, Any]:
    """The SPREC tables as stored, element by element in code order."""
    rows = session.scalars(select(SprecCode).order_by(SprecCode.id))
    by_element: dict[str, list[dict[str, str]]] = {name: [] for name in sprec.ELEMENTS}
    for row in rows:
        by_element.setdefault(row.element, []).append({"code": row.code, "name": row.name})
    return {
        "version": sprec.VERSION,
        "source": sprec.SOURCE,
        "elements": [{"element": k, "codes": v} for k, v in by_element.items()],
    }


def anonymisation_allowed(session: Session, country: str) -> bool:
    """Whether ``country``'s row (else the DEFAULT row) allows anonymising after a storage
    withdrawal; with neither, it does not."""
    rows = dict(
        session.execute(
            select(CountryAnonymisation.code, CountryAnonymisation.allowed).where(
                CountryAnonymisation.code.in_([country, "DEFAULT"])
            )
        ).all()
    )
    return bool(rows.get(country, rows.get("DEFAULT", False)))
