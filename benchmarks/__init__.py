"""Benchmarks: `python -m benchmarks [--quick]`. Results go to benchmarks/results/."""
