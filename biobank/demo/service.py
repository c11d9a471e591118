"""Demo data: a believable, deterministic Interfant-21 biobank to try the service on.

Everything goes through the domain services (registration, splitting, status changes,
MRD), so the demo data carries the same audit trail and custody events as real data.
Loading is idempotent: patients are recognised by study_id, users by username.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank import clock
from biobank.auth import service as auth
from biobank.auth.models import User
from biobank.db import utcnow
from biobank.patients import risk
from biobank.patients import service as patients
from biobank.patients.models import Patient
from biobank.reference import service as reference
from biobank.reference.models import Site, Timepoint
from biobank.samples import service as samples
from biobank.samples.models import Aliquot, Sample

SEED = 21
# Diagnoses are dated back from this day (or from today, if today is earlier).
ANCHOR = dt.date(2026, 11, 1)
PASSWORD = "demo-password"  # demo only: every demo user shares it
SUBSTUDY = "DEMO"
USER_PREFIX = "demo-"
ROLES = ("technician", "researcher", "consent_officer", "manager", "admin")

# Children's hospitals of the kind that enrol in Interfant trials; names only.
SITES = (
    {
        "code": "DE-KIEL",
        "country": "DE",
        "name": "Universitätsklinikum Schleswig-Holstein, Campus Kiel",
    },
    {
        "code": "IT-MONZA",
        "country": "IT",
        "name": "Fondazione IRCCS San Gerardo dei Tintori, Monza",
    },
    {"code": "ES-SJD", "country": "ES", "name": "Hospital Sant Joan de Déu, Barcelona"},
    {"code": "SE-ALB", "country": "SE", "name": "Astrid Lindgren Children's Hospital, Stockholm"},
    {"code": "CZ-MOTOL", "country": "CZ", "name": "University Hospital Motol, Prague"},
    {"code": "AU-SCH", "country": "AU", "name": "Sydney Children's Hospital, Randwick"},
)
# (site code, country, number of patients): 20 in all.
ENROLMENT = (
    ("NL-PMC", "NL", 5),
    ("DE-KIEL", "DE", 4),
    ("IT-MONZA", "IT", 3),
    ("ES-SJD", "ES", 2),
    ("SE-ALB", "SE", 2),
    ("CZ-MOTOL", "CZ", 2),
    ("AU-SCH", "AU", 2),
)
FUSION_PARTNERS = (("AFF1", 50), ("MLLT1", 20), ("MLLT3", 15), ("MLLT10", 10), ("EPS15", 5))
# Cells per mL of material: at diagnosis marrow is packed with blasts, later far less.
CELLS_PER_ML = {
    ("BM", True): (20_000_000, 80_000_000),
    ("BM", False): (5_000_000, 15_000_000),
    ("PB", True): (5_000_000, 40_000_000),
    ("PB", False): (1_000_000, 4_000_000),
}


@dataclass(frozen=True)
class PatientPlan:
    """One demo patient, decided before anything touches the database."""

    study_id: str
    site: str
    local_site: bool  # at the central lab's own hospital: samples arrive within hours
    values: dict[str, Any]
    escalate_at_eoi: bool = False  # EOI MRD ≥ 1% moves this MR patient to HR
    extract_dna: bool = False
    destroy_plasma: bool = False
    lose_mnc: bool = False


@dataclass
class DemoResult:
    """What a load added, and the demo users' fresh tokens."""

    reference: dict[str, int] = field(default_factory=dict)
    sites: int = 0
    patients: int = 0
    patients_skipped: int = 0
    samples: int = 0
    aliquots: int = 0
    users: int = 0
    credentials: list[tuple[str, str, str]] = field(default_factory=list)  # name, role, token
    # What each other domain's demo loader added, in words, by domain.
    domains: dict[str, str] = field(default_factory=dict)


def _decimal(value: float, places: str = "0.1") -> Decimal:
    return Decimal(str(value)).quantize(Decimal(places), rounding=ROUND_DOWN)


def plan_patients(today: dt.date) -> list[PatientPlan]:
    """The demo patients: fixed by the seed, dated back from ANCHOR (never after today)."""
    rng = random.Random(SEED)
    anchor = min(ANCHOR, today)
    plans: list[PatientPlan] = []
    index = 0
    for site, country, count in ENROLMENT:
        for number in range(1, count + 1):
            days_ago = rng.randint(4, 420)
            # Every third infant is young and has hyperleukocytosis or a poor response (HR).
            young = index % 3 == 0
            age = rng.randint(20, 170) if young else rng.randint(20, 360)
            wbc = _decimal(min(rng.lognormvariate(4.6, 0.9), 950))
            poor = rng.random() < (0.6 if young else 0.25)
            blasts = rng.randint(1000, 25_000) if poor else rng.randint(0, 900)
            study_id = f"IF21-{country}-{number:03d}"
            values: dict[str, Any] = {
                "study_id": study_id,
                "site": site,
                "sex": rng.choice("FM"),
                "diagnosis": "B-MPAL" if rng.random() < 0.08 else "B-ALL",
                "fusion_partner": rng.choices(
                    [p for p, _ in FUSION_PARTNERS], [w for _, w in FUSION_PARTNERS]
                )[0],
                "diagnosis_date": anchor - dt.timedelta(days=days_ago),
                "age_at_diagnosis_days": age,
                "wbc_at_diagnosis": wbc,
                # The day-8 count is only known once day 8 has come.
                "day8_blasts_per_ul": blasts if days_ago >= 9 else None,
            }
            plans.append(
                PatientPlan(study_id, site, site == "NL-PMC", values, extract_dna=index % 2 == 0)
            )
            index += 1
    return _assign_events(plans, today)


def _initial_group(values: dict[str, Any]) -> str:
    response = risk.prednisone_response(values["day8_blasts_per_ul"], None)
    return risk.initial_risk(
        values["age_at_diagnosis_days"], values["wbc_at_diagnosis"], response
    ).group


def _assign_events(plans: list[PatientPlan], today: dt.date) -> list[PatientPlan]:
    """Pick the patients whose story includes an MRD escalation, a broken and a lost tube."""
    settled = [p for p in plans if today - p.values["diagnosis_date"] > dt.timedelta(days=90)]
    mr = [p for p in settled if _initial_group(p.values) == "MR"]
    picks = {mr[0].study_id: {"escalate_at_eoi": True}} if mr else {}
    rest = [p for p in settled if p.study_id not in picks]
    for plan, flag in zip(rest, ("destroy_plasma", "lose_mnc"), strict=False):
        picks[plan.study_id] = {flag: True}
    return [PatientPlan(**{**p.__dict__, **picks.get(p.study_id, {})}) for p in plans]


def load(session: Session, actor: str, numbering: samples.Numbering) -> DemoResult:
    """Fill the biobank with demo data; what already exists is left alone (idempotent)."""
    today = clock.today()
    result = DemoResult(reference=reference.load_defaults(session, actor))
    for site in SITES:
        if session.scalar(select(Site.id).where(Site.code == site["code"])) is None:
            reference.create(session, actor, "sites", dict(site))
            result.sites += 1
    timepoints = list(session.scalars(select(Timepoint).order_by(Timepoint.sort_order)))
    existing = set(session.scalars(select(Patient.study_id)))
    for plan in plan_patients(today):
        if plan.study_id in existing:
            result.patients_skipped += 1
            continue
        _load_patient(session, actor, numbering, plan, timepoints, result)
    _load_users(session, result)
    _load_domains(session, actor, numbering, result)
    return result


def _load_domains(
    session: Session, actor: str, numbering: samples.Numbering, result: DemoResult
) -> None:
    """Each domain's own demo data, in dependency order: consent before storage (box maps
    show consent), storage before requests (pick lists need places)."""
    from biobank.consent.demo import load_demo as consent_demo
    from biobank.labels.demo import load_demo as labels_demo
    from biobank.requests.demo import load_demo as requests_demo
    from biobank.storage.demo import load_demo as storage_demo

    consent = consent_demo(session, actor)
    result.domains["consent"] = ", ".join(f"{n} {kind}" for kind, n in consent.items())
    stored = storage_demo(session, actor, numbering)
    result.domains["storage"] = (
        f"{stored.freezers} freezers, {stored.containers} containers, "
        f"{stored.boxes} boxes, {stored.stored} tubes stored"
    )
    result.domains["labels"] = f"{labels_demo(session, actor)} printers"
    requests = requests_demo(session, actor)
    result.domains["requests"] = ", ".join(f"{n} {state}" for state, n in requests.items())


def _load_patient(
    session: Session,
    actor: str,
    numbering: samples.Numbering,
    plan: PatientPlan,
    timepoints: list[Timepoint],
    result: DemoResult,
) -> None:
    rng = random.Random(f"{SEED}:{plan.study_id}")
    patient = patients.register(session, actor, dict(plan.values))
    result.patients += 1
    group = "HR" if plan.escalate_at_eoi else patient.risk_group
    made: dict[str, list[Aliquot]] = {}
    for tp in timepoints:
        if group not in tp.risk_groups:
            continue
        when = _collection_day(rng, patient, tp)
        if when is None:
            continue
        for material in tp.expected_materials:
            # Diagnostic marrow always reaches the biobank; anything else may not (gaps).
            if not (tp.code == "DX" and material == "BM") and rng.random() < 0.15:
                continue
            sample = _register_sample(
                session, actor, numbering, rng, plan, patient, tp.code, material, when
            )
            if sample is None:
                continue
            result.samples += 1
            aliquots = _split_sample(session, actor, numbering, rng, sample, tp.code == "DX")
            result.aliquots += len(aliquots)
            for aliquot in aliquots:
                made.setdefault(f"{tp.code}/{material}/{aliquot.aliquot_type.code}", []).append(
                    aliquot
                )
    result.aliquots += _story(session, actor, numbering, rng, plan, patient, made)


def _collection_day(rng: random.Random, patient: Patient, tp: Timepoint) -> dt.date | None:
    """When this timepoint's material was taken; None if never (or not yet)."""
    diagnosed = patient.diagnosis_date
    if tp.nominal_day is None:  # relapse: a few HR infants, long after diagnosis
        if patient.risk_group != "HR" or (clock.today() - diagnosed).days < 240:
            return None
        return diagnosed + dt.timedelta(days=rng.randint(200, 235)) if rng.random() < 0.3 else None
    if tp.code != "DX" and rng.random() < 0.1:
        return None  # the whole timepoint never reached the biobank
    low = max(0, tp.nominal_day - tp.window_before_days)
    return diagnosed + dt.timedelta(days=rng.randint(low, tp.nominal_day + tp.window_after_days))


def _register_sample(
    session: Session,
    actor: str,
    numbering: samples.Numbering,
    rng: random.Random,
    plan: PatientPlan,
    patient: Patient,
    timepoint: str,
    material: str,
    day: dt.date,
) -> Sample | None:
    collected = dt.datetime.combine(
        day, dt.time(rng.randint(8, 14), rng.choice((0, 15, 30, 45))), dt.UTC
    )
    transit = rng.randint(1, 5) if plan.local_site else rng.randint(18, 40)
    received = collected + dt.timedelta(hours=transit)
    if received > utcnow():
        return None  # not taken yet
    diagnosis = timepoint == "DX"
    low, high = {
        "BM": (2.0, 5.0) if diagnosis else (1.0, 3.0),
        "PB": (1.0, 3.0),
        "CSF": (0.5, 1.5),
    }[material]
    return samples.register_sample(
        session,
        actor,
        {
            "study_id": patient.study_id,
            "timepoint": timepoint,
            "unscheduled_reason": None,
            "material": material,
            "collected_at": collected,
            "received_at": received,
            "volume_ml": _decimal(rng.uniform(low, high)),
            "container_code": {"BM": rng.choice(("PED", "SHP")), "PB": "PED", "CSF": "PPS"}[
                material
            ],
            "precentrifugation_delay_hours": Decimal(transit + 1),
            "precentrifugation_temperature": "RT"
            if plan.local_site or rng.random() < 0.5
            else "2-10C",
            "accession_number": f"{plan.site}-{day:%y%m%d}-{rng.randint(100, 999)}",
            "notes": "residual after diagnostics" if diagnosis else None,
        },
        numbering,
    )


def _split_sample(
    session: Session,
    actor: str,
    numbering: samples.Numbering,
    rng: random.Random,
    sample: Sample,
    at_diagnosis: bool,
) -> list[Aliquot]:
    """Split a sample the way the lab does: plasma or supernatant, a pellet, viable cells."""
    material = sample.material.code
    budget = sample.volume_ml * Decimal("0.9")  # a little is always left in the tube
    children: list[dict[str, Any]] = []
    if material == "CSF":
        tubes = min(3, int(budget / Decimal("0.25")))
        children = [
            {"aliquot_type": "CSF-SUP", "volume_ml": Decimal("0.25"), "storage": "D"}
            for _ in range(tubes)
        ]
    else:
        low, high = CELLS_PER_ML[(material, at_diagnosis)]
        plasma = 2 if budget >= 2 else 1
        children = [
            {
                "aliquot_type": "PLASMA",
                "volume_ml": Decimal("0.2"),
                "source_volume_ml": Decimal("0.4"),
                "storage": "D",
            }
            for _ in range(plasma)
        ]
        children.append(
            {
                "aliquot_type": "PELLET",
                "source_volume_ml": Decimal("0.3"),
                "cell_count": int(Decimal("0.3") * rng.randint(low, high)),
                "storage": "D",
            }
        )
        left = budget - Decimal("0.4") * plasma - Decimal("0.3")
        while left >= Decimal("0.5"):
            take = min(left, Decimal("1.0"))
            children.append(
                {
                    "aliquot_type": "MNC-V",
                    "volume_ml": Decimal("1.0"),
                    "source_volume_ml": take.quantize(Decimal("0.1"), ROUND_DOWN),
                    "cell_count": int(take * rng.randint(low, high)),
                    "storage": "C",
                }
            )
            left -= take.quantize(Decimal("0.1"), ROUND_DOWN)
    if not children:
        return []
    return samples.split(session, actor, sample, children, numbering, reason="processed on receipt")


def _story(
    session: Session,
    actor: str,
    numbering: samples.Numbering,
    rng: random.Random,
    plan: PatientPlan,
    patient: Patient,
    made: dict[str, list[Aliquot]],
) -> int:
    """The events that make a demo interesting; returns how many aliquots were added."""
    added = 0
    pellets = made.get("DX/BM/PELLET", [])
    if plan.extract_dna and pellets:
        added += len(
            samples.split(
                session,
                actor,
                pellets[0],
                [{"aliquot_type": "DNA", "volume_ml": Decimal("0.05"), "storage": "D"}],
                numbering,
                consume_parent=True,
                reason="DNA extraction for KMT2A breakpoint PCR",
            )
        )
    plasma = made.get("DX/BM/PLASMA") or made.get("DX/PB/PLASMA") or []
    if plan.destroy_plasma and plasma:
        samples.change_status(
            session, actor, plasma[-1], "destroyed", "tube cracked in the -80 °C freezer; discarded"
        )
    mnc = made.get("DX/BM/MNC-V", [])
    if plan.lose_mnc and mnc:
        samples.change_status(
            session,
            actor,
            mnc[-1],
            "missing",
            "not at its recorded box position during the annual inventory",
        )
    eoi_marrow = made.get("EOI/BM/PELLET") or made.get("EOI/BM/MNC-V")
    measured = patient.diagnosis_date + dt.timedelta(days=40)
    if (plan.escalate_at_eoi or eoi_marrow) and measured <= clock.today():
        # Only the planned escalation reaches 1%; everyone else stays in their group.
        value = (
            Decimal("2.4")
            if plan.escalate_at_eoi
            else rng.choice(
                (
                    Decimal("0.003"),
                    Decimal("0.008"),
                    Decimal("0.04"),
                    Decimal("0.15"),
                    Decimal("0.6"),
                )
            )
        )
        patients.record_mrd(
            session,
            actor,
            patient,
            {"timepoint": "EOI", "value_percent": value, "method": "PCR", "measured_on": measured},
        )
    return added


def _load_users(session: Session, result: DemoResult) -> None:
    """One user per role with the shared demo password; every run issues fresh tokens."""
    for role in ROLES:
        username = USER_PREFIX + role.replace("_", "-")
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            user = auth.create_user(
                session,
                username,
                role,
                password=PASSWORD,
                substudies=[SUBSTUDY] if role == "researcher" else [],
                full_name=f"Demo {role.replace('_', ' ')}",
            )
            result.users += 1
            token = auth.issue_token(session, user)
        elif user.active:
            token = auth.rotate_token(session, user)
        else:
            token = "-"  # deactivated by someone on purpose: left so, without a token
        result.credentials.append((username, role, token))
