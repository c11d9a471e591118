"""Who sees what in the reports.

The site part is ``biobank.auth.scope``'s, the one place for the rule (``docs/permissions.md``,
"Site scopes"): a patient counts at the site it is enrolled at (completeness), a freezer at
its site (capacity), a tube at the site of the freezer holding its place, else (shipped, never
stored) its patient's site (inventory). A report names no site rule of its own: it asks
``sites_asked`` which sites it covers, as an ``auth.scope.Scope``, and narrows its queries
with that scope's filters. A researcher, besides, sees only the requests and shipments of
their own sub-studies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from biobank.auth import scope as sites
from biobank.auth.models import UserSubstudy
from biobank.consent.models import Substudy
from biobank.errors import NotFound
from biobank.reference.models import Site


@dataclass(frozen=True)
class ReportScope:
    """The asker's sites (``biobank.auth.scope``) and, for a researcher, the sub-studies whose
    requests they may see."""

    sites: sites.Scope = sites.EVERYWHERE
    researcher: bool = False
    substudy_ids: tuple[int, ...] = ()

    def substudy_filter(self, substudy_id: Any) -> ColumnElement[bool]:
        """Requests the asker may see: all for staff, their sub-studies' for a researcher."""
        return substudy_id.in_(self.substudy_ids) if self.researcher else true()


EVERYTHING = ReportScope()


def report_scope(session: Session, user_id: int, role: str) -> ReportScope:
    """The asker's scope for the reports: the request's site scope (bound to its session by
    the request hook) and, for a researcher, their sub-studies (one small read)."""
    limited = sites.of(session)
    if role != "researcher":
        return ReportScope(limited)
    substudies = tuple(
        session.scalars(
            select(Substudy.id)
            .join(UserSubstudy, UserSubstudy.substudy_code == Substudy.code)
            .where(UserSubstudy.user_id == user_id)
            .order_by(Substudy.id)
        )
    )
    return ReportScope(limited, researcher=True, substudy_ids=substudies)


def sites_asked(
    session: Session, scope: ReportScope, site: str | None, country: str | None
) -> sites.Scope:
    """The sites a report covers: the one named, the country's (within the asker's), or the
    asker's own (``EVERYWHERE``: every site). A site outside the scope (or unknown) is a
    404, as the site pages answer."""
    if site is None and country is None:
        return scope.sites
    query = select(Site.code).where(sites.site_filter(scope.sites, Site.code)).order_by(Site.code)
    if site is not None:
        found = session.scalar(query.where(Site.code == site))
        if found is None:
            raise NotFound(f"no site {site}", field="site", location="query")
        return sites.Scope((found,))
    assert country is not None
    # A country without (visible) sites covers nothing: Scope(()), not for_sites' everywhere.
    return sites.Scope(tuple(session.scalars(query.where(Site.country == country.upper()))))
