"""One harness that measures speed, memory and scaling of distgen in a single run.

``python -m benchmarks run --mode tiny|small|full`` (or ``distgen bench``) measures training
steps/s and cells/s of every preset, peak memory (RSS; CUDA peak when present), sampling cells/s
against the number of function evaluations, evaluation time against cell-eval, the streaming data
pipeline (epoch time against cells, peak RSS, the fraction of step time spent waiting for data) and
scaling curves with fitted log-log exponents. It writes JSON, and with ``--docs`` a markdown section
of ``docs/benchmarks.md``; it asserts the bounds of issue #11 and exits non-zero when one fails.
"""

from benchmarks.harness.run import MODES, run_all

__all__ = ["MODES", "run_all"]
