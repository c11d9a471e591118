"""Benchmarks of the biobank at biobank scale, next to the bare stack, in the same run.

``python -m bench --aliquots N`` builds a biobank of N aliquots through the service's own
paths and measures it (bench.cli); ``python -m bench.load`` serves it with gunicorn and
drives the scan endpoint from other processes (bench.load). docs/performance.md has the
latest figures and how to reproduce them.
"""
