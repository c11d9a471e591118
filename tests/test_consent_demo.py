"""Demo consents: most patients consented, a few declined, one withdrew a sub-study; idempotent."""

from __future__ import annotations

from sqlalchemy import func, select

from biobank.consent import demo, gate, service
from biobank.consent.models import ConsentEntry, Withdrawal
from biobank.patients.models import Patient
from biobank.samples.models import Aliquot, Sample


def test_demo_consents_load_once_and_tell_a_story(runner, session):
    """After `demo load`: consents for all but one patient, declines, one sub-study withdrawn."""
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0
    assert "consent demo data added: 3 substudies, 2 forms, 19 patients" in result.output
    assert "1 withdrawals" in result.output
    assert demo.load_demo(session, "cli:demo") == {
        "substudies": 0,
        "forms": 0,
        "patients": 0,
        "entries": 0,
        "withdrawals": 0,
    }

    patients = session.scalars(select(Patient).order_by(Patient.study_id)).all()
    states = {p.study_id: service.patient_consent(session, p).current for p in patients}
    storage = [
        sid
        for sid, current in states.items()
        if any(e.component == "storage" and e.decision == "given" for e in current)
    ]
    assert len(storage) == 19
    declined = {
        e.component_code for current in states.values() for e in current if e.decision == "declined"
    }
    assert declined == {"MRD-NGS", "IMMUNO"}
    [withdrawn] = session.scalars(select(Withdrawal)).all()
    assert withdrawn.scope_code == demo.WITHDRAWN
    tubes = session.scalars(
        select(Aliquot.id).join(Sample).where(Sample.patient_id == withdrawn.patient_id)
    ).all()
    decisions = gate.may_use(session, tubes, demo.WITHDRAWN)
    assert not any(d.allowed for d in decisions.values())
    assert session.scalar(select(func.count()).select_from(ConsentEntry)) > 60
