"""Freezer storage: the container hierarchy, box positions, moves, rack scans, excursions."""
