"""One harness that measures speed, memory and scaling of distgen in a single run.

``python -m benchmarks run --mode tiny|small|full`` (or ``distgen bench``) measures training
steps/s and cells/s of every preset, peak memory (RSS; CUDA peak when present), sampling cells/s
against the number of function evaluations, evaluation time against cell-eval, the streaming data
pipeline (epoch time against cells, peak RSS, the fraction of step time spent waiting for data) and
scaling curves with fitted log-log exponents. It writes JSON, and with ``--docs`` a markdown section
of ``docs/benchmarks.md``; it asserts the bounds of issue #11 and exits non-zero when one fails.
"""

from typing import Any

__all__ = ["MODES", "run_all"]


def __getattr__(name: str) -> Any:
    # Lazy: `distgen`'s parser imports benchmarks.harness.cli for its options; importing the runner
    # (and with it torch) only when a benchmark runs keeps every `distgen` command fast to start.
    if name in __all__:
        from benchmarks.harness import run

        return getattr(run, name)
    raise AttributeError(name)
