"""One-command benchmarks: each measures two sides in one run and judges their ratio."""
