"""What every reader of consent says about one tube: the gate, the scan card, the box map and
availability. Tests hold them to one answer (tests/test_consent_clock.py, the property test)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from biobank.consent import gate
from biobank.consent.service import get_substudy
from biobank.requests import availability
from biobank.samples.models import Aliquot, Sample
from biobank.scan.service import aliquot_card
from biobank.storage import boxmap


def card_allows(card: dict[str, Any], substudy: str) -> bool:
    """Whether a scan card says the tube may go to ``substudy``."""
    consent = card["consent"]
    if consent.get("anonymised"):
        return substudy in consent.get("usable_for", [])
    own = consent["substudies"].get(substudy)
    return consent["storage"] == "given" and own is not None and own["state"] == "given"


def in_availability(session: Session, tube: Any, substudy: str) -> bool:
    """Whether availability (the SQL form of the rule) counts the tube for ``substudy``."""
    found = get_substudy(session, substudy)
    filters = availability.Filters()
    return bool(
        session.scalar(
            select(func.count())
            .select_from(Aliquot)
            .join(Sample, Sample.id == Aliquot.sample_id)
            .where(
                Aliquot.id == tube.id,
                Aliquot.status == "available",
                *availability.sample_conditions(filters, found, availability.today()),
            )
        )
    )


def map_entry(session: Session, box: Any, tube: Any) -> dict[str, Any]:
    """The tube's cell in its box map."""
    grid = boxmap.box_map(session, box)
    [cell] = [
        c["aliquot"]
        for c in grid["positions"] + [{"aliquot": t} for t in grid["loose"]]
        if c["aliquot"] and c["aliquot"]["barcode"] == tube.barcode
    ]
    return cell


def verdicts(session: Session, tube: Any, substudy: str, box: Any = None) -> dict[str, bool]:
    """May the (available) tube go to ``substudy`` now, according to each reader."""
    card = aliquot_card(session.connection(), tube.barcode)
    assert card is not None
    found = {
        "gate": gate.may_use(session, tube.id, substudy).allowed,
        "card": card_allows(card, substudy),
        "availability": in_availability(session, tube, substudy),
    }
    if box is not None:
        # The box map shows the storage consent: it must not say "given" for a tube the
        # card refuses for want of storage consent, nor the other way round.
        storage_ok = card["consent"]["storage"] == "given" or bool(
            card["consent"].get("anonymised")
        )
        found["map_storage"] = map_entry(session, box, tube)["consent"] in ("given", "anonymised")
        found["card_storage"] = storage_ok
    return found


def agree(found: dict[str, bool]) -> bool:
    """Whether the readers give one answer (the box map on storage, the rest on use)."""
    use = {found["gate"], found["card"], found["availability"]}
    storage = {found[k] for k in ("map_storage", "card_storage") if k in found}
    return len(use) == 1 and len(storage) <= 1
