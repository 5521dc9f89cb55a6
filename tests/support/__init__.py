"""Test doubles and data arrangers shared by the tests and the benchmarks (never in the wheel)."""
