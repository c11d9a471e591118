"""Who sees what in the reports: the one place the reports narrow their queries.

A site-scoped user (``users create --site``) sees their sites' patients (completeness,
inventory) and freezers (capacity); a researcher sees only the requests and shipments of
their own sub-studies. Everyone else sees the whole trial.

INTEGRATION POINT (issue 20, site scopes): when ``biobank.auth.scope`` is on main, the site
part of ``report_scope`` reads the request's scope from there; until then it reads the user's
sites (``user_site``) itself, here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from biobank.auth.models import UserSite, UserSubstudy
from biobank.consent.models import Substudy
from biobank.errors import NotFound
from biobank.reference.models import Site


@dataclass(frozen=True)
class ReportScope:
    """The sites (ids) a user is limited to (None: every site) and, for a researcher, the
    sub-studies whose requests they may see."""

    site_ids: tuple[int, ...] | None = None
    researcher: bool = False
    substudy_ids: tuple[int, ...] = ()

    def site_filter(self, site_id: Any) -> ColumnElement[bool]:
        """Rows of the scope's sites (``site_id``: a patient's or a freezer's site column)."""
        return true() if self.site_ids is None else site_id.in_(self.site_ids)

    def substudy_filter(self, substudy_id: Any) -> ColumnElement[bool]:
        """Requests the asker may see: all for staff, their sub-studies' for a researcher."""
        return substudy_id.in_(self.substudy_ids) if self.researcher else true()


EVERYTHING = ReportScope()


def report_scope(session: Session, user_id: int, role: str) -> ReportScope:
    """The asker's scope for the reports (two small reads: sites, and sub-studies)."""
    site_ids = tuple(session.scalars(
        select(Site.id).join(UserSite, UserSite.site_code == Site.code)
        .where(UserSite.user_id == user_id).order_by(Site.id)))
    if role != "researcher":
        return ReportScope(site_ids or None)
    substudies = tuple(session.scalars(
        select(Substudy.id).join(UserSubstudy, UserSubstudy.substudy_code == Substudy.code)
        .where(UserSubstudy.user_id == user_id).order_by(Substudy.id)))
    return ReportScope(site_ids or None, researcher=True, substudy_ids=substudies)


def sites_asked(session: Session, scope: ReportScope, site: str | None,
                country: str | None) -> tuple[int, ...] | None:
    """The site ids a report covers: the one named, the country's, or the scope's (None:
    every site). A site outside the scope (or unknown) is a 404, as the site pages answer."""
    query = select(Site.id).where(scope.site_filter(Site.id)).order_by(Site.id)
    if site is not None:
        found = session.scalar(query.where(Site.code == site))
        if found is None:
            raise NotFound(f"no site {site}", field="site", location="query")
        return (found,)
    if country is not None:
        return tuple(session.scalars(query.where(Site.country == country.upper())))
    return scope.site_ids
