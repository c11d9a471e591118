"""Fixtures of the report tests: the demo biobank, and clients of its users."""

from __future__ import annotations

from typing import Any

import pytest

from biobank.demo import service as demo_service
from biobank.samples import service as samples


@pytest.fixture
def demo(session: Any) -> Any:
    """The demo biobank (20 patients, two freezers, requests in every state)."""
    demo_service.load(session, "demo", samples.Numbering())
    session.commit()
    return session
