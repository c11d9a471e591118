"""Researchers' and managers' pages for sample requests, through the pages' own requests."""

from __future__ import annotations

import pytest
from requests_helpers import (  # noqa: F401
    SHIPMENT,
    allocated,
    donor,
    freezer,
    give,
    new_request,
    researcher,
    statuses,
    studies,
)
from sqlalchemy import select
from web_helpers import login  # noqa: F401

from biobank import clock
from biobank.auth import service as auth
from biobank.consent import withdrawal
from biobank.requests.models import SampleRequest
from tests.conftest import ApiClient


def text(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True)


def request_row(session, number):  # type: ignore[no-untyped-def]
    return session.scalar(select(SampleRequest).where(SampleRequest.number == number))


def test_the_availability_matrix_counts_what_the_sub_study_may_receive(login, donor):
    """Timepoint rows, material and type columns, tubes and patients in each cell."""
    donor({"DX": 3, "EOI": 2}, "DEMO")
    donor({"DX": 1})  # no DEMO consent: not counted
    page = text(login("researcher").get("/research"))
    assert "What DEMO may receive" in page and "<strong>5</strong> available tube(s)" in page
    assert '<strong>3</strong> tubes<br><span class="pts">1 patient</span>' in page
    assert '<th scope="row">EOI</th>' in page


def test_another_sub_studys_availability_is_not_shown_to_a_researcher(login, donor):
    """Asking about a sub-study not one's own says it does not exist, and counts nothing."""
    donor({"DX": 2}, "DEMO", "MRD-NGS")
    page = text(login("researcher").get("/research?substudy=MRD-NGS"))
    assert "no sub-study &#39;MRD-NGS&#39;" in page and "available tube(s)" not in page


def test_a_request_made_on_the_form_is_checked_by_the_apis_schema(login, donor, session):
    """A missing patient count is a 422 naming the field; a good form makes the request."""
    donor({"DX": 2}, "DEMO")
    researcher = login("researcher")
    form = {
        "substudy": "DEMO",
        "title": "Plasma",
        "purpose": "Method development",
        "materials": "BM",
        "aliquot_types": "PLASMA",
        "submit_now": "1",
    }
    answer = researcher.post("/requests/new", form)
    assert answer.status_code == 422 and "criteria.patients" in text(answer)
    answer = researcher.post("/requests/new", {**form, "patients": "1"})
    assert answer.status_code == 303, text(answer)
    number = answer.headers["Location"].rsplit("/", 1)[1]
    made = request_row(session, number)
    assert made.state == "submitted" and made.created_by == researcher.username
    assert made.criteria["materials"] == ["BM"] and made.criteria["patients"] == 1


def test_a_manager_takes_a_request_from_approval_to_shipping(login, researcher, donor, session):
    """Approve, allocate, pick by scan (a stranger tube refused in words), ship: each step
    is the requests service's, and the manifest is linked."""
    first, second = donor({"DX": 1}, "DEMO"), donor({"DX": 1}, "DEMO")
    number = new_request(researcher)
    manager = login("manager")
    assert "Matching now" in text(manager.get(f"/requests/{number}"))
    assert manager.post(f"/requests/{number}/approve", {"note": ""}).status_code == 303
    assert manager.post(f"/requests/{number}/allocate").status_code == 303
    pick_page = text(manager.get(f"/requests/{number}/pick-list"))
    assert first.barcodes[0] in pick_page and "2</strong> of 2 tube(s) left" in pick_page
    answer = manager.post(f"/requests/{number}/pick", {"barcode": "IF-NOT-OURS"})
    assert answer.status_code == 404 and 'role="alert"' in text(answer)
    for code in (first.barcodes[0], second.barcodes[0]):
        answer = manager.post(f"/requests/{number}/pick", {"barcode": code})
        assert answer.status_code == 200 and f"{code} picked" in text(answer)
    assert "all tubes picked" in text(answer)
    answer = manager.post(f"/requests/{number}/ship", SHIPMENT)
    assert answer.status_code == 303, text(answer)
    page = text(manager.get(f"/requests/{number}"))
    assert "shipped" in page and f"/api/v1/requests/{number}/manifest" in page
    assert statuses(session, [first.barcodes[0]]) == {first.barcodes[0]: "shipped"}


def test_a_manager_may_not_approve_their_own_request(login, donor):
    """The service's rule, as a page: another manager must decide."""
    donor({"DX": 1}, "DEMO")
    manager = login("manager")
    answer = manager.post(
        "/requests/new",
        {
            "substudy": "DEMO",
            "title": "Own",
            "purpose": "Own use",
            "patients": "1",
            "submit_now": "1",
        },
    )
    number = answer.headers["Location"].rsplit("/", 1)[1]
    answer = manager.post(f"/requests/{number}/approve", {"note": ""})
    assert answer.status_code == 403 and "another manager must approve it" in text(answer)


@pytest.fixture
def recalled(login, manager, donor, session, tech, client, studies):  # type: ignore[no-untyped-def]  # noqa: F811
    """A request made on the pages by a researcher, shipped, then one of its tubes recalled
    (storage consent withdrawn): (the requester's browser, the request number)."""
    patient = donor({"DX": 1}, "DEMO").patient
    donor({"DX": 1}, "DEMO")
    mine = login("researcher")
    owner = ApiClient(
        client, auth.issue_token(session, auth.get_user(session, mine.username)), mine.username
    )
    session.commit()
    number = allocated(owner, manager)
    for tube in tech.get(f"/api/v1/requests/{number}/pick-list").json["tubes"]:
        tech.post(f"/api/v1/requests/{number}/pick", json={"barcode": tube["barcode"]})
    assert manager.post(f"/api/v1/requests/{number}/ship", json=SHIPMENT).status_code == 200
    withdrawal.withdraw(
        session,
        "officer",
        patient,
        {"scope": "storage", "date": clock.today(), "requested_by": "mother"},
    )
    session.commit()
    return mine, number


def test_a_researcher_sees_state_and_recalls_but_not_the_biobanks_internals(
    recalled, login, manager
):  # type: ignore[no-untyped-def]  # noqa: F811
    """After shipping and a withdrawal: the recall notice with its buttons for the researcher
    who made the request (a colleague may not answer it); no names of the biobank staff who
    shipped."""
    mine, number = recalled
    page = text(mine.get(f"/requests/{number}"))
    assert "Recall notices" in page and "Acknowledge" in page
    assert manager.username not in page and "shipped by" not in page.lower()
    assert "recall" in text(mine.get("/research")).lower()
    notice = page.split(f"/requests/{number}/recalls/")[1].split("/")[0]
    colleague = login("researcher")
    assert colleague.post(f"/requests/{number}/recalls/{notice}/acknowledge").status_code == 403
    answer = mine.post(f"/requests/{number}/recalls/{notice}/acknowledge")
    assert answer.status_code == 303
    assert "Acknowledge</button>" not in text(mine.get(f"/requests/{number}"))


def test_a_colleague_reads_the_recall_without_the_buttons_the_owner_rule_refuses(
    recalled, login, manager
):  # type: ignore[no-untyped-def]
    """A researcher of the sub-study who did not make the request sees the recall notice and
    the shipment, but no Acknowledge, Destroyed or "tubes arrived" button (pressing them was
    a 403); the requester and a manager keep them."""
    mine, number = recalled
    colleague = text(login("researcher").get(f"/requests/{number}"))
    assert "Recall notices" in colleague and f"Request {number}" in colleague
    for button in (
        "Acknowledge</button>",
        "Destroyed</button>",
        "The tubes arrived</button>",
        "/recalls/",
        "/receive",
    ):
        assert button not in colleague, button
    for owner in (
        text(mine.get(f"/requests/{number}")),
        text(login("manager").get(f"/requests/{number}")),
    ):
        for button in ("Acknowledge</button>", "Destroyed</button>", "The tubes arrived</button>"):
            assert button in owner, button


def test_technicians_pick_but_do_not_decide(login, researcher, manager, donor):
    """A technician opens the pick list; the approval buttons and availability are not
    theirs."""
    donor({"DX": 1}, "DEMO")
    donor({"DX": 1}, "DEMO")
    number = allocated(researcher, manager)
    tech = login("technician")
    assert tech.get(f"/requests/{number}/pick-list").status_code == 200
    page = text(tech.get(f"/requests/{number}"))
    assert "Pick list" in page and "Allocate" not in page and "Ship the picked" not in page
    assert tech.get("/research").status_code == 403
