"""The reports' pictures, drawn from the reports' own numbers (the API's format=svg and the
reports page both use them): each with its numbers in words as the text alternative."""

from __future__ import annotations

import datetime as dt
from typing import Any

from biobank.reports import pictures


def completeness_picture(found: dict[str, Any], today: dt.date) -> str:
    """The completeness summary (``completeness.report``) as stacked bars per timepoint and
    material."""
    labels = [f"{r['timepoint']} {r['material']}" for r in found["summary"]]
    series = {"received": [r["received"] for r in found["summary"]],
              "missing (window passed)": [r["missing"] for r in found["summary"]],
              "not yet due": [r["not_yet_due"] for r in found["summary"]]}
    said = "; ".join(
        f"{label}: " + pictures.words({"expected": r["expected"], "received": r["received"],
                                       "missing": r["missing"],
                                       "not yet due": r["not_yet_due"]})
        for label, r in zip(labels, found["summary"], strict=True))
    return pictures.stacked_bars(
        "Cohort completeness",
        f"Expected samples of {found['patients']} patients per timepoint and material, "
        f"as of {today.isoformat()}. {said or 'No samples are expected.'}",
        labels, series, "patients")


def capacity_picture(found: list[dict[str, Any]]) -> str:
    """Used and free positions per freezer and box type (``capacity.summary``) as bars."""
    labels = [f"{r['site']} {r['freezer']} ({r['box_type']})" for r in found]
    said = "; ".join(f"{label}: {r['occupied']} of {r['positions']} positions used, "
                     f"{r['free']} free" for label, r in zip(labels, found, strict=True))
    return pictures.stacked_bars(
        "Freezer capacity",
        f"Used and free positions per freezer and box type. {said or 'No boxes.'}",
        labels, {"used": [r["occupied"] for r in found],
                 "free": [r["free"] for r in found]}, "positions")


def fill_picture(found: list[dict[str, Any]], start: dt.date, end: dt.date) -> str:
    """Positions used per freezer at each month's end (``fill.history``), a line each."""
    months: list[str] = sorted({r["month"] for r in found})
    series: dict[str, list[float]] = {}
    for r in found:
        series.setdefault(f"{r['site']} {r['freezer']}", [0] * len(months))[
            months.index(r["month"])] = r["used"]
    said = "; ".join(
        f"{name}: " + ", ".join(f"{used:g} in {month}" for month, used
                                in zip(months, values, strict=True)
                                if used or month == months[-1])
        for name, values in series.items())
    return pictures.lines(
        "Freezer fill over time",
        f"Positions used per freezer at each month's end, from {start.isoformat()} to "
        f"{end.isoformat()}. {said or 'No freezers.'}",
        months, series, "positions used")


def inventory_picture(months: list[dict[str, Any]], start: dt.date, end: dt.date) -> str:
    """The stock at each month's end above the month's flows (``inventory.totals``)."""
    labels = [m["month"] for m in months]
    shown = ("received", "shipped", "consumed", "destroyed")
    said = "; ".join(f"{m['month']}: " + pictures.words(
        {**{k: m[k] for k in shown}, "held at the end": m["in_stock"]}) for m in months
        if any(m[k] for k in (*shown, "in_stock")))
    return pictures.stock_and_flows(
        "Inventory over time",
        f"Tubes held at each month's end, and tubes received, shipped, consumed and "
        f"destroyed per month, from {start.isoformat()} to {end.isoformat()}. {said}",
        labels, [m["in_stock"] for m in months], {k: [m[k] for m in months] for k in shown})


def requests_picture(found: list[dict[str, Any]], start: dt.date, end: dt.date) -> str:
    """Tubes shipped per sub-study and month (``shipments.shipped``), a line per sub-study."""
    months = sorted({r["month"] for r in found})
    series: dict[str, list[float]] = {}
    for r in found:
        series.setdefault(r["substudy"], [0] * len(months))[months.index(r["month"])] = \
            r["tubes"]
    said = "; ".join(f"{r['month']} {r['substudy']}: {r['tubes']} tubes in "
                     f"{r['shipments']} shipments" for r in found)
    return pictures.lines(
        "Tubes shipped per sub-study",
        f"Tubes shipped per sub-study and month from {start.isoformat()} to "
        f"{end.isoformat()}. {said or 'Nothing was shipped.'}",
        months, series, "tubes")
