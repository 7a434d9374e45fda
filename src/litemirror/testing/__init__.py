"""Helpers to run real litemirror processes: used by the tests, the demo and the benchmarks."""
