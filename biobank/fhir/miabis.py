"""MIABIS on FHIR: the biobank (miabis-biobank), its juristic person, the collection
(miabis-collection, with its miabis-collection-organization) and the collection summary the
BBMRI-ERIC Directory asks for.

MIABIS counts *samples*, not tubes: one donor, one material type, one collection date (in
the biobank's zone), whatever number of aliquots hold it. Only tubes still in the biobank
count (available, reserved, blocked). A sample kept in freezers of several temperatures is
counted once, under its coldest. The summary is a FHIR MeasureReport (the answer of
``Measure/miabis-collection-summary/$evaluate-measure``), stratified by material type, sex,
age at collection and storage temperature.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from biobank import clock
from biobank.fhir import access
from biobank.fhir import terminology as tx
from biobank.fhir.access import Viewer
from biobank.fhir.resources import Settings
from biobank.patients.models import Patient
from biobank.reference.models import AliquotType, Material
from biobank.samples.models import Aliquot, Sample
from biobank.samples.states import IN_HOUSE
from biobank.storage.models import Container, Position
from biobank.storage.service import lineages

MEASURE_ID = "miabis-collection-summary"
POPULATION = (
    "http://terminology.hl7.org/CodeSystem/measure-population",
    "initial-population",
    "Initial Population",
)
GENDER_SYSTEM = "http://hl7.org/fhir/administrative-gender"
# Age at collection, in whole months (the donors are infants: years would say nothing).
AGE_BANDS = (
    (0, 2, "0-2 months"),
    (3, 5, "3-5 months"),
    (6, 11, "6-11 months"),
    (12, 23, "12-23 months"),
    (24, 10_000, "24 months or more"),
)
NOT_STORED = "not in a freezer"


@dataclass(frozen=True)
class MiabisSample:
    """One sample as MIABIS counts it."""

    patient_id: int
    material: str
    day: dt.date


@dataclass
class Summary:
    """The counted samples with what the stratifiers need."""

    samples: dict[MiabisSample, str | None] = field(default_factory=dict)  # → coldest band
    sexes: dict[int, str] = field(default_factory=dict)
    ages: dict[MiabisSample, int] = field(default_factory=dict)  # months at collection
    diagnoses: set[str] = field(default_factory=set)
    period: tuple[dt.date, dt.date] | None = None


def _age_months(age_at_diagnosis: int, diagnosed: dt.date, day: dt.date) -> int:
    return max(0, age_at_diagnosis + (day - diagnosed).days) * 12 * 100 // 36525


def _coldest(bands: set[str | None]) -> str | None:
    known = [b for b in bands if b]
    return min(known, key=tx.BAND_ORDER.index) if known else None


def summarise(
    session: Session, viewer: Viewer, start: dt.date | None = None, end: dt.date | None = None
) -> Summary:
    """The MIABIS samples among the tubes in house that the viewer may see (collected from
    ``start`` to ``end`` inclusive, when given)."""
    query = (
        select(Aliquot.sample_id, Aliquot.aliquot_type_id, Position.box_id, func.count())
        .join(Sample, Sample.id == Aliquot.sample_id)
        .outerjoin(Position, (Position.aliquot_id == Aliquot.id) & Position.out_since.is_(None))
        .where(Aliquot.status.in_(sorted(IN_HOUSE)))
        .group_by(Aliquot.sample_id, Aliquot.aliquot_type_id, Position.box_id)
    )
    query = access.scope(query, viewer, Sample.patient_id, Aliquot.id)
    groups = session.execute(query).all()
    summary = Summary()
    if not groups:
        return summary
    samples = {
        row.id: row
        for row in session.execute(
            select(
                Sample.id,
                Sample.patient_id,
                Sample.collected_at,
                Material.sprec_type,
                Patient.sex,
                Patient.age_at_diagnosis_days,
                Patient.diagnosis_date,
                Patient.diagnosis,
            )
            .join(Material, Material.id == Sample.material_id)
            .join(Patient, Patient.id == Sample.patient_id)
            .where(Sample.id.in_({g.sample_id for g in groups}))
        )
    }
    types = {
        row.id: row
        for row in session.execute(select(AliquotType.id, AliquotType.code, AliquotType.sprec_type))
    }
    boxes = {g.box_id for g in groups if g.box_id is not None}
    paths = lineages(session, boxes) if boxes else {}
    bands = (
        dict(
            session.execute(
                select(Container.id, Container.temperature_band).where(
                    Container.id.in_({p.freezer_id for p in paths.values()})
                )
            ).all()
        )
        if paths
        else {}
    )
    found: dict[MiabisSample, set[str | None]] = {}
    days = []
    for group in groups:
        sample = samples[group.sample_id]
        kind = types[group.aliquot_type_id]
        standard = tx.sample_type(kind.sprec_type, kind.code)
        day = clock.day_of(sample.collected_at)
        if (start and day < start) or (end and day > end):
            continue
        key = MiabisSample(sample.patient_id, standard.collection if standard else "Other", day)
        lineage = paths.get(group.box_id)
        found.setdefault(key, set()).add(bands.get(lineage.freezer_id) if lineage else None)
        summary.sexes[sample.patient_id] = sample.sex
        summary.ages[key] = _age_months(sample.age_at_diagnosis_days, sample.diagnosis_date, day)
        summary.diagnoses.add(sample.diagnosis)
        days.append(day)
    summary.samples = {key: _coldest(bands_of) for key, bands_of in found.items()}
    summary.period = (min(days), max(days)) if days else None
    return summary


def age_band(months: int) -> str:
    """The age stratum of an age in months."""
    return next(label for low, high, label in AGE_BANDS if low <= months <= high)


def _population(count: int) -> list[dict[str, Any]]:
    return [{"code": tx.concept(tx.coding(*POPULATION)), "count": count}]


def _stratifier(code: str, counts: Counter[Any], value: Any) -> dict[str, Any]:
    return {
        "code": [tx.concept(tx.coding(tx.MIABIS_CHARACTERISTIC, code))],
        "stratum": [
            {"value": value(key), "population": _population(count)}
            for key, count in sorted(counts.items(), key=lambda i: str(i[0]))
        ],
    }


def _temperature(band: str | None) -> dict[str, Any]:
    code = tx.miabis_temperature(band)
    if code is None:
        return tx.concept(text=NOT_STORED)
    return tx.concept(tx.coding(tx.MIABIS_TEMPERATURE, code, tx.MIABIS_TEMPERATURES[code]))


def _sex(sex: str) -> dict[str, Any]:
    return tx.concept(tx.coding(GENDER_SYSTEM, tx.MIABIS_SEX.get(sex, "unknown")))


def measure_report(summary: Summary, settings: Settings) -> dict[str, Any]:
    """The collection summary as a MeasureReport: samples and donors, stratified."""
    samples = summary.samples
    donors = {key.patient_id for key in samples}
    start, end = summary.period or (clock.today(), clock.today())
    temperatures = Counter(tx.miabis_temperature(band) for band in samples.values())
    return {
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": "summary",
        "measure": f"{settings.base}/Measure/{MEASURE_ID}",
        "date": clock.now().isoformat(timespec="seconds").replace("+00:00", "Z"),
        "reporter": {"reference": "Organization/biobank"},
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "group": [
            {
                "code": tx.concept(text="samples (one donor, material type and collection date)"),
                "population": _population(len(samples)),
                "stratifier": [
                    _stratifier(
                        "MaterialType",
                        Counter(k.material for k in samples),
                        lambda m: tx.concept(tx.coding(tx.MIABIS_COLLECTION_TYPE, m)),
                    ),
                    _stratifier("Sex", Counter(summary.sexes[k.patient_id] for k in samples), _sex),
                    _stratifier(
                        "Age",
                        Counter(age_band(summary.ages[k]) for k in samples),
                        lambda label: tx.concept(text=label),
                    ),
                    _stratifier(
                        "StorageTemperature",
                        temperatures,
                        lambda code: _temperature(_band_of(code)),
                    ),
                ],
            },
            {
                "code": tx.concept(text="donors"),
                "population": _population(len(donors)),
                "stratifier": [_stratifier("Sex", Counter(summary.sexes[d] for d in donors), _sex)],
            },
        ],
    }


def _band_of(code: str | None) -> str | None:
    # The stratum is named by MIABIS's code; any band with that code names it.
    return next((band for band, c in tx.BAND_TO_MIABIS.items() if c == code), None)
