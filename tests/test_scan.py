"""The scan: any code the service knows, forgiving of case and whitespace, in few queries."""

from __future__ import annotations

import pytest

from biobank.samples.barcodes import make


def test_scanning_an_aliquot_shows_what_a_technician_needs(tech, make_aliquots):
    """Study, timepoint, material, type, volume, status, freeze–thaw and the last events."""
    [aliquot] = make_aliquots(1)
    response = tech.get(f"/api/v1/scan/{aliquot.barcode}")
    assert response.status_code == 200
    card = response.json
    assert card["kind"] == "aliquot"
    assert card["study_id"] == aliquot.sample.patient.study_id
    assert (card["timepoint"], card["material"], card["aliquot_type"]) == ("DX", "BM", "PLASMA")
    assert (card["volume_ml"], card["status"], card["freeze_thaw_count"]) == ("0.500", "available", 0)
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
    [child] = service.split(session, "t", parent, [{"aliquot_type": "DNA", "volume_ml": "0.1"}],
                            service.Numbering())
    assert tech.get(f"/api/v1/scan/{child.barcode}").json["parent"] == parent.barcode


@pytest.mark.parametrize("n", [1, 40])
def test_the_scan_uses_a_fixed_number_of_queries(tech, make_aliquots, count_queries, n):
    """Whatever the data size and history, an aliquot scan costs the same few queries."""
    made = make_aliquots(n, volume="0.05")
    target = made[-1]
    for _ in range(3):  # some history on the tube
        tech.post(f"/api/v1/aliquots/{target.barcode}/status",
                  json={"status": "missing", "reason": "x"})
        tech.post(f"/api/v1/aliquots/{target.barcode}/status", json={"status": "available"})
    with count_queries() as counted:
        assert tech.get(f"/api/v1/scan/{target.barcode}").status_code == 200
    # token lookup + tube (with sample, patient, parent) + storage location and condition
    # notes + consent log + last events
    assert counted.count == 5, counted.statements
