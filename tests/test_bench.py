"""The benchmark keeps working: `python -m bench` runs end to end at a tiny size.

It builds its own SQLite file (whatever database the suite runs on) and only its figures'
presence is checked, never their values: timings belong to the benchmark, not to tests.
"""

from __future__ import annotations

import json

from bench import cli, load, report

KEYS = (
    "aliquots",
    "database",
    "scan_us_p50",
    "scan_us_p99",
    "bare_scan_us_p50",
    "scan_ratio",
    "scan_us_p50_small",
    "rack96_register_ms",
    "import_aliquots_per_s",
    "bare_insert_rows_per_s",
    "availability_ms",
    "withdrawal_impact_ms",
    "box_map_ms",
    "custody_verify_events_per_s",
    "labels_zpl_per_s",
    "labels_svg_per_s",
    "bare_svg_per_s",
    "report_completeness_ms",
    "report_inventory_ms",
    "report_fill_ms",
)


def test_the_benchmark_builds_measures_and_writes_every_figure(tmp_path, capsys):
    """A smoke run over 300 aliquots prints the table and writes every key of the issue."""
    out = tmp_path / "bench.json"
    status = cli.main(
        [
            "--aliquots",
            "300",
            "--smoke",
            "--out",
            str(out),
            "--database-url",
            f"sqlite:///{tmp_path / 'bench.db'}",
        ]
    )
    assert status == 0
    figures = json.loads(out.read_text())
    assert set(KEYS) <= set(figures)
    assert figures["aliquots"] == 300 and figures["database"] == "sqlite"
    assert figures["import_rows"] == 300
    for key in KEYS[2:]:
        assert figures[key] is None or figures[key] > 0, key
    assert set(figures["targets"]) == {t.key for t in report.TARGETS}
    printed = capsys.readouterr().out
    assert "scan_us_p50" in printed and "custody_verify_events_per_s" in printed


def test_wrk_output_is_read_into_numbers():
    """Throughput, p50/p99 in ms, and errors (a read error is a reconnect, not a failure)."""
    output = """Running 30s test @ http://127.0.0.1:8000
  2 threads and 16 connections
  Latency Distribution
     50%    7.50ms
     75%   10.01ms
     90%   15.20ms
     99%  812.00us
  12000 requests in 30.00s, 9.1MB read
  Socket errors: connect 0, read 12000, write 0, timeout 2
  Non-2xx or 3xx responses: 3
Requests/sec:    400.00
"""
    parsed = load.parse_wrk(output)
    assert parsed["requests"] == 12000 and parsed["throughput_rps"] == 400.0
    assert parsed["p50_ms"] == 7.5 and parsed["p99_ms"] == 0.812
    assert parsed["errors"] == 5


def test_targets_are_judged_only_when_measured():
    """A missing figure is neither met nor missed."""
    verdicts = report.verdicts(
        {"scan_ratio": 1.5, "box_map_ms": 12.0, "labels_svg_per_s": 90, "bare_svg_per_s": 100}
    )
    assert verdicts["scan_ratio"] is True and verdicts["box_map_ms"] is False
    assert verdicts["labels_svg_per_s"] is True
    assert verdicts["availability_ms"] is None
