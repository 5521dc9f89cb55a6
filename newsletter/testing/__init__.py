"""Test doubles that are real servers (no mocks): importable by tests and benchmarks."""
