"""The scan: any code the service knows, forgiving of case and whitespace, in few queries."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from consent_helpers import consented, days_ago, give, studies  # noqa: F401
from sqlalchemy import select

from biobank.samples.barcodes import make
from biobank.scan import service as scan
from biobank.scan.api import ScanOut


def test_scanning_an_aliquot_shows_what_a_technician_needs(tech, make_aliquots):
    """Study, timepoint, material, type, volume, status, freeze–thaw and the last events."""
    [aliquot] = make_aliquots(1)
    response = tech.get(f"/api/v1/scan/{aliquot.barcode}")
    assert response.status_code == 200
    card = response.json
    assert card["kind"] == "aliquot"
    assert card["study_id"] == aliquot.sample.patient.study_id
    assert (card["timepoint"], card["material"], card["aliquot_type"]) == ("DX", "BM", "PLASMA")
    assert (card["volume_ml"], card["status"], card["freeze_thaw_count"]) == (0.5, "available", 0)
    assert card["recent_events"][0]["event_type"] == "aliquoted"


def test_case_and_surrounding_whitespace_do_not_matter(tech, make_aliquots):
    """A lower-case code with a trailing newline and spaces still resolves."""
    [aliquot] = make_aliquots(1)
    response = tech.get(f"/api/v1/scan/%20{aliquot.barcode.lower()}%0A%20")
    assert response.status_code == 200
    assert response.json["barcode"] == aliquot.barcode


def test_a_wrong_check_character_is_a_422_saying_so(tech, make_aliquots):
    """One mistyped character changes the check: 422, not 404."""
    [aliquot] = make_aliquots(1)
    code = aliquot.barcode
    wrong = code[:-1] + ("A" if code[-1] != "A" else "B")
    response = tech.get(f"/api/v1/scan/{wrong}")
    assert response.status_code == 422
    assert "check character" in response.json["message"]


def test_an_unknown_code_is_a_404(tech):
    """A well-formed own code that was never issued, and a foreign code, are 404s."""
    assert tech.get(f"/api/v1/scan/{make('IF', 99_999_999, 8)}").status_code == 404
    assert tech.get("/api/v1/scan/FX99999999").status_code == 404


def test_a_sample_code_resolves_too(tech, make_sample):
    """Scanning a primary tube shows the sample and its receipt."""
    sample = make_sample()
    response = tech.get(f"/api/v1/scan/{sample.barcode}")
    assert response.status_code == 200
    assert response.json["kind"] == "sample"
    assert response.json["recent_events"][0]["event_type"] == "received"


def test_a_derived_aliquot_names_its_parent(tech, make_aliquots, session):
    """DNA split from a plasma tube shows the parent's barcode."""
    from biobank.samples import service

    [parent] = make_aliquots(1)
    [child] = service.split(
        session, "t", parent, [{"aliquot_type": "DNA", "volume_ml": "0.1"}], service.Numbering()
    )
    assert tech.get(f"/api/v1/scan/{child.barcode}").json["parent"] == parent.barcode


@pytest.mark.parametrize("n", [1, 40])
def test_the_scan_uses_a_fixed_number_of_queries(tech, make_aliquots, count_queries, n):
    """Whatever the data size and history, an aliquot scan costs the same few queries."""
    made = make_aliquots(n, volume="0.05")
    target = made[-1]
    for _ in range(3):  # some history on the tube
        tech.post(
            f"/api/v1/aliquots/{target.barcode}/status", json={"status": "missing", "reason": "x"}
        )
        tech.post(f"/api/v1/aliquots/{target.barcode}/status", json={"status": "available"})
    with count_queries() as counted:
        assert tech.get(f"/api/v1/scan/{target.barcode}").status_code == 200
    # one statement: the bearer token's owner, the tube with its sample, patient and parent,
    # its storage location and condition notes, its patient's consent log, its last events
    assert counted.count == 1, counted.statements


def test_the_one_statement_card_says_what_each_domain_says_on_its_own(
    tech, session, consented, app
):
    """A stored tube, taken out, with a condition note, a changed status and a sub-study
    withdrawn: the scan's single statement shows the same events, place and consent as the
    custody log, the storage service and the consent service read separately."""
    from biobank.consent import service as consent
    from biobank.consent import withdrawal
    from biobank.samples import service as samples
    from biobank.storage import operations
    from biobank.storage import service as storage

    numbering = samples.Numbering()
    made = consented(1, "DEMO", "MRD-NGS")
    [tube] = made.tubes
    freezer = storage.create_freezer(
        session,
        "t",
        {"site": "NL-PMC", "name": "F-80-09", "freezer_type": "mechanical-80"},
        numbering,
    )
    box = storage.create_box(
        session, "t", {"box_type": "9X9", "parent": freezer.barcode, "name": "Plasma 7"}, numbering
    )
    operations.relocate(session, "t", [operations.Target(tube, box, 2, 3)])
    samples.change_status(session, "t", tube, "missing", "not where the map says")
    samples.change_status(session, "t", tube, "available", None)
    session.commit()
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    excursion = tech.post(
        f"/api/v1/freezers/{freezer.barcode}/excursions",
        json={
            "started_at": started.isoformat(),
            "ended_at": dt.datetime.now(dt.UTC).isoformat(),
            "peak_celsius": "-41",
            "note": "door left open",
        },
    )
    assert excursion.status_code == 201, excursion.json
    operations.take_out(session, "t", tube, "to the bench")
    withdrawal.withdraw(
        session,
        "t",
        made.patient,
        {"scope": "MRD-NGS", "date": days_ago(3), "requested_by": "mother"},
    )
    session.commit()

    card = tech.get(f"/api/v1/scan/{tube.barcode}").json
    events = tech.get(f"/api/v1/aliquots/{tube.barcode}/events").json
    assert card["recent_events"] == events[::-1][:5]
    assert [e["event_type"] for e in card["recent_events"]][:2] == ["taken_out", "condition_noted"]
    assert card["recent_events"][1]["new_values"]["excursion_id"] == excursion.json["id"]
    where = operations.position_of(session, tube)
    assert card["location"] == {
        "box": box.barcode,
        "position": "B3",
        "freezer": freezer.barcode,
        "path": "NL-PMC / F-80-09 / Plasma 7",
        "taken_out": True,
        "taken_out_at": where.out_since.isoformat(),
    }
    [note] = card["conditions"]
    assert "F-80-09" in note["note"] and "-41.0 °C" in note["note"]
    state = consent.state_on(consent.patient_entries(session, made.patient.id))
    assert card["consent"]["storage"] == state[("storage", None)].decision == "given"
    assert card["consent"]["substudies"] == {
        "DEMO": {"state": "given", "since": days_ago(100).isoformat()},
        "MRD-NGS": {"state": "withdrawn", "since": days_ago(3).isoformat()},
    }
    # The endpoint answers without the schema: what it sends is what ScanOut would.
    card_made = scan.scan(session, tube.barcode, numbering)
    assert card == json.loads(app.json.dumps(ScanOut().dump(card_made)))


# --- the bearer token, checked in the card's own statement ---------------------------------


@pytest.fixture
def tube(make_aliquots):  # type: ignore[no-untyped-def]
    """One stored-and-ready aliquot."""
    return make_aliquots(1)[0]


def _scan(client, token, code):  # type: ignore[no-untyped-def]
    return client.get(f"/api/v1/scan/{code}", headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("spoil", ["revoked", "expired", "deactivated", "unknown"])
def test_a_scan_with_a_token_that_is_no_good_is_401_and_shows_nothing(
    client, session, tech, tube, spoil
):
    """Revoked, expired, of a deactivated user, or never issued: 401, no card."""
    from biobank.auth import service as auth
    from biobank.auth.models import ApiToken, User

    token = tech.token
    user = session.scalar(select(User).where(User.username == tech.username))
    if spoil == "revoked":
        auth.revoke_tokens(session, user)
    elif spoil == "expired":
        for row in session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)):
            row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    elif spoil == "deactivated":
        auth.deactivate(session, user)
    else:
        token = "bbk_" + "x" * 43
    session.commit()
    for code in (
        tube.barcode,
        tube.barcode[:-1] + ("A" if tube.barcode[-1] != "A" else "B"),
        make("IF", 99_999_999, 8),
    ):  # a tube, a wrong check character, an unknown code
        response = _scan(client, token, code)
        assert response.status_code == 401, (code, response.json)
        assert "study_id" not in response.json and response.headers["WWW-Authenticate"]


def test_a_role_that_may_not_scan_is_403_whatever_the_code(as_role, tube):
    """A researcher's good token: 403 for a tube, a bad check character and a sample."""
    researcher = as_role("researcher")
    for code in (tube.barcode, "IF00000000X", tube.sample.barcode):
        response = researcher.get(f"/api/v1/scan/{code}")
        assert response.status_code == 403, (code, response.json)
        assert "study_id" not in response.json


def test_samples_boxes_and_errors_are_answered_after_the_token_is_checked(tech, tube):
    """Paths whose statement does not read the token check it on their own: a good token
    gets the sample, the 422 and the 404 it asked for."""
    assert tech.get(f"/api/v1/scan/{tube.sample.barcode}").json["kind"] == "sample"
    assert tech.get("/api/v1/scan/IF00000000X").status_code == 422
    assert tech.get(f"/api/v1/scan/{make('IF', 99_999_999, 8)}").status_code == 404
