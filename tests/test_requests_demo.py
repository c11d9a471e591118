"""Demo requests: one in each state, made by the demo researcher and decided by the demo
manager, on top of the core, consent and storage demos; idempotent."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from biobank.consent.models import ReleaseJustification, Substudy
from biobank.requests import availability
from biobank.requests import demo as requests_demo
from biobank.requests.lifecycle import TRANSITIONS
from biobank.requests.models import SampleRequest


def test_the_demo_has_a_request_in_each_state(runner, session):
    """Ten requests, every state once, the shipped ones justified; a second load adds none."""
    result = runner.invoke(args=["demo", "load"])  # includes the requests demo
    assert result.exit_code == 0
    line = next(x for x in result.output.splitlines() if x.startswith("requests demo"))
    assert all(f"1 {state}" in line for state in TRANSITIONS)
    made = session.scalars(select(SampleRequest).order_by(SampleRequest.id)).all()
    assert sorted(r.state for r in made) == sorted(TRANSITIONS)
    assert {r.created_by for r in made} == {"demo-researcher"}
    assert {r.decided_by for r in made if r.decided_by} == {"demo-manager"}
    shipped = [r.number for r in made if r.shipment is not None]
    assert len(shipped) == 3
    assert (
        session.scalar(
            select(func.count())
            .select_from(ReleaseJustification)
            .where(ReleaseJustification.release_reference.in_(shipped))
        )
        >= 3
    )
    assert set(requests_demo.load_demo(session, "cli:demo").values()) == {0}


def test_the_demo_requests_read_through_the_api(runner, session, as_role):
    """The demo researcher's view: every demo request, and DEMO availability in milliseconds."""
    runner.invoke(args=["demo", "load"])
    requests_demo.load_demo(session, "cli:demo")
    session.commit()
    researcher = as_role("researcher", substudies=["DEMO"])
    listed = researcher.get("/api/v1/requests").json
    assert len(listed) == 10
    closed = next(r for r in listed if r["state"] == "closed")
    detail = researcher.get(f"/api/v1/requests/{closed['number']}").json
    assert detail["counts"] == {"consumed": len(detail["tubes"])}
    substudy = session.scalar(select(Substudy).where(Substudy.code == "DEMO"))
    filters = availability.resolve(session, {})
    start = time.perf_counter()
    counted = availability.count(session, substudy, filters)
    spent = (time.perf_counter() - start) * 1000
    print(f"\navailability over the demo data: {counted.aliquots} tubes in {spent:.1f} ms")
    assert counted.aliquots > 0 and spent < 1000
