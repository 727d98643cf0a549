"""Benchmarks operators rerun: `cdrveil bench` / `make bench`, see benchmarks/RESULTS.md."""
