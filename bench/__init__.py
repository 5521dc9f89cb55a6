"""Benchmarks: one script per target, `python -m bench.<name>`."""
