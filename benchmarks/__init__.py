"""Benchmarks against the anchor libraries, run in the same process: `python -m benchmarks [topic ...]`."""
