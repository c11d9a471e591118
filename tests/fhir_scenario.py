"""A small biobank for the FHIR tests (imported by name into each tests/test_fhir*.py): two
patients at two sites, marrow, blood and CSF samples split into tubes, some stored in a −80
freezer, consent for storage and DEMO, two tubes released to DEMO."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from consent_helpers import ACTOR, NUMBERING, days_ago, give, studies  # noqa: F401
from requests_helpers import freezer, store  # noqa: F401
from sqlalchemy.orm import Session

from biobank.consent import gate
from biobank.reference import service as reference
from biobank.samples import service as samples


@pytest.fixture
def biobank(
    session: Session,
    make_patient: Callable[..., Any],
    make_sample: Callable[..., Any],
    give: Callable[..., Any],  # noqa: F811
    freezer: SimpleNamespace,
) -> SimpleNamespace:  # noqa: F811
    """Patient A (NL-PMC, girl): BM → 3 plasma (2 stored, 2 released to DEMO) + 1 double-spun
    plasma, PB → 2 whole blood, CSF → 1 supernatant, DNA from a cell pellet; patient B
    (DE-KIEL, boy): PB → 2 plasma."""
    reference.create(session, ACTOR, "sites", {"code": "DE-KIEL", "name": "Kiel", "country": "DE"})
    a = make_patient(sex="F")
    b = make_patient(sex="M", site="DE-KIEL")
    made = SimpleNamespace(a=a, b=b)
    day = dt.datetime.combine(a.diagnosis_date, dt.time(9), dt.UTC)
    made.bm = make_sample(
        a, material="BM", collected_at=day, received_at=day + dt.timedelta(hours=3)
    )
    made.pb = make_sample(
        a,
        material="PB",
        container_code="PED",
        collected_at=day,
        received_at=day + dt.timedelta(hours=3),
    )
    made.csf = make_sample(
        a,
        material="CSF",
        container_code="PPS",
        collected_at=day,
        received_at=day + dt.timedelta(hours=3),
    )
    made.plasma = samples.split(
        session,
        ACTOR,
        made.bm,
        [{"aliquot_type": "PLASMA", "volume_ml": Decimal("0.5"), "storage": "D"} for _ in range(3)]
        + [
            {"aliquot_type": "PLASMA2", "volume_ml": Decimal("0.4")},
            {"aliquot_type": "PELLET", "cell_count": 2_000_000, "source_volume_ml": Decimal(1)},
        ],
        NUMBERING,
    )
    made.pellet = made.plasma.pop()
    made.double = made.plasma.pop()
    made.dna = samples.split(
        session,
        ACTOR,
        made.pellet,
        [{"aliquot_type": "DNA", "volume_ml": Decimal("0.05")}],
        NUMBERING,
        consume_parent=True,
    )[0]
    made.blood = samples.split(
        session,
        ACTOR,
        made.pb,
        [{"aliquot_type": "WB", "volume_ml": Decimal("0.5")} for _ in range(2)],
        NUMBERING,
    )
    made.csf_sup = samples.split(
        session,
        ACTOR,
        made.csf,
        [{"aliquot_type": "CSF-SUP", "volume_ml": Decimal("0.5")}],
        NUMBERING,
    )[0]
    bday = dt.datetime.combine(b.diagnosis_date, dt.time(10), dt.UTC)
    made.b_pb = make_sample(
        b, material="PB", collected_at=bday, received_at=bday + dt.timedelta(hours=2)
    )
    made.b_plasma = samples.split(
        session,
        ACTOR,
        made.b_pb,
        [{"aliquot_type": "PLASMA", "volume_ml": Decimal("0.3")} for _ in range(2)],
        NUMBERING,
    )
    session.commit()
    store(session, made.plasma[:2], freezer.early)
    give(a, "storage", days_ago(150))
    give(a, "data", days_ago(150))
    give(a, "DEMO", days_ago(150))
    give(b, "storage", days_ago(150))
    gate.justify_release(
        session, ACTOR, [t.id for t in made.plasma[:2]], "DEMO", "request", "RQ-TEST-1"
    )
    session.commit()
    made.freezer = freezer
    return made
