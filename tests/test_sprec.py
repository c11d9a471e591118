"""SPREC v3.0 for fluids: every element table, exact boundaries, elements 4–6 recorded and
coded by definition, derivatives, and the migration that maps the codes already given."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from db_helpers import private_database
from sqlalchemy import create_engine, select, text

from biobank import clock, create_app
from biobank.reference import sprec
from biobank.reference.models import SprecCode

COUNTS = {
    "sample_type": 34,
    "primary_container": 35,
    "precentrifugation": 17,
    "centrifugation": 14,
    "second_centrifugation": 13,
    "post_centrifugation": 13,
    "long_term_storage": 25,
}
SPIN_RT = {"temperature": "RT", "minutes": 10, "g": 2000, "braking": True}


def sample_body(study_id: str, **overrides):  # type: ignore[no-untyped-def]
    """A valid sample registration body."""
    collected = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    body = {
        "study_id": study_id,
        "timepoint": "DX",
        "material": "PB",
        "collected_at": collected.isoformat(),
        "received_at": (collected + dt.timedelta(hours=6)).isoformat(),
        "volume_ml": "3.5",
        "container_code": "PED",
        "precentrifugation_delay_hours": "6",
        "precentrifugation_temperature": "RT",
    }
    body.update(overrides)
    return body


@pytest.fixture
def patient(make_patient):  # type: ignore[no-untyped-def]
    """A patient diagnosed 10 days ago."""
    return make_patient(diagnosis_date=clock.today() - dt.timedelta(days=10))


def split(tech, sample, *children, **extra):  # type: ignore[no-untyped-def]
    return tech.post(f"/api/v1/samples/{sample}/split", json={"aliquots": list(children), **extra})


def test_every_element_has_its_v3_table_with_the_source_beside_it(session):
    """34 sample types, 35 containers, 17 pre-centrifugation, 14 centrifugation, 13 second
    centrifugation, 13 post-centrifugation and 25 storage codes, in the database as in the
    cited data file."""
    assert {name: len(codes) for name, codes in sprec.CODES.items()} == COUNTS
    assert "Betsou" in sprec.SOURCE and sprec.VERSION == "3.0"
    stored = {(r.element, r.code, r.name) for r in session.scalars(select(SprecCode))}
    assert stored == {
        (element, code, name)
        for element, codes in sprec.CODES.items()
        for code, name in codes.items()
    }
    assert {"CPH", "CSV", "FIL", "GLS", "LHB", "OMN", "RNL", "SCK", "SED"} <= set(
        sprec.CODES["primary_container"]
    )
    assert sprec.CODES["primary_container"]["CPT"] == "Cell Preparation Tube citrate"


def test_the_codes_are_listed_by_the_api(tech):
    """GET /sprec-codes: every element's codes and names, version and source."""
    body = tech.get("/api/v1/sprec-codes").json
    assert body["version"] == "3.0" and "Betsou" in body["source"]
    assert {e["element"]: len(e["codes"]) for e in body["elements"]} == COUNTS


@pytest.mark.parametrize("container", ["CPH", "SED", "SCK", "GLS"])
def test_containers_added_in_v3_are_accepted(tech, patient, container):
    """CPH or SED was a 422 (v2.0 list)."""
    answer = tech.post(
        "/api/v1/samples", json=sample_body(patient.study_id, container_code=container)
    )
    assert answer.status_code == 201, answer.json


@pytest.mark.parametrize(
    ("hours", "temperature", "code"),
    [
        ("1.99", "RT", "A"),
        ("2", "RT", "C"),
        ("4", "RT", "C"),
        ("4.01", "RT", "E"),
        ("24", "RT", "I"),
        ("48", "RT", "K"),
        ("48.01", "RT", "M"),
        ("48", "2-10C", "L"),
        ("1.5", "35-38C", "O"),
        ("3", "35-38C", "Z"),
    ],
)
def test_pre_centrifugation_boundaries_are_the_tables(tech, patient, hours, temperature, code):
    """Exactly 48 h at RT is K (24–48 h), not M; 35–38 °C under 2 h is O."""
    sample = tech.post(
        "/api/v1/samples",
        json=sample_body(
            patient.study_id,
            precentrifugation_delay_hours=hours,
            precentrifugation_temperature=temperature,
        ),
    ).json["barcode"]
    answer = split(tech, sample, {"aliquot_type": "WB", "volume_ml": "0.5"})
    assert answer.status_code == 201, answer.json
    [made] = answer.json
    assert sprec.elements(made["sprec_code"])["precentrifugation"] == code


def test_an_unknown_temperature_is_refused_not_taken_for_room_temperature(tech, patient):
    """'37C' is a 422 naming precentrifugation_temperature."""
    answer = tech.post(
        "/api/v1/samples", json=sample_body(patient.study_id, precentrifugation_temperature="37C")
    )
    assert answer.status_code == 422
    assert "precentrifugation_temperature" in answer.json["errors"]["json"]
    with pytest.raises(ValueError):
        sprec.precentrifugation_code(Decimal(1), "37C")


@pytest.mark.parametrize("storage", ["E", "S", "T", "V", "W", "A"])
def test_every_v3_storage_code_is_accepted(tech, patient, storage):
    """Programmable freezing to < −135 °C (E) and the PP tube codes were refused."""
    sample = tech.post("/api/v1/samples", json=sample_body(patient.study_id)).json["barcode"]
    answer = split(
        tech,
        sample,
        {
            "aliquot_type": "MNC-V",
            "cell_count": 5_000_000,
            "source_volume_ml": "1",
            "storage": storage,
        },
    )
    assert answer.status_code == 201, answer.json
    assert answer.json[0]["sprec_code"].endswith(f"-{storage}")


def test_elements_four_to_six_follow_by_definition_and_from_the_recorded_processing(tech, patient):
    """Whole blood: N-N-N. Single-spun plasma: the recorded spin, N for the second, the
    post-centrifugation delay. Double-spun plasma: both spins. Cells without a record: X."""
    sample = tech.post("/api/v1/samples", json=sample_body(patient.study_id)).json["barcode"]
    processing = {
        "centrifugation": SPIN_RT,
        "second_centrifugation": {**SPIN_RT, "g": 4000},
        "post_centrifugation_delay_hours": "0.5",
        "post_centrifugation_temperature": "2-10C",
    }
    made = split(
        tech,
        sample,
        {"aliquot_type": "WB", "volume_ml": "0.2", "storage": "D"},
        {"aliquot_type": "PLASMA", "volume_ml": "0.2", "storage": "D"},
        {"aliquot_type": "PLASMA2", "volume_ml": "0.2", "storage": "D"},
        processing=processing,
    )
    assert made.status_code == 201, made.json
    codes = [a["sprec_code"] for a in made.json]
    assert codes == ["BLD-PED-E-N-N-N-D", "PL1-PED-E-B-N-A-D", "PL2-PED-E-B-E-A-D"]
    unknown = split(
        tech,
        sample,
        {"aliquot_type": "PLASMA", "volume_ml": "0.2"},
        {"aliquot_type": "MNC-V", "cell_count": 10_000, "source_volume_ml": "0.5"},
    )
    assert [a["sprec_code"] for a in unknown.json] == ["PL1-PED-E-X-N-X-X", "CEL-PED-E-X-X-X-X"]


def test_a_processing_temperature_outside_the_tables_is_a_422(tech, patient):
    """A centrifugation at 37 °C: 422 naming the field."""
    sample = tech.post("/api/v1/samples", json=sample_body(patient.study_id)).json["barcode"]
    answer = split(
        tech,
        sample,
        {"aliquot_type": "PLASMA", "volume_ml": "0.2"},
        processing={"centrifugation": {**SPIN_RT, "temperature": "37C"}},
    )
    assert answer.status_code == 422
    assert "processing" in answer.json["errors"]["json"]


def test_dna_and_rna_carry_the_code_of_the_specimen_they_come_from(tech, patient):
    """DNA from a pellet: the pellet's code, and which tube it is; RNA from the sample: the
    primary sample's code (not centrifuged, not stored)."""
    sample = tech.post("/api/v1/samples", json=sample_body(patient.study_id)).json["barcode"]
    [pellet] = split(
        tech,
        sample,
        {
            "aliquot_type": "PELLET",
            "cell_count": 1_000_000,
            "source_volume_ml": "1",
            "storage": "D",
        },
    ).json
    [dna] = tech.post(
        f"/api/v1/aliquots/{pellet['barcode']}/split",
        json={
            "aliquots": [{"aliquot_type": "DNA", "volume_ml": "0.05", "storage": "A"}],
            "consume_parent": True,
        },
    ).json
    assert dna["sprec_code"] == pellet["sprec_code"]
    assert dna["sprec_derived_from"] == pellet["barcode"]
    [rna] = split(tech, sample, {"aliquot_type": "RNA", "volume_ml": "0.05"}).json
    assert rna["sprec_code"] == "BLD-PED-E-N-N-N-X"
    assert rna["sprec_derived_from"] == sample
    assert pellet["sprec_derived_from"] is None


# --- the migration ------------------------------------------------------------------------

OLD = "48b1893b1b55"  # the revision before SPREC v3.0 (and this other migrations)


@pytest.fixture
def old_database(tmp_path):  # type: ignore[no-untyped-def]
    """A database of its own at the revision before SPREC v3.0, with v2.0-era codes."""
    yield from private_database(tmp_path, "sprec_migration")


def _cli(url: str, *args: str) -> None:
    app = create_app({"DATABASE_URL": url, "TESTING": True})
    with app.app_context():
        result = app.test_cli_runner().invoke(args=list(args))
        assert result.exit_code == 0, result.output
    app.extensions["biobank.engine"].dispose()


def test_the_migration_maps_existing_codes_and_its_downgrade_maps_them_back(old_database):
    """Upgrade: 48 h at RT becomes K, single-spun plasma gets N for the second spin, whole
    marrow N-N-N, DNA its pellet's code. Downgrade: the v2.0-era codes come back."""
    _cli(old_database, "db", "upgrade", OLD)
    engine = create_engine(old_database)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO site (code, name, country) VALUES ('S1', 'Site', 'NL')"))
        conn.execute(
            text(
                "INSERT INTO material (code, name, sprec_type) VALUES ('BM', 'Bone marrow', 'BMA')"
            )
        )
        for code, kind in (("PLASMA", "PL1"), ("WBM", "BMA"), ("PELLET", "PEL"), ("DNA", None)):
            conn.execute(
                text(
                    "INSERT INTO aliquot_type (code, name, sprec_type, unit, materials)"
                    " VALUES (:c, :c, :t, 'mL', '[]')"
                ),
                {"c": code, "t": kind},
            )
        conn.execute(
            text(
                "INSERT INTO patient (study_id, site_id, sex, diagnosis, fusion_partner, "
                "diagnosis_date, age_at_diagnosis_days, prednisone_response, risk_group, created_at)"
                " VALUES ('P1', 1, 'F', 'B-ALL', 'AFF1', '2026-01-05', 100, 'good', 'MR', "
                "'2026-01-05 10:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO sample (barcode, patient_id, unscheduled_reason, material_id, "
                "collected_at, received_at, volume_ml, volume_remaining_ml, container_code, "
                "precentrifugation_delay_hours, precentrifugation_temperature, created_at) VALUES "
                "('SM1', 1, 'x', 1, '2026-01-05 10:00:00', '2026-01-07 10:00:00', 5, 1, 'PED', 48, "
                "'RT', '2026-01-07 10:00:00')"
            )
        )
        rows = [
            ("A1", 1, None, "PL1-PED-M-X-X-X-D"),
            ("A2", 2, None, "BMA-PED-M-X-X-X-X"),
            ("A3", 3, None, "PEL-PED-M-X-X-X-C"),
            ("A4", 4, 3, None),
        ]
        for barcode, kind, parent, code in rows:
            conn.execute(
                text(
                    "INSERT INTO aliquot (barcode, barcode_source, sample_id, parent_aliquot_id, "
                    "aliquot_type_id, volume_ml, volume_remaining_ml, sprec_code, "
                    "freeze_thaw_count, status, created_at) VALUES (:b, 'issued', 1, :p, :k, 0.1, "
                    "0.1, :c, 0, 'available', '2026-01-07 11:00:00')"
                ),
                {"b": barcode, "p": parent, "k": kind, "c": code},
            )

    def codes() -> dict[str, str | None]:
        with engine.connect() as conn:
            return dict(conn.execute(text("SELECT barcode, sprec_code FROM aliquot")).all())

    before = codes()
    _cli(old_database, "db", "upgrade")
    assert codes() == {
        "A1": "PL1-PED-K-X-N-X-D",
        "A2": "BMA-PED-K-N-N-N-X",
        "A3": "PEL-PED-K-X-X-X-C",
        "A4": "PEL-PED-K-X-X-X-C",
    }
    # The downgrade drops what SPREC v3.0 and the later revisions added (--force: this
    # test is about the codes mapped back).
    _cli(old_database, "db", "downgrade", OLD, "--force")
    assert codes() == before
    engine.dispose()
