"""The reports' pictures, drawn from the reports' own numbers (the API's format=svg and the
reports page both use them): each with its numbers in words as the text alternative."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from biobank.reports import pictures


def completeness_picture(found: dict[str, Any], today: dt.date) -> str:
    """The completeness summary (``completeness.report``) as stacked bars per timepoint and
    material."""
    labels = [f"{r['timepoint']} {r['material']}" for r in found["summary"]]
    series = {
        "received": [r["received"] for r in found["summary"]],
        "missing (window passed)": [r["missing"] for r in found["summary"]],
        "not yet due": [r["not_yet_due"] for r in found["summary"]],
    }
    said = "; ".join(
        f"{label}: "
        + pictures.words(
            {
                "expected": r["expected"],
                "received": r["received"],
                "missing": r["missing"],
                "not yet due": r["not_yet_due"],
            }
        )
        for label, r in zip(labels, found["summary"], strict=True)
    )
    return pictures.stacked_bars(
        "Cohort completeness",
        f"Expected samples of {found['patients']} patients per timepoint and material, "
        f"as of {today.isoformat()}. {said or 'No samples are expected.'}",
        labels,
        series,
        "patients",
    )


# A patient's timepoint, from its expected materials' states: missing if one is, else not yet
# due if one is, else received; a timepoint with nothing expected shows only samples taken.
MATRIX_STATES = {
    "received": ("received", pictures.COLOURS[0], ""),
    "missing": ("missing (window passed)", pictures.COLOURS[1], "////"),
    "not_yet_due": ("not yet due", pictures.COLOURS[2], ".."),
}


def timepoint_state(cells: list[dict[str, Any]]) -> str | None:
    """One patient's timepoint from its cells (``completeness.report``'s, one timepoint)."""
    expected = {c["state"] for c in cells if c["expected"]}
    for state in ("missing", "not_yet_due", "received"):
        if state in expected:
            return state
    return "received" if cells else None


def completeness_matrix(
    found: dict[str, Any],
    timepoints: list[str],
    today: dt.date,
    link: Callable[[str], str] | None = None,
) -> str:
    """The page of patients of ``completeness.report`` × the timepoints, each cell the
    timepoint's state for the patient (linked to the patient with ``link``)."""
    patients = [r["study_id"] for r in found["rows"]]
    grid: list[list[str | None]] = []
    said = []
    for row in found["rows"]:
        by_timepoint: dict[str, list[dict[str, Any]]] = {}
        for cell in row["cells"]:
            by_timepoint.setdefault(cell["timepoint"], []).append(cell)
        states = [timepoint_state(by_timepoint.get(tp, [])) for tp in timepoints]
        grid.append(states)
        parts = [
            f"{MATRIX_STATES[state][0]} "
            + ", ".join(tp for tp, s in zip(timepoints, states, strict=True) if s == state)
            for state in MATRIX_STATES
            if state in states
        ]
        said.append(f"{row['study_id']}: {'; '.join(parts) or 'nothing expected'}")
    shown = (
        (
            f"patients {found['page'] * found['per_page'] - found['per_page'] + 1} to "
            f"{found['page'] * found['per_page'] - found['per_page'] + len(patients)} of "
            f"{found['patients']}"
        )
        if patients
        else f"none of {found['patients']} patients"
    )
    return pictures.matrix(
        "Cohort completeness per patient",
        f"Each patient's timepoints as of {today.isoformat()}, {shown} (by study id): "
        f"received, missing (the window has passed) or not yet due. {'. '.join(said)}",
        patients,
        timepoints,
        grid,
        MATRIX_STATES,
        [link(p) for p in patients] if link else None,
    )


def capacity_picture(found: list[dict[str, Any]]) -> str:
    """Used and free positions per freezer and box type (``capacity.summary``) as bars."""
    labels = [f"{r['site']} {r['freezer']} ({r['box_type']})" for r in found]
    said = "; ".join(
        f"{label}: {r['occupied']} of {r['positions']} positions used, {r['free']} free"
        for label, r in zip(labels, found, strict=True)
    )
    return pictures.stacked_bars(
        "Freezer capacity",
        f"Used and free positions per freezer and box type. {said or 'No boxes.'}",
        labels,
        {"used": [r["occupied"] for r in found], "free": [r["free"] for r in found]},
        "positions",
    )


def fill_picture(found: list[dict[str, Any]], start: dt.date, end: dt.date) -> str:
    """Positions used per freezer at each month's end (``fill.history``), a line each."""
    months: list[str] = sorted({r["month"] for r in found})
    series: dict[str, list[float]] = {}
    for r in found:
        series.setdefault(f"{r['site']} {r['freezer']}", [0] * len(months))[
            months.index(r["month"])
        ] = r["used"]
    said = "; ".join(
        f"{name}: "
        + ", ".join(
            f"{used:g} in {month}"
            for month, used in zip(months, values, strict=True)
            if used or month == months[-1]
        )
        for name, values in series.items()
    )
    return pictures.lines(
        "Freezer fill over time",
        f"Positions used per freezer at each month's end, from {start.isoformat()} to "
        f"{end.isoformat()}. {said or 'No freezers.'}",
        months,
        series,
        "positions used",
    )


def inventory_picture(months: list[dict[str, Any]], start: dt.date, end: dt.date) -> str:
    """The stock at each month's end above the month's flows (``inventory.totals``)."""
    labels = [m["month"] for m in months]
    shown = ("received", "shipped", "consumed", "destroyed")
    said = "; ".join(
        f"{m['month']}: "
        + pictures.words({**{k: m[k] for k in shown}, "held at the end": m["in_stock"]})
        for m in months
        if any(m[k] for k in (*shown, "in_stock"))
    )
    return pictures.stock_and_flows(
        "Inventory over time",
        f"Tubes held at each month's end, and tubes received, shipped, consumed and "
        f"destroyed per month, from {start.isoformat()} to {end.isoformat()}. {said}",
        labels,
        [m["in_stock"] for m in months],
        {k: [m[k] for m in months] for k in shown},
    )


def requests_picture(found: list[dict[str, Any]], start: dt.date, end: dt.date) -> str:
    """Tubes shipped per sub-study and month (``shipments.shipped``), a line per sub-study."""
    months = sorted({r["month"] for r in found})
    series: dict[str, list[float]] = {}
    for r in found:
        series.setdefault(r["substudy"], [0] * len(months))[months.index(r["month"])] = r["tubes"]
    said = "; ".join(
        f"{r['month']} {r['substudy']}: {r['tubes']} tubes in {r['shipments']} shipments"
        for r in found
    )
    return pictures.lines(
        "Tubes shipped per sub-study",
        f"Tubes shipped per sub-study and month from {start.isoformat()} to "
        f"{end.isoformat()}. {said or 'Nothing was shipped.'}",
        months,
        series,
        "tubes",
    )
