"""What a person must see before a rack scan is applied: the rack code against the box's,
tubes the biobank does not know, wells the scanner could not read (issue 16)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from biobank.custody.models import AuditRecord
from biobank.samples import service as samples
from biobank.storage import service
from biobank.storage.models import Container, RackScan

ACTOR = "test-fixture"
NUMBERING = samples.Numbering()
SCANS = Path(__file__).parent / "data" / "rack-scans"
CSV = {"Content-Type": "text/csv"}


@pytest.fixture
def lab(session, make_sample):  # type: ignore[no-untyped-def]
    """Two SBS racks, one registered as FX12345678 and one as the TRACE file's 02498606, one
    without a rack code; the tubes of the FluidX and TRACE example files registered."""
    freezer = service.create_freezer(
        session,
        ACTOR,
        {"site": "NL-PMC", "name": "F-80-16", "freezer_type": "mechanical-80"},
        NUMBERING,
    )

    def box(code):  # type: ignore[no-untyped-def]
        return service.create_box(
            session,
            ACTOR,
            {"box_type": "SBS96", "parent": freezer.barcode, "external_barcode": code},
            NUMBERING,
        )

    codes = [f"AB100000{n:02d}" for n in range(1, 17)] + [f"10349980{n:02d}" for n in range(1, 21)]
    samples.split(
        session,
        ACTOR,
        make_sample(volume_ml=Decimal("4")),
        [{"aliquot_type": "PLASMA", "volume_ml": Decimal("0.01"), "barcode": c} for c in codes],
        NUMBERING,
    )
    session.commit()
    return SimpleNamespace(fluidx=box("FX12345678"), trace=box("02498606"), bare=box(None))


def upload(tech, box, name):  # type: ignore[no-untyped-def]
    return tech.post(
        f"/api/v1/boxes/{box.barcode}/scan-upload", data=(SCANS / name).read_bytes(), headers=CSV
    )


def confirm(tech, box, token, **body):  # type: ignore[no-untyped-def]
    return tech.post(f"/api/v1/boxes/{box.barcode}/scan-upload/{token}/confirm", json=body)


def test_a_thermo_matrix_trace_file_reconciles(tech, lab):
    """Date line, 'Rack Base Name:', ';' and CRLF, 'No TrakMate': read, rack matches, 20
    tubes placed, nothing to acknowledge."""
    report = upload(tech, lab.trace, "thermo-matrix-trace.txt")
    assert report.status_code == 200, report.json
    body = report.json
    assert body["rack"] == "02498606" and body["rack_check"]["status"] == "match"
    assert "TRACE" in body["layout"]
    assert len(body["moved"]) == 20 and body["acknowledge"] == []
    assert confirm(tech, lab.trace, body["token"]).json["moved"] == 20


def test_a_box_without_a_rack_code_is_offered_the_files(tech, lab, session):
    """FX12345678 into a box without a code would be accepted silently: now the preview says
    so and offers to record it; recording it is audited."""
    lab.fluidx.external_barcode = None  # the file's rack is not registered anywhere
    session.commit()
    body = upload(tech, lab.bare, "fluidx-with-rack.csv").json
    assert body["rack_check"]["status"] == "unregistered" and body["can_record_rack"] is True
    assert "FX12345678" in body["rack_check"]["message"]
    done = confirm(tech, lab.bare, body["token"], record_rack=True)
    assert done.status_code == 200, done.json
    assert done.json["rack_recorded"] == "FX12345678"
    session.expire_all()
    assert session.get(Container, lab.bare.id).external_barcode == "FX12345678"
    assert (
        session.scalar(
            select(AuditRecord).where(
                AuditRecord.entity_key == lab.bare.barcode,
                AuditRecord.action == "rack_code_recorded",
            )
        )
        is not None
    )


def test_another_racks_file_is_a_warning_to_acknowledge(tech, lab, session):
    """The FluidX file of FX12345678 uploaded to the other box: the preview names the box the
    rack belongs to; confirming without acknowledging it is a 409, with it the scan applies."""
    body = upload(tech, lab.bare, "fluidx-with-rack.csv").json
    check = body["rack_check"]
    assert (check["status"], check["other_box"]) == ("mismatch", lab.fluidx.barcode)
    assert [a["finding"] for a in body["acknowledge"]] == ["rack_mismatch"]
    refused = confirm(tech, lab.bare, body["token"])
    assert refused.status_code == 409 and "rack mismatch" in refused.json["message"]
    done = confirm(tech, lab.bare, body["token"], acknowledge=["rack_mismatch"])
    assert done.status_code == 200 and done.json["moved"] == 16
    held = session.scalar(select(RackScan).where(RackScan.token == body["token"]))
    assert held.acknowledged == ["rack_mismatch"]


def test_a_registered_rack_code_that_differs_is_a_warning_not_a_refusal(tech, lab):
    """The TRACE file uploaded to the FluidX rack: 200 with the mismatch to acknowledge."""
    body = upload(tech, lab.fluidx, "thermo-matrix-trace.txt").json
    assert body["rack_check"]["status"] == "mismatch"
    assert "02498606" in body["rack_check"]["message"]
    assert confirm(tech, lab.fluidx, body["token"], record_rack=True).status_code == 409


def test_unknown_tubes_and_unread_wells_must_be_acknowledged(tech, lab):
    """A VisionMate file whose tubes nobody registered, with an unread well: both findings are
    listed with what they are, and both must be acknowledged."""
    body = upload(tech, lab.bare, "thermo-visionmate.csv").json
    findings = {a["finding"]: a["message"] for a in body["acknowledge"]}
    assert set(findings) == {"unknown_tubes", "unreadable_wells"}
    assert "19 tube(s)" in findings["unknown_tubes"] and "A05" in findings["unreadable_wells"]
    half = confirm(tech, lab.bare, body["token"], acknowledge=["unknown_tubes"])
    assert half.status_code == 409 and "unreadable wells" in half.json["message"]
    done = confirm(
        tech,
        lab.bare,
        body["token"],
        acknowledge=["unknown_tubes", "unreadable_wells"],
        record_rack=True,
    )
    assert done.status_code == 200, done.json
    assert done.json["acknowledged"] == ["unknown_tubes", "unreadable_wells"]


def test_recording_a_rack_code_when_none_is_offered_is_a_422(tech, lab):
    """record_rack for a box that has its code already: 422 naming record_rack."""
    body = upload(tech, lab.trace, "thermo-matrix-trace.txt").json
    answer = confirm(tech, lab.trace, body["token"], record_rack=True)
    assert answer.status_code == 422 and "record_rack" in answer.json["errors"]["json"]
