"""Site scopes: the one place that says what a site-scoped user sees and may change.

A user created with ``--site CODE`` (one or more) is limited to those sites
(``docs/permissions.md``, "Site scopes"):

- a **patient** is seen where it is enrolled (``patient.site_id``);
- a **freezer** belongs to its site, and everything inside it (racks, boxes at any depth)
  to the freezer's site;
- a **tube** belongs to the site of the freezer that holds its place (its ``Position`` row:
  a tube taken out or thawed keeps it, and so does one consumed or destroyed in the biobank
  until the place is given to another tube); a tube with no place (shipped: shipping gives
  the place up; never stored; its place given to another tube) belongs to the site its
  patient is enrolled at, an anonymised one to no site. A tube moved into another site's
  freezer is seen by that site from then on, no longer by the site it came from;
- a **sample** (the primary collection) is seen where its patient is enrolled; an
  anonymised sample (no patient) where one of its tubes is.

Everything else of the biobank (reference data, sub-studies, requests as such) is not
limited by site. A user without sites sees everything, as before scopes existed.

The rules are written here once, in two forms: SQL conditions that every query builder of a
scoped entity adds (``patient_filter``, ``sample_filter``, ``aliquot_filter``,
``container_filter``), and the Python form of the tube rule for statements that already
read a tube's place (``admits_tube``: the scan). ``tests/test_site_scope.py`` holds the two
forms together. The request's scope travels on its database session (``bind``/``of``): the
services stay free of Flask, and a session outside a request (the command line) is
unscoped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    and_,
    exists,
    false,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session, aliased

from biobank.errors import Invalid
from biobank.patients.models import Patient
from biobank.reference.models import Site
from biobank.samples.models import Aliquot, Sample
from biobank.storage.models import Container, Position

_KEY = "biobank.site_scope"

# A column of the enclosing query: a mapped attribute (Aliquot.id) or a table's column
# (SQLAlchemy's type for "any column expression", the base of both).
Column = SQLColumnExpression[Any]


@dataclass(frozen=True)
class Scope:
    """The sites a user is limited to (``sites is None``: every site)."""

    sites: tuple[str, ...] | None = None

    @property
    def everywhere(self) -> bool:
        """Whether nothing is limited (users without sites, the command line)."""
        return self.sites is None

    def admits_site(self, code: str | None) -> bool:
        """Whether a site (by code) is one of the scope's."""
        return self.sites is None or (code is not None and code in self.sites)

    def admits_tube(self, stored_at: str | None, enrolled_at: str | None) -> bool:
        """The tube rule in Python, for a statement that read the tube's place already: the
        site of the freezer holding its place, else its patient's site."""
        return self.admits_site(tube_site(stored_at, enrolled_at))


EVERYWHERE = Scope()


def for_sites(codes: Iterable[str]) -> Scope:
    """The scope of a user with these sites (none: every site)."""
    codes = tuple(sorted(set(codes)))
    return Scope(codes) if codes else EVERYWHERE


def tube_site(stored_at: str | None, enrolled_at: str | None) -> str | None:
    """Where a tube belongs: the site of the freezer holding its place; a tube without a
    place belongs to its patient's site (None: anonymised and without a place)."""
    return stored_at if stored_at is not None else enrolled_at


# --- the request's scope --------------------------------------------------------------------


def bind(session: Session, scope: Scope) -> None:
    """Limit what the services read through this session (the request hook calls it)."""
    if scope.everywhere:
        session.info.pop(_KEY, None)
    else:
        session.info[_KEY] = scope


def unbind(session: Session) -> None:
    """The session reads everything again (the request is over)."""
    session.info.pop(_KEY, None)


def of(session: Session) -> Scope:
    """The scope of the request this session serves (EVERYWHERE outside requests)."""
    return session.info.get(_KEY, EVERYWHERE)


# --- the SQL forms --------------------------------------------------------------------------


def site_ids(scope: Scope) -> Select[Any]:
    """The ids of the scope's sites."""
    return select(Site.id).where(Site.code.in_(scope.sites or ()))


def container_ids(scope: Scope) -> Select[Any]:
    """The ids of the containers at the scope's sites: their freezers and everything in them,
    at any depth (one recursive query, nested where it is used)."""
    table = Container.__table__
    down = (
        select(table.c.id)
        .where(table.c.site_id.in_(site_ids(scope)))
        .cte("scope_containers", recursive=True, nesting=True)
    )
    down = down.union_all(select(table.c.id).join(down, table.c.parent_id == down.c.id))
    return select(down.c.id)


def patient_filter(scope: Scope, site_id: Column) -> ColumnElement[bool]:
    """Patients enrolled at the scope's sites (``site_id``: the patient's site column)."""
    if scope.everywhere:
        return true()
    return site_id.in_(site_ids(scope))


def patient_id_filter(scope: Scope, patient_id: Column) -> ColumnElement[bool]:
    """``patient_filter`` for a column holding a patient's id."""
    if scope.everywhere:
        return true()
    patient = aliased(Patient)
    return (
        select(patient.site_id)
        .where(patient.id == patient_id)
        .scalar_subquery()
        .in_(site_ids(scope))
    )


# The conditions on a tube, a sample or a patient by id are asked of each row: the row's own
# site, read by a scalar subquery (an index lookup or three), tested against the scope's small
# sets (its sites; its containers, a few per hundred tubes). Not as the set of every tube or
# sample at the sites, built for every statement: a page of a list, which stops after its
# first rows, then costs what its rows cost, not what the site holds. Scalar subqueries, not
# EXISTS: PostgreSQL hashes an EXISTS under an OR over the whole table.


def aliquot_filter(scope: Scope, aliquot_id: Column) -> ColumnElement[bool]:
    """Tubes at the scope's sites (``aliquot_id``: a column holding a tube's id): with their
    place in one of the sites' containers, or without a place (shipped, never stored) and of
    a patient enrolled at one of them (an anonymised tube without a place: at no site)."""
    if scope.everywhere:
        return true()
    position, tube, sample, patient = (
        aliased(Position),
        aliased(Aliquot),
        aliased(Sample),
        aliased(Patient),
    )
    # Whether the tube's place is at the sites; NULL when it has none. The container set
    # stays inside: PostgreSQL then hashes it once, where ``(box) IN (set)`` ran the box's
    # lookup again for every container of the set.
    stored_here = (
        select(position.box_id.in_(container_ids(scope)))
        .where(position.aliquot_id == aliquot_id)
        .scalar_subquery()
    )
    enrolled_at = (
        select(patient.site_id)
        .where(tube.id == aliquot_id, sample.id == tube.sample_id, patient.id == sample.patient_id)
        .scalar_subquery()
    )
    # No place: the box is NULL, so is its test, and the patient's site decides.
    return func.coalesce(stored_here, enrolled_at.in_(site_ids(scope)), false())


def sample_filter(scope: Scope, sample_id: Column) -> ColumnElement[bool]:
    """Samples whose patient is enrolled at the scope's sites; anonymised samples with a
    tube there."""
    if scope.everywhere:
        return true()
    sample, patient, tube = aliased(Sample), aliased(Patient), aliased(Aliquot)
    enrolled_at = (
        select(patient.site_id)
        .where(sample.id == sample_id, patient.id == sample.patient_id)
        .scalar_subquery()
    )
    anonymised_here = exists().where(tube.sample_id == sample_id, aliquot_filter(scope, tube.id))
    # A patient's sample: the patient's site decides (never NULL); an anonymised one (no
    # patient: NULL), its tubes.
    return func.coalesce(enrolled_at.in_(site_ids(scope)), anonymised_here)


def event_filter(scope: Scope, aliquot_id: Column, sample_id: Column) -> ColumnElement[bool]:
    """Custody events of the tubes (``aliquot_id``) or samples (``sample_id``) at the
    scope's sites."""
    if scope.everywhere:
        return true()
    return or_(
        and_(aliquot_id.is_not(None), aliquot_filter(scope, aliquot_id)),
        and_(aliquot_id.is_(None), sample_filter(scope, sample_id)),
    )


def container_filter(scope: Scope, container_id: Column) -> ColumnElement[bool]:
    """Freezers, racks and boxes at the scope's sites (``container_id``: a container's id)."""
    if scope.everywhere:
        return true()
    return container_id.in_(container_ids(scope))


def site_filter(scope: Scope, site_code: Column) -> ColumnElement[bool]:
    """Rows that name a site by code (a patient's or freezer's site in a list filter)."""
    if scope.everywhere:
        return true()
    if not scope.sites:
        return false()
    return site_code.in_(scope.sites)


def require_site(scope: Scope, code: str, field: str = "site") -> None:
    """Refuse to create an object at a site outside the scope (422 naming the field)."""
    if not scope.admits_site(code):
        raise Invalid(f"site {code!r} is not one of your sites", field=field)
