"""distgen benchmarks: the scale harness (``python -m benchmarks``) and single-purpose scripts."""
