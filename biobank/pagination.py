"""Pagination of SQLAlchemy selects through flask-smorest (X-Pagination header)."""

from __future__ import annotations

from flask_smorest import Page
from sqlalchemy import func, select

from biobank.db import get_session
from biobank.errors import Invalid
from biobank.inputs import INT32_MAX


class SelectPage(Page):
    """A page of a ``select()``: one COUNT and one LIMIT/OFFSET query."""

    @property
    def item_count(self) -> int:  # type: ignore[override]
        """Total rows the select would return."""
        return (
            get_session().scalar(
                select(func.count()).select_from(self.collection.order_by(None).subquery())
            )
            or 0
        )

    @property
    def items(self) -> list:  # type: ignore[override]
        """The rows of this page."""
        first = self.page_params.first_item
        if first > INT32_MAX:  # an OFFSET the database would not take; no list is that long
            raise Invalid(
                f"page {self.page_params.page} is beyond any list",
                errors={"query": {"page": ["Beyond any list."]}},
            )
        query = self.collection.offset(first).limit(self.page_params.page_size)
        return list(get_session().scalars(query).unique())
