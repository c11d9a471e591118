"""The scan: resolve any code this service knows, in a fixed number of queries."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased, raiseload

from biobank.consent.gate import scan_card
from biobank.custody.service import aliquot_events, sample_events
from biobank.samples.models import Aliquot, Sample
from biobank.samples.service import Numbering, check_code
from biobank.storage.boxmap import scan_container, scan_location


def scan(session: Session, raw_code: str, numbering: Numbering, recent: int = 5) -> dict[str, Any]:
    """What a technician needs at a glance about a scanned tube.

    Four queries for an aliquot (the tube with its sample, patient, timepoint, material and
    parent; its storage location and condition notes; its patient's consent log; its last
    events), one more when the code is a sample's, two or three more for a box or container.
    """
    code = check_code(raw_code, numbering)
    parent = aliased(Aliquot)
    row = session.execute(
        select(Aliquot, parent.barcode)
        .outerjoin(parent, Aliquot.parent_aliquot_id == parent.id)
        .where(Aliquot.barcode == code)
        .options(raiseload(Aliquot.parent))
    ).first()
    if row is not None:
        aliquot, parent_barcode = row
        sample = aliquot.sample
        return {
            "kind": "aliquot",
            "barcode": aliquot.barcode,
            "study_id": sample.patient.study_id,
            "risk_group": sample.patient.risk_group,
            "timepoint": sample.timepoint.code if sample.timepoint else None,
            "material": sample.material.code,
            "aliquot_type": aliquot.aliquot_type.code,
            "aliquot_type_name": aliquot.aliquot_type.name,
            "volume_ml": aliquot.volume_remaining_ml,
            "cell_count": aliquot.cell_count,
            "status": aliquot.status,
            "freeze_thaw_count": aliquot.freeze_thaw_count,
            "sample": sample.barcode,
            "parent": parent_barcode,
            "sprec_code": aliquot.sprec_code,
            **scan_location(session, aliquot.id),  # storage: location, condition notes (1 query)
            "consent": scan_card(session, sample.patient_id, aliquot.status),  # consent (1 query)
            "recent_events": aliquot_events(session, aliquot.id, limit=recent, newest_first=True),
        }
    sample = session.scalar(select(Sample).where(Sample.barcode == code))
    if sample is None:
        return scan_container(session, code)  # storage: a box, rack or freezer; else 404
    return {
        "kind": "sample",
        "barcode": sample.barcode,
        "study_id": sample.patient.study_id,
        "risk_group": sample.patient.risk_group,
        "timepoint": sample.timepoint.code if sample.timepoint else None,
        "material": sample.material.code,
        "aliquot_type": None,
        "aliquot_type_name": None,
        "volume_ml": sample.volume_remaining_ml,
        "cell_count": None,
        "status": "received",
        "freeze_thaw_count": 0,
        "sample": sample.barcode,
        "parent": None,
        "sprec_code": None,
        "location": None,
        "consent": scan_card(session, sample.patient_id, "received"),  # consent (1 query)
        "recent_events": sample_events(session, sample.id)[-recent:][::-1],
    }
