"""The Interfant-21 risk stratification rule (trial-defined, not configuration).

A group is *provisional* while a fact that could still decide it is unknown: an infant under
six months with no known WBC or day-8 prednisone response is MR only until both are known,
since either could make them HR. Escalation to HR is one-way: the rule never moves a patient
back to MR (services.change_risk_group lets a manager override, with a reason).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

# "Age < 6 months at diagnosis": six months counted as 183 days (6 × 30.44 ≈ 182.6).
HR_AGE_LIMIT_DAYS = 183
HR_WBC = Decimal(300)  # ×10⁹/L
POOR_PREDNISONE_BLASTS_PER_UL = 1000  # day-8 blood blasts
EOI_MRD_HR_PERCENT = Decimal(1)  # end-of-induction MRD ≥ 1% → HR
B1_MRD_HR_PERCENT = Decimal("0.01")  # MRD > 0.01% after blinatumomab cycle 1 → HR
MRD_NEGATIVE_BELOW_PERCENT = Decimal("0.01")
# The facts that decide the group at stratification, by the field that records them.
FACT_NAMES = {
    "wbc_at_diagnosis": "WBC at diagnosis",
    "prednisone_response": "day-8 prednisone response",
}


@dataclass(frozen=True)
class Stratum:
    """What the rule gives: the group, the reason in words, and the facts still unknown
    that could change it (none: the group is definite)."""

    group: str
    reason: str
    pending: tuple[str, ...] = ()

    @property
    def provisional(self) -> bool:
        """Whether an unknown fact could still change the group."""
        return bool(self.pending)


def prednisone_response(blasts_per_ul: int | None, stated: str | None) -> str:
    """good / poor / unknown, from the day-8 blast count when there is one."""
    if blasts_per_ul is not None:
        return "poor" if blasts_per_ul >= POOR_PREDNISONE_BLASTS_PER_UL else "good"
    return stated or "unknown"


def initial_risk(age_days: int, wbc: Decimal | None, response: str) -> Stratum:
    """The group at stratification; it says only what is known."""
    if age_days >= HR_AGE_LIMIT_DAYS:
        return Stratum("MR", "age ≥ 6 months at diagnosis")
    if wbc is not None and wbc >= HR_WBC:
        return Stratum("HR", f"age < 6 months and WBC {_number(wbc)} ≥ 300 ×10⁹/L")
    if response == "poor":
        return Stratum("HR", "age < 6 months and prednisone poor response")
    known = []
    if wbc is not None:
        known.append(f"WBC {_number(wbc)} < 300 ×10⁹/L")
    if response == "good":
        known.append("prednisone good response")
    pending = tuple(
        name
        for name, unknown in (
            ("wbc_at_diagnosis", wbc is None),
            ("prednisone_response", response != "good"),
        )
        if unknown
    )
    facts = ", ".join(["age < 6 months", *known])
    if not pending:
        return Stratum("MR", f"{facts}")
    missing = " and ".join(FACT_NAMES[name] for name in pending)
    return Stratum("MR", f"{facts}; {missing} unknown: MR until known (provisional)", pending)


def _number(value: Decimal) -> str:
    """2.4000 → "2.4", 350.00 → "350": numbers as a clinician writes them."""
    return format(Decimal(value).normalize(), "f")


def mrd_escalation(results: Iterable[tuple[str, Decimal]]) -> str | None:
    """The reason MRD moves a patient to HR, if any; results are (timepoint code, %)."""
    for code, value in results:
        if code == "EOI" and value >= EOI_MRD_HR_PERCENT:
            return f"end-of-induction MRD {_number(value)}% ≥ 1%"
        if code == "B1" and value > B1_MRD_HR_PERCENT:
            return f"MRD {_number(value)}% > 0.01% after blinatumomab cycle 1"
    return None


def derive(
    age_days: int, wbc: Decimal | None, response: str, mrd: Iterable[tuple[str, Decimal]]
) -> Stratum:
    """The group the rule gives from everything known, with the reason."""
    escalation = mrd_escalation(mrd)
    if escalation:
        return Stratum("HR", escalation)
    return initial_risk(age_days, wbc, response)
