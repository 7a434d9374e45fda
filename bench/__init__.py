"""Benchmarks: litemirror against plain SQLite (and, as they land, PostgreSQL)."""
