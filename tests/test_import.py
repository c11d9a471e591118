"""`flask import aliquots FILE.csv`: bulk import of an existing inventory, all or nothing."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from biobank.custody.models import CustodyEvent
from biobank.imports import service
from biobank.imports.rows import COLUMNS
from biobank.samples.models import Aliquot, BarcodeCounter, Sample
from biobank.samples.service import Numbering

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "inventory-import.csv"


@pytest.fixture
def patient(make_patient: Callable[..., Any]) -> Any:
    """A registered infant, diagnosed 200 days ago."""
    return make_patient()


@pytest.fixture
def row(patient: Any) -> Callable[..., dict[str, str]]:
    """``row(**overrides)`` → one good inventory row (a plasma tube at diagnosis) as strings."""

    def make(**overrides: str) -> dict[str, str]:
        day = patient.diagnosis_date.isoformat()
        values = {
            "barcode": "",
            "study_id": patient.study_id,
            "timepoint": "DX",
            "unscheduled_reason": "",
            "material": "BM",
            "aliquot_type": "PLASMA",
            "volume_ml": "0.5",
            "cell_count": "",
            "collected_at": f"{day}T09:00:00+01:00",
            "received_at": f"{day}T14:00:00+01:00",
            "container_code": "PED",
            "precentrifugation_delay_hours": "5",
            "precentrifugation_temperature": "RT",
            "accession_number": "ACC-1",
            "freeze_thaw_count": "0",
            "status": "available",
            "storage": "D",
        }
        values.update(overrides)
        return values

    return make


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[..., Path]:
    """``write_csv(rows, columns=None, delimiter=",")`` → the path of a new CSV file."""
    counter = iter(range(1, 1000))

    def write(
        rows: list[dict[str, str]], columns: list[str] | None = None, delimiter: str = ","
    ) -> Path:
        path = tmp_path / f"inventory-{next(counter)}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(
                handle,
                fieldnames=columns or list(COLUMNS),
                delimiter=delimiter,
                extrasaction="ignore",
            )
            writer.writeheader()
            writer.writerows(rows)
        return path

    return write


def run_import(runner: Any, path: Path, *options: str) -> Any:
    """Run the command as an operator would."""
    return runner.invoke(args=["import", "aliquots", *options, str(path)])


def counts(session: Session) -> dict[str, int]:
    """How many aliquots, samples, custody events and barcode series there are."""
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model))
        for model in (Aliquot, Sample, CustodyEvent, BarcodeCounter)
    }


def problem_lines(result: Any) -> list[str]:
    """The `line N, column C: problem` lines the command printed on stderr."""
    return [line for line in result.stderr.splitlines() if line.startswith("line ")]


# --- a good file ------------------------------------------------------------------------


def test_a_good_file_imports_and_its_tubes_scan(runner, session, tech, row, write_csv):
    """Three rows, two samples: the tubes scan, the samples hold the sum, custody is logged."""
    path = write_csv(
        [
            row(
                barcode=" fr0001234 ",
                aliquot_type="MNC-V",
                volume_ml="1.0",
                cell_count="1e7",
                storage="C",
            ),
            row(barcode="FR0001235", volume_ml="0.75", freeze_thaw_count="2"),
            row(
                material="PB",
                aliquot_type="PELLET",
                volume_ml="",
                cell_count="5000000",
                accession_number="ACC-2",
                status="consumed",
            ),
        ]
    )
    result = run_import(runner, path)
    assert result.exit_code == 0, result.output
    assert "imported 3 aliquots in 2 samples" in result.stdout

    scanned = tech.get("/api/v1/scan/FR0001234")
    assert scanned.status_code == 200, scanned.json
    assert scanned.json["kind"] == "aliquot"
    assert scanned.json["aliquot_type"] == "MNC-V"
    assert scanned.json["cell_count"] == 10_000_000
    assert scanned.json["sprec_code"] == "CEL-PED-E-X-X-X-C"
    assert scanned.json["recent_events"][0]["event_type"] == "imported"
    pellet = session.scalar(select(Aliquot).where(Aliquot.barcode_source == "issued"))
    assert pellet is not None and pellet.status == "consumed"
    assert tech.get(f"/api/v1/scan/{pellet.barcode}").json["material"] == "PB"

    marrow = session.scalar(select(Sample).where(Sample.accession_number == "ACC-1"))
    assert marrow.volume_ml == Decimal("1.750") and marrow.volume_remaining_ml == 0
    assert pellet.sample.volume_ml == Decimal("0.001")  # cells only: the least allowed
    assert marrow.barcode.startswith("SM")
    events = session.scalars(select(CustodyEvent.event_type).order_by(CustodyEvent.id)).all()
    assert events.count("imported") == 3 and events.count("received") == 2
    actors = set(session.scalars(select(CustodyEvent.actor)))
    assert all(actor.startswith("cli:") for actor in actors)


def test_the_example_file_imports(runner, make_patient):
    """docs/examples/inventory-import.csv imports as it stands."""
    make_patient(study_id="IF21-NL-001", diagnosis_date=dt.date(2025, 3, 3))
    result = run_import(runner, EXAMPLE)
    assert result.exit_code == 0, result.output
    assert "imported 8 aliquots in 5 samples" in result.stdout


def test_a_semicolon_separated_file_with_columns_in_any_order_imports(runner, row, write_csv):
    """Excel's "CSV UTF-8" in Europe: semicolons, a byte-order mark; order and case are free."""
    columns = [
        "STUDY_ID",
        "Material",
        "aliquot_type",
        "volume_ml",
        "collected_at",
        "received_at",
        "container_code",
        "timepoint",
    ]
    good = row()
    path = write_csv([{c: good[c.lower()] for c in columns}], columns=columns, delimiter=";")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    result = run_import(runner, path)
    assert result.exit_code == 0, result.output
    assert "imported 1 aliquots in 1 samples" in result.stdout


def test_a_dry_run_checks_the_file_and_writes_nothing(runner, session, row, write_csv):
    """--dry-run says what would be imported and leaves the database as it was."""
    before = counts(session)
    result = run_import(runner, write_csv([row(), row()]), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "2 aliquots in 1 samples would be imported" in result.stdout
    assert counts(session) == before


# --- bad files --------------------------------------------------------------------------


def test_a_missing_required_column_is_reported_and_nothing_written(runner, session, row, write_csv):
    """A file without collected_at names the column, exits 1 and writes nothing."""
    before = counts(session)
    columns = [c for c in COLUMNS if c != "collected_at"]
    result = run_import(runner, write_csv([row()], columns=columns))
    assert result.exit_code == 1
    assert problem_lines(result) == ["line 1, column collected_at: required column is missing"]
    assert counts(session) == before


def test_an_unknown_column_is_refused(runner, row, write_csv):
    """A misspelt column is an error rather than data silently dropped."""
    columns = [*COLUMNS, "freezer"]
    result = run_import(runner, write_csv([row(freezer="F1")], columns=columns))
    assert result.exit_code == 1
    assert problem_lines(result)[0].startswith("line 1, column freezer: unknown column")


def test_bad_dates_are_reported_by_line_and_column(runner, session, row, write_csv):
    """Every bad date is reported, with the line a person sees (header = line 1)."""
    before = counts(session)
    path = write_csv(
        [
            row(),
            row(collected_at="2025-13-01"),
            row(),
            row(received_at="04/03/2025"),
            row(collected_at="2020-01-01T09:00:00Z", received_at="2020-01-02"),
            row(received_at="2999-01-01"),
        ]
    )
    result = run_import(runner, path)
    assert result.exit_code == 1
    lines = problem_lines(result)
    assert lines[0].startswith("line 3, column collected_at: '2025-13-01' is not an ISO 8601")
    assert lines[1].startswith("line 5, column received_at: '04/03/2025' is not an ISO 8601")
    assert lines[2] == (
        "line 6, column collected_at: is more than a week before the patient's diagnosis"
    )
    assert lines[3] == "line 7, column received_at: 2999-01-01 is in the future"
    assert len(lines) == 4
    assert counts(session) == before


def test_a_barcode_twice_in_the_file_is_reported_with_both_lines(runner, session, row, write_csv):
    """The second occurrence names the first; codes are compared normalized."""
    before = counts(session)
    path = write_csv([row(barcode="FR0001234"), row(), row(barcode=" fr0001234")])
    result = run_import(runner, path)
    assert result.exit_code == 1
    assert problem_lines(result) == ["line 4, column barcode: FR0001234 is also on line 2"]
    assert counts(session) == before


def test_a_barcode_already_in_the_database_is_refused(runner, session, row, write_csv):
    """Importing a tube that is already registered (here: the same file twice) fails."""
    path = write_csv([row(barcode="FR0001234"), row(barcode="FR0001235")])
    assert run_import(runner, path).exit_code == 0
    before = counts(session)
    result = run_import(runner, path)
    assert result.exit_code == 1
    assert problem_lines(result) == [
        "line 2, column barcode: FR0001234 is already registered in the biobank",
        "line 3, column barcode: FR0001235 is already registered in the biobank",
    ]
    assert counts(session) == before


def test_a_code_shaped_like_the_services_own_is_refused(runner, row, write_csv):
    """External codes must not collide with the series this service issues."""
    result = run_import(runner, write_csv([row(barcode="IF00000001E"), row(barcode="NO READ")]))
    assert result.exit_code == 1
    lines = problem_lines(result)
    assert lines[0].startswith("line 2, column barcode: IF00000001E looks like a code this")
    assert lines[1].startswith("line 3, column barcode: 'NO READ': the rack scanner")


def test_an_unknown_study_id_is_reported(runner, session, row, write_csv):
    """The patient must be registered before their tubes are imported."""
    before = counts(session)
    result = run_import(runner, write_csv([row(), row(study_id="IF21-XX-999")]))
    assert result.exit_code == 1
    assert problem_lines(result) == [
        "line 3, column study_id: unknown study_id 'IF21-XX-999': register the patient first"
    ]
    assert counts(session) == before


def test_rows_of_one_sample_must_agree(runner, row, write_csv):
    """Two tubes of one sample with different received_at are a contradiction."""
    day = row()["received_at"][:10]
    result = run_import(runner, write_csv([row(), row(received_at=f"{day}T16:00:00+01:00")]))
    assert result.exit_code == 1
    assert problem_lines(result)[0].startswith(
        "line 3, column received_at: differs from line 2, an aliquot of the same sample"
    )


def test_a_row_with_several_problems_reports_each(runner, row, write_csv):
    """Codes, numbers and missing values on one row: one problem per column."""
    path = write_csv(
        [
            row(
                material="XX",
                aliquot_type="",
                volume_ml="0,5",
                status="lost",
                container_code="EDTA",
                timepoint="",
            )
        ]
    )
    result = run_import(runner, path)
    assert result.exit_code == 1
    columns = [line.split(":")[0] for line in problem_lines(result)]
    assert columns == [
        "line 2, column material",
        "line 2, column aliquot_type",
        "line 2, column volume_ml",
        "line 2, column container_code",
        "line 2, column status",
        "line 2, column timepoint",
    ]
    assert "(use a decimal point, not a comma)" in result.stderr


def test_problems_stop_at_a_hundred(runner, row, write_csv):
    """A file that is wrong throughout is reported up to the cap, not line by line forever."""
    result = run_import(runner, write_csv([row(study_id=f"X-{n}") for n in range(150)]))
    assert result.exit_code == 1
    assert len(problem_lines(result)) == service.MAX_PROBLEMS
    assert "the check stopped there" in result.stderr


def test_a_file_that_is_not_utf8_is_refused(runner, row, write_csv):
    """A Latin-1 export is refused at the line of its first foreign byte."""
    path = write_csv([row(), row(unscheduled_reason="fièvre", timepoint="")])
    path.write_bytes(path.read_bytes().replace("è".encode(), b"\xe8"))
    result = run_import(runner, path)
    assert result.exit_code == 1
    assert problem_lines(result) == ["line 3: is not UTF-8 text: save the file as CSV UTF-8"]


def test_an_empty_file_and_a_header_alone_are_refused(runner, write_csv, tmp_path):
    """Nothing to import is a mistake worth saying so."""
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert run_import(runner, empty).exit_code == 1
    result = run_import(runner, write_csv([]))
    assert result.exit_code == 1
    assert problem_lines(result) == ["line 2: the file has a header but no rows"]


# --- the service, in small chunks ---------------------------------------------------------


def test_a_barcode_repeated_chunks_later_is_found(session, row, write_csv):
    """Earlier chunks are already in the database: a repeat there names its first line."""
    path = write_csv([row(barcode=f"FR{n}") for n in range(5)] + [row(barcode="fr1")])
    with pytest.raises(service.ImportRefused) as refused:
        service.import_aliquots(session, "tester", path, Numbering(), chunk_size=2)
    session.rollback()
    assert [str(p) for p in refused.value.problems] == [
        "line 7, column barcode: FR1 is also on line 3"
    ]


def test_queries_do_not_grow_with_rows(session, row, write_csv, count_queries):
    """A chunk costs the same statements whether it holds 3 rows or 60."""
    statements = []
    for n in (1, 3, 60):  # the first import also starts the sample barcode series
        path = write_csv([row(accession_number=f"ACC-{n}", barcode=f"FR{n}-{i}") for i in range(n)])
        with count_queries() as counted:
            summary = service.import_aliquots(session, "tester", path, Numbering())
        assert summary.aliquots == n
        statements.append(counted.count)
    assert statements[1] == statements[2]
