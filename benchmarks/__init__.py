"""Benchmark suite (``make bench`` / ``make bench-full``); see ``benchmarks.suite``."""
