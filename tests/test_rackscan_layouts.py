"""Every rack-scanner layout labs have, recognised by content (tests/data/rack-scans)."""

from __future__ import annotations

from pathlib import Path

import pytest

from biobank.storage import rackscan

SCANS = Path(__file__).parent / "data" / "rack-scans"


def read(name: str) -> str:
    """The file as an upload delivers it: bytes decoded, line ends untouched."""
    return (SCANS / name).read_bytes().decode("utf-8-sig")


@pytest.mark.parametrize(
    ("name", "rack", "tubes", "unreadable"),
    [
        ("per-line-rack.csv", "TR00012345", 95, ["B5"]),
        ("rack-on-first-line.csv", "RK-000881", 94, []),
        ("thermo-matrix-trace.txt", "02498606", 20, []),
        ("fluidx-with-rack.csv", "FX12345678", 16, []),
        ("fluidx-no-rack.csv", None, 15, ["C1"]),
        ("fluidx-spaces.csv", "TR00000002", 5, ["D1"]),
        ("thermo-visionmate.csv", "VM00042", 19, ["A5"]),
        ("ziath-datapaq.csv", "ZR000771", 9, ["A7"]),
        ("micronic.csv", "MR5501234", 7, ["A4"]),
    ],
)
def test_each_layout_gives_its_rack_tubes_and_unreadable_wells(name, rack, tubes, unreadable):
    """The rack code, the tubes read and the wells the camera could not read."""
    scan = rackscan.parse(read(name))
    assert scan.rack == rack
    assert len([e for e in scan.entries if e.tube]) == tubes
    assert [e.position for e in scan.entries if e.tube is None] == unreadable


def test_the_trace_file_is_recognised_as_such_with_its_codes():
    """The TRACE date line is not a rack code; 'No TrakMate' wells are empty; codes kept."""
    scan = rackscan.parse(read("thermo-matrix-trace.txt"))
    assert "TRACE" in scan.layout
    assert scan.entries[0].position == "A1" and scan.entries[0].tube == "1034998001"
    assert all(e.tube for e in scan.entries)


@pytest.mark.parametrize(
    "name", ["fluidx-spaces.csv", "thermo-visionmate.csv", "ziath-datapaq.csv", "micronic.csv"]
)
def test_layout_names_say_which_scanner_wrote_the_file(name):
    """The preview tells the user which layout was read."""
    layout = rackscan.parse(read(name)).layout
    expected = {
        "fluidx-spaces.csv": "rack on every line",
        "thermo-visionmate.csv": "VisionMate",
        "ziath-datapaq.csv": "header",
        "micronic.csv": "header",
    }[name]
    assert expected in layout
