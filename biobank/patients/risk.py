"""The Interfant-21 risk stratification rule (trial-defined, not configuration)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

# "Age < 6 months at diagnosis": six months counted as 183 days (6 × 30.44 ≈ 182.6).
HR_AGE_LIMIT_DAYS = 183
HR_WBC = Decimal(300)  # ×10⁹/L
POOR_PREDNISONE_BLASTS_PER_UL = 1000  # day-8 blood blasts
EOI_MRD_HR_PERCENT = Decimal(1)  # end-of-induction MRD ≥ 1% → HR
B1_MRD_HR_PERCENT = Decimal("0.01")  # MRD > 0.01% after blinatumomab cycle 1 → HR
MRD_NEGATIVE_BELOW_PERCENT = Decimal("0.01")


def prednisone_response(blasts_per_ul: int | None, stated: str | None) -> str:
    """good / poor / unknown, from the day-8 blast count when there is one."""
    if blasts_per_ul is not None:
        return "poor" if blasts_per_ul >= POOR_PREDNISONE_BLASTS_PER_UL else "good"
    return stated or "unknown"


def initial_risk(age_days: int, wbc: Decimal | None, response: str) -> tuple[str, str]:
    """The risk group at stratification, with the reason in words."""
    if age_days < HR_AGE_LIMIT_DAYS:
        if wbc is not None and wbc >= HR_WBC:
            return "HR", f"age < 6 months and WBC {_percent(wbc)} ≥ 300 ×10⁹/L"
        if response == "poor":
            return "HR", "age < 6 months and prednisone poor response"
        return "MR", "age < 6 months, WBC < 300 ×10⁹/L, no prednisone poor response"
    return "MR", "age ≥ 6 months at diagnosis"


def _percent(value: Decimal) -> str:
    """2.4000 → "2.4", 350.00 → "350": numbers as a clinician writes them."""
    return format(Decimal(value).normalize(), "f")


def mrd_escalation(results: Iterable[tuple[str, Decimal]]) -> str | None:
    """The reason MRD moves a patient to HR, if any; results are (timepoint code, %)."""
    for code, value in results:
        if code == "EOI" and value >= EOI_MRD_HR_PERCENT:
            return f"end-of-induction MRD {_percent(value)}% ≥ 1%"
        if code == "B1" and value > B1_MRD_HR_PERCENT:
            return f"MRD {_percent(value)}% > 0.01% after blinatumomab cycle 1"
    return None


def derive(age_days: int, wbc: Decimal | None, response: str,
           mrd: Iterable[tuple[str, Decimal]]) -> tuple[str, str]:
    """The risk group the rule gives from everything known, with the reason."""
    escalation = mrd_escalation(mrd)
    if escalation:
        return "HR", escalation
    return initial_risk(age_days, wbc, response)
