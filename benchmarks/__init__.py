"""Benchmarks operators rerun: `python -m benchmarks` / `make bench`, see benchmarks/RESULTS.md."""
