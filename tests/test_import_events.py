"""The import's custody events: canonical JSON built directly, chains that verify."""

from __future__ import annotations

import csv
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from biobank.bulk import COPY_FROM
from biobank.custody import audit
from biobank.custody.chain import canonical_json
from biobank.custody.models import CustodyEvent
from biobank.imports import inserts, service
from biobank.imports.rows import COLUMNS, Kind, Row
from biobank.samples.service import Numbering

texts = st.text(max_size=12)
maybe_texts = st.none() | texts
moments = st.datetimes(
    min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
)
volumes = st.none() | st.decimals(min_value=Decimal("0.001"), max_value=Decimal(9999999), places=3)
counts = st.none() | st.integers(1, 2**31 - 1)


@st.composite
def rows(draw: st.DrawFn) -> Row:
    """Any row the reader could have passed, free text anywhere it may be."""
    timepoint = draw(maybe_texts)
    return Row(
        line=draw(st.integers(2, 10**9)),
        barcode=draw(st.none() | st.text(min_size=1, max_size=12)),  # empty is None
        study_id=draw(texts),
        patient_id=1,
        timepoint_id=None if timepoint is None else 1,
        timepoint=timepoint,
        unscheduled_reason=draw(maybe_texts),
        material_id=1,
        material=draw(texts),
        kind=Kind(1, draw(texts), "kind", None, frozenset()),
        volume_ml=draw(volumes),
        cell_count=draw(counts),
        collected_at=draw(moments),
        received_at=draw(moments),
        container_code="PED",
        precentrifugation_delay_hours=None,
        precentrifugation_temperature=None,
        accession_number=draw(maybe_texts),
        freeze_thaw_count=draw(st.integers(0, 2**31 - 1)),
        status=draw(texts),
        storage="X",
        sprec_code=draw(maybe_texts),
    )


@given(code=texts, row=rows())
@example(
    code='F"R\\1\x00é\u2028😀',
    row=Row(
        line=2,
        barcode=None,
        study_id="IF21-NL-001",
        patient_id=1,
        timepoint_id=None,
        timepoint=None,
        unscheduled_reason='fièvre "38,5"\n',
        material_id=1,
        material="BM",
        kind=Kind(1, "PLASMA", "Plasma", "PL1", frozenset()),
        volume_ml=Decimal("1.500"),
        cell_count=None,
        collected_at=dt.datetime(2025, 3, 1, 8, 15, 0, 12, dt.UTC),
        received_at=dt.datetime(2025, 3, 1, 9, tzinfo=dt.UTC),
        container_code="PED",
        precentrifugation_delay_hours=None,
        precentrifugation_temperature=None,
        accession_number=None,
        freeze_thaw_count=0,
        status="available",
        storage="X",
        sprec_code=None,
    ),
)
def test_event_values_are_the_canonical_json_of_what_the_event_records(code, row):
    """Whatever a row holds, the text built directly is canonical_json of the values."""
    assert inserts.imported_values(code, row) == canonical_json(
        {
            "barcode": code,
            "barcode_source": "external" if row.barcode else "issued",
            "aliquot_type": row.kind.code,
            "volume_ml": row.volume_ml,
            "cell_count": row.cell_count,
            "sprec_code": row.sprec_code,
            "freeze_thaw_count": row.freeze_thaw_count,
            "status": row.status,
            "line": row.line,
        }
    )
    assert inserts.received_values(code, row) == canonical_json(
        {
            "barcode": code,
            "study_id": row.study_id,
            "timepoint": row.timepoint,
            "unscheduled_reason": row.unscheduled_reason,
            "material": row.material,
            "collected_at": row.collected_at,
            "received_at": row.received_at,
            "accession_number": row.accession_number,
            "line": row.line,
        }
    )


def test_imported_events_are_stored_canonical_and_their_chains_verify(
    session, make_patient, tmp_path: Path
):
    """Free text with quotes and accents, cells-only and volume rows: every event the
    import stores holds canonical JSON, and custody verify finds every chain intact."""
    patient = make_patient()
    day = patient.diagnosis_date.isoformat()
    base = {
        "study_id": patient.study_id,
        "material": "BM",
        "collected_at": f"{day}T09:00",
        "received_at": f"{day}T11:30:00.250+01:00",
        "container_code": "PED",
        "precentrifugation_delay_hours": "2.5",
        "accession_number": 'ACC "7"',
    }
    path = tmp_path / "inventory.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS), restval="")
        writer.writeheader()
        writer.writerows(
            [
                {**base, "timepoint": "DX", "aliquot_type": "PLASMA", "volume_ml": "0.5"},
                {
                    **base,
                    "timepoint": "DX",
                    "aliquot_type": "MNC-V",
                    "cell_count": "1e7",
                    "barcode": "fr-1.a",
                },  # external codes are ASCII (the rack-scan rule)
                {
                    **base,
                    "unscheduled_reason": "fièvre à 39 °C",
                    "aliquot_type": "PELLET",
                    "cell_count": "5000000",
                    "status": "consumed",
                    "freeze_thaw_count": "1",
                },
            ]
        )
    summary = service.import_aliquots(session, "tester", path, Numbering())
    session.commit()
    assert (summary.aliquots, summary.samples) == (3, 2)

    stored = session.execute(
        text(
            "SELECT event_type, CAST(new_values AS TEXT) FROM custody_event "
            "WHERE event_type IN ('imported', 'received') ORDER BY id"
        )
    ).all()
    assert sorted(kind for kind, _ in stored) == ["imported"] * 3 + ["received"] * 2
    for _, values in stored:
        assert canonical_json(json.loads(values)) == values
    barcodes = {json.loads(values)["barcode"] for kind, values in stored if kind == "imported"}
    assert "FR-1.A" in barcodes
    assert audit.verify_all(session).ok


def prev_hash_index(session) -> list[dict]:
    """The unique index on custody events' prev_hash, as the database lists it."""
    return [
        index
        for index in inspect(session.connection()).get_indexes("custody_event")
        if index["name"] == "uq_custody_event_prev_hash"
    ]


def test_the_chain_index_is_there_after_an_import_and_still_refuses_a_fork(
    session, make_patient, tmp_path: Path
):
    """A large import (more rows than events stored: SQLite sets the index aside while it
    runs; PostgreSQL takes the rows by COPY) ends with every chain intact and the unique
    index on prev_hash back, refusing a second link."""
    patient = make_patient()
    day = patient.diagnosis_date.isoformat()
    path = tmp_path / "inventory.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS), restval="")
        writer.writeheader()
        writer.writerows(
            {
                "study_id": patient.study_id,
                "timepoint": "DX",
                "material": "PB",
                "aliquot_type": "PLASMA",
                "volume_ml": "0.5",
                "collected_at": day,
                "received_at": day,
                "container_code": "PED",
            }
            for _ in range(2 * COPY_FROM)
        )
    stored = session.scalar(select(func.count()).select_from(CustodyEvent))
    assert service.count_rows(path) > stored
    sqlite = session.get_bind().dialect.name == "sqlite"
    store = session.execute(text("PRAGMA temp_store")).scalar() if sqlite else None
    summary = service.import_aliquots(
        session, "tester", path, Numbering(), chunk_size=COPY_FROM + 7
    )
    assert summary.aliquots == 2 * COPY_FROM
    assert audit.verify_all(session).ok
    assert [index["unique"] for index in prev_hash_index(session)] == [True]
    if sqlite:  # the build's sort went to temporary files; the connection's setting is back
        assert session.execute(text("PRAGMA temp_store")).scalar() == store
    first = session.scalars(select(CustodyEvent).order_by(CustodyEvent.id.desc())).first()
    with pytest.raises(IntegrityError), session.begin_nested():
        session.execute(
            insert(CustodyEvent).values(
                aliquot_id=first.aliquot_id,
                event_type="noted",
                actor="tester",
                occurred_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
                prev_hash=first.prev_hash,
                hash="0" * 64,
            )
        )
    session.rollback()


def test_a_refused_import_leaves_the_chain_index_in_place(session, make_patient, tmp_path: Path):
    """Problems in the file: the import raises, and the index is there before any rollback."""
    patient = make_patient()
    path = tmp_path / "inventory.csv"
    path.write_text(
        "study_id,timepoint,material,aliquot_type,volume_ml,collected_at,"
        f"received_at,container_code\n{patient.study_id},DX,PB,PLASMA,0.5,"
        f"{patient.diagnosis_date},2999-01-01,PED\n",
        encoding="utf-8",
    )
    with pytest.raises(service.ImportRefused):
        service.import_aliquots(session, "tester", path, Numbering())
    assert [index["unique"] for index in prev_hash_index(session)] == [True]
    session.rollback()
