"""Work the benchmark runs in a child process, to measure its peak memory on its own.

``python -m bench.child import FILE.csv`` imports an inventory file into the database of
``BIOBANK_DATABASE_URL`` through ``biobank.imports.service`` (as ``flask import aliquots``
does) and prints one JSON line: aliquots, samples, seconds (and of them on the CPU), peak and
starting RSS in MB.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def rss_mb(field: str = "VmHWM") -> float:
    """This process's peak (VmHWM) or current (VmRSS) resident set size, in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def import_file(path: Path) -> dict[str, float]:
    """Import one file in one transaction; what it took."""
    from biobank import create_app
    from biobank.db import get_session
    from biobank.imports import service
    from biobank.samples.numbering import numbering

    app = create_app()
    with app.app_context():
        session = get_session()
        start_rss = rss_mb("VmRSS")
        started, cpu = time.perf_counter(), time.process_time()
        summary = service.import_aliquots(session, "bench", path, numbering())
        session.commit()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "aliquots": summary.aliquots,
        "samples": summary.samples,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_mb": rss_mb("VmHWM"),
        "start_rss_mb": start_rss,
    }


def main(argv: list[str]) -> int:
    """Run the command named on the command line."""
    if len(argv) != 2 or argv[0] != "import":
        print("usage: python -m bench.child import FILE.csv", file=sys.stderr)
        return 2
    print(json.dumps(import_file(Path(argv[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
