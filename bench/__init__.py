"""Benchmarks: `make bench` (python -m bench). Figures are ratios to baselines of the same run."""
