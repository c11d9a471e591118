"""One owner rule for sample requests: the researcher who made a request, and managers and
admins, act on it; the other researchers of its sub-study may read it, nothing more."""

from __future__ import annotations

import re

import pytest
from consent_helpers import officer  # noqa: F401
from db_helpers import row_counts
from requests_helpers import SHIPMENT, donor, freezer, give, researcher, shipped, statuses, studies  # noqa: F401
from sqlalchemy import select

from biobank import clock
from biobank.auth.permissions import allowed
from biobank.auth.web import permission_of
from biobank.consent.models import RecallNotice


@pytest.fixture
def recalled(researcher, manager, tech, donor, officer, session):  # type: ignore[no-untyped-def]  # noqa: F811
    """A shipped request with a recall notice on one of its tubes (consent withdrawn)."""
    world = donor({"DX": 1}, "DEMO")
    donor({"DX": 1}, "DEMO")
    number, codes = shipped(researcher, manager, tech)
    officer.post(
        f"/api/v1/patients/{world.study_id}/consent/withdrawals",
        json={
            "scope": "storage",
            "date": str(clock.today()),
            "requested_by": "mother",
            "reason": "parents' wish",
        },
    )
    notice = session.scalar(select(RecallNotice))
    return number, codes, notice


@pytest.fixture
def colleague(as_role, studies):  # type: ignore[no-untyped-def]  # noqa: F811
    """Another researcher of sub-study DEMO (not the one who made the request)."""
    return as_role("researcher", substudies=["DEMO"])


def test_a_colleague_files_no_receipt_use_or_recall_answer_for_anothers_request(
    recalled, colleague, researcher, session
):  # type: ignore[no-untyped-def]  # noqa: F811
    """The issue's finding: receive, consumed, recall acknowledgement and destruction report
    accepted any researcher of the sub-study; now 403, and nothing recorded."""
    number, codes, notice = recalled
    base = f"/api/v1/requests/{number}"
    assert colleague.post(f"{base}/receive", json={}).status_code == 403
    assert researcher.post(f"{base}/receive", json={}).status_code == 200
    assert colleague.post(f"{base}/consumed", json={"barcodes": codes[1:]}).status_code == 403
    recall = f"{base}/recalls/{notice.id}"
    assert colleague.post(f"{recall}/acknowledge").status_code == 403
    assert colleague.post(f"{recall}/destroyed").status_code == 403
    session.refresh(notice)
    assert notice.acknowledged_at is None and notice.destruction_reported_at is None
    assert set(statuses(session, codes).values()) == {"shipped"}
    # Reading stays open to the sub-study.
    assert colleague.get(base).status_code == 200
    assert colleague.get(f"{base}/manifest").status_code == 200


def test_the_requester_and_a_manager_act_on_the_request(recalled, researcher, manager):  # type: ignore[no-untyped-def]  # noqa: F811
    """The requester receives and answers the recall; a manager may file them too."""
    number, codes, notice = recalled
    base = f"/api/v1/requests/{number}"
    assert manager.post(f"{base}/receive", json={}).status_code == 200
    assert researcher.post(f"{base}/recalls/{notice.id}/acknowledge").status_code == 200
    assert manager.post(f"{base}/recalls/{notice.id}/destroyed").status_code == 200
    assert researcher.post(f"{base}/consumed", json={"barcodes": codes[1:]}).status_code == 200


def _request_routes(app):  # type: ignore[no-untyped-def]
    return sorted(
        (rule.rule, method, permission_of(rule.endpoint, app))
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
        if re.search(r"<(?:[a-z_]+:)?number>", rule.rule)
    )


def test_the_route_walk_lets_a_colleague_read_every_request_route_and_act_on_none(
    recalled, colleague, app, session
):  # type: ignore[no-untyped-def]
    """Every route of a request (API and pages): a colleague of the sub-study reads (200)
    where researchers may read, and is refused (403) every action; nothing is written."""
    number, codes, notice = recalled
    before = row_counts(session)
    problems = []
    routes = _request_routes(app)
    for rule, method, action in routes:
        url = re.sub(r"<(?:[a-z_]+:)?number>", number, rule)
        url = url.replace("<notice_id>", str(notice.id))
        if not allowed("researcher", action or ""):
            continue  # the matrix refuses researchers (403 by role): tested elsewhere
        if method == "GET":
            response = colleague.get(url)
            expected = 200
        elif url.startswith("/api/"):
            body = {
                "cancel": {"reason": "not needed"},
                "consumed": {"barcodes": codes},
                "reject": {"reason": "no"},
                "pick": {"barcode": codes[0]},
                "drop": {"barcode": codes[0], "reason": "no"},
            }.get(url.rsplit("/", 1)[1], {})
            if method == "PATCH":
                body = {"title": "Taken over"}
            response = getattr(colleague, method.lower())(url, json=body)
            expected = 403
        else:
            response = getattr(colleague, method.lower())(
                url, data={"barcodes": codes[0], "reason": "no", "note": "x"}
            )
            expected = 403
        if response.status_code != expected:
            problems.append(f"{method} {url}: {response.status_code}, expected {expected}")
    assert len(routes) > 30
    assert not problems, "\n".join(problems)
    assert row_counts(session) == before
