"""The targets of issue 9, and the table the benchmark prints."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Target:
    """A figure's target: ``check(figures)`` is True, False, or None (not measured)."""

    key: str
    text: str
    check: Callable[[dict[str, Any]], bool | None]
    full_size_only: bool = False  # stated for SQLite at 1,000,000 aliquots


def _at_most(key: str, limit: float) -> Callable[[dict[str, Any]], bool | None]:
    return lambda f: None if f.get(key) is None else f[key] <= limit


def _at_least(key: str, limit: float) -> Callable[[dict[str, Any]], bool | None]:
    return lambda f: None if f.get(key) is None else f[key] >= limit


def _ratio(
    key: str, other: str, factor: float, most: bool
) -> Callable[[dict[str, Any]], bool | None]:
    def check(f: dict[str, Any]) -> bool | None:
        if f.get(key) is None or f.get(other) is None:
            return None
        return f[key] <= factor * f[other] if most else f[key] >= factor * f[other]

    return check


TARGETS = (
    Target("scan_ratio", "≤ 2.0", _at_most("scan_ratio", 2.0)),
    Target("scan_us_p99", "≤ 5,000", _at_most("scan_us_p99", 5000)),
    Target(
        "scan_us_p50",
        "≤ 1.3 × scan_us_p50_small",
        _ratio("scan_us_p50", "scan_us_p50_small", 1.3, most=True),
    ),
    Target("rack96_register_ms", "≤ 150", _at_most("rack96_register_ms", 150)),
    Target("import_aliquots_per_s", "≥ 20,000", _at_least("import_aliquots_per_s", 20000)),
    Target("import_peak_rss_mb", "≤ 300 (at 1M)", _at_most("import_peak_rss_mb", 300)),
    Target("availability_ms", "≤ 300", _at_most("availability_ms", 300)),
    Target("withdrawal_impact_ms", "≤ 100", _at_most("withdrawal_impact_ms", 100)),
    Target("box_map_ms", "≤ 10", _at_most("box_map_ms", 10)),
    Target(
        "custody_verify_events_per_s",
        "≥ 200,000",
        _at_least("custody_verify_events_per_s", 200_000),
    ),
    Target("labels_zpl_per_s", "≥ 20,000", _at_least("labels_zpl_per_s", 20_000)),
    Target(
        "labels_svg_per_s",
        "≥ 0.8 × bare_svg_per_s",
        _ratio("labels_svg_per_s", "bare_svg_per_s", 0.8, most=False),
    ),
    Target(
        "fhir_specimen_page_ms",
        "≤ 50 (SQLite at 1M)",
        _at_most("fhir_specimen_page_ms", 50),
        full_size_only=True,
    ),
    Target(
        "report_completeness_ms",
        "≤ 300 (SQLite at 1M)",
        _at_most("report_completeness_ms", 300),
        full_size_only=True,
    ),
    Target(
        "report_inventory_ms",
        "≤ 300 (SQLite at 1M)",
        _at_most("report_inventory_ms", 300),
        full_size_only=True,
    ),
)

# The order of the table, with units.
ROWS = (
    ("scan_us_p50", "µs"),
    ("scan_us_p99", "µs"),
    ("bare_scan_us_p50", "µs"),
    ("scan_ratio", "×"),
    ("bare_scan_same_work_us_p50", "µs"),
    ("scan_ratio_same_work", "×"),
    ("scan_us_p50_small", "µs"),
    ("rack96_register_ms", "ms"),
    ("import_aliquots_per_s", "/s"),
    ("import_peak_rss_mb", "MB"),
    ("bare_insert_rows_per_s", "/s"),
    ("availability_ms", "ms"),
    ("withdrawal_impact_ms", "ms"),
    ("box_map_ms", "ms"),
    ("custody_verify_events_per_s", "/s"),
    ("labels_zpl_per_s", "/s"),
    ("labels_svg_per_s", "/s"),
    ("bare_svg_per_s", "/s"),
    ("fhir_specimen_page_ms", "ms"),
    ("fhir_export_resources_per_s", "/s"),
    ("report_completeness_ms", "ms"),
    ("report_inventory_ms", "ms"),
    ("report_fill_ms", "ms"),
)


def verdicts(figures: dict[str, Any]) -> dict[str, bool | None]:
    """Each target's verdict: met, missed, or None when its figure is missing."""
    return {t.key: t.check(figures) for t in TARGETS}


def _number(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and value < 100:
        return f"{value:,.2f}"
    return f"{value:,.0f}"


def table(figures: dict[str, Any], notes: dict[str, str]) -> str:
    """The figures, their targets and verdicts, as text."""
    by_key = {t.key: t for t in TARGETS}
    judged = verdicts(figures)
    lines = [f"{'figure':<30} {'value':>14}  {'unit':<4} {'target':<26} verdict", "-" * 86]
    for key, unit in ROWS:
        value = figures.get(key)
        shown = _number(value) if value is not None else f"n/a ({notes.get(key, 'not measured')})"
        target = by_key.get(key)
        verdict = {True: "met", False: "MISSED", None: "-"}[judged.get(key)] if target else ""
        lines.append(
            f"{key:<30} {shown:>14}  {unit:<4} {target.text if target else '':<26} {verdict}"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """Where the figures come from: CPUs, CPU model, memory, Python, OS."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": memory,
        "python": platform.python_version(),
        "system": platform.platform(),
        "load_average_1min": load,
    }
