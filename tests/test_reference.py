"""Reference data: defaults from the data file, editable by managers, audited."""

from __future__ import annotations

from biobank.custody.service import audit_trail


def test_the_default_mrd_schedule_is_loaded(tech):
    """The nine default timepoints come in protocol order with their risk groups."""
    timepoints = tech.get("/api/v1/timepoints").json
    assert [t["code"] for t in timepoints] == [
        "DX",
        "D8",
        "D15",
        "EOI",
        "B1",
        "EOC",
        "B2",
        "PRE-HSCT",
        "REL",
    ]
    by_code = {t["code"]: t for t in timepoints}
    assert by_code["B2"]["risk_groups"] == ["MR"]
    assert by_code["PRE-HSCT"]["risk_groups"] == ["HR"]
    assert by_code["EOI"]["expected_materials"] == ["BM", "PB", "CSF"]


def test_materials_and_aliquot_types_carry_sprec_codes(tech):
    """BM is SPREC BMA; viable MNC is CEL; DNA has no fluid SPREC type."""
    materials = {m["code"]: m for m in tech.get("/api/v1/materials").json}
    assert materials["BM"]["sprec_type"] == "BMA"
    types = {t["code"]: t for t in tech.get("/api/v1/aliquot-types").json}
    assert types["MNC-V"]["sprec_type"] == "CEL"
    assert types["DNA"]["sprec_type"] is None


def test_loading_the_defaults_twice_adds_nothing(runner):
    """`reference load` is idempotent."""
    result = runner.invoke(args=["reference", "load"])
    assert result.exit_code == 0
    assert (
        "0 sites added, 0 materials added, 0 aliquot_types added, 0 timepoints added"
        in result.output
    )


def test_a_manager_adds_a_site_and_the_change_is_audited(manager, session):
    """A new site is created, listed and audited under the manager's name."""
    response = manager.post(
        "/api/v1/sites",
        json={
            "code": "DE-KIEL",
            "name": "Universitätsklinikum Schleswig-Holstein",
            "country": "DE",
        },
    )
    assert response.status_code == 201, response.json
    assert manager.get("/api/v1/sites/DE-KIEL").json["country"] == "DE"
    [record] = audit_trail(session, "sites", "DE-KIEL")
    assert (record.action, record.actor) == ("created", manager.username)


def test_editing_a_timepoint_window_keeps_old_values(manager, session):
    """A PATCH changes the window and the audit keeps the previous one."""
    response = manager.patch("/api/v1/timepoints/EOI", json={"window_after_days": 10})
    assert response.status_code == 200
    assert response.json["window_after_days"] == 10
    [record] = [r for r in audit_trail(session, "timepoints", "EOI") if r.action == "updated"]
    assert record.actor == manager.username
    assert record.old_values == {"window_after_days": 7}


def test_the_code_of_a_reference_row_cannot_be_edited(manager):
    """code is not an editable field: 422 unknown field."""
    response = manager.patch("/api/v1/sites/NL-PMC", json={"code": "NL-X"})
    assert response.status_code == 422
    assert "code" in response.json["errors"]["json"]


def test_bad_reference_input_is_refused(manager):
    """Duplicate code 409; unknown material in a schedule 422; bad country 422."""
    assert (
        manager.post(
            "/api/v1/sites", json={"code": "NL-PMC", "name": "x", "country": "NL"}
        ).status_code
        == 409
    )
    response = manager.post(
        "/api/v1/timepoints",
        json={
            "code": "D29",
            "name": "Day 29",
            "phase": "Induction",
            "risk_groups": ["MR"],
            "expected_materials": ["BM", "SALIVA"],
        },
    )
    assert response.status_code == 422
    assert "expected_materials" in response.json["errors"]["json"]
    assert (
        manager.post(
            "/api/v1/sites", json={"code": "XX-1", "name": "x", "country": "Netherlands"}
        ).status_code
        == 422
    )


def test_technicians_read_but_do_not_edit_reference_data(tech):
    """Editing reference data is a manager's job: 403 for a technician."""
    assert tech.get("/api/v1/sites").status_code == 200
    assert (
        tech.post(
            "/api/v1/sites", json={"code": "SE-KS", "name": "Karolinska", "country": "SE"}
        ).status_code
        == 403
    )
