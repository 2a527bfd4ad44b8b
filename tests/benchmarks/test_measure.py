"""Measurement helpers: exponents, medians, memory, FLOPs, hardware."""

import time

import pytest
import torch

from benchmarks.harness.measure import count_flops, describe, hardware, loglog_exponent, peak_flops, peak_rss_mb, timed


@pytest.mark.parametrize("k", [0.5, 1.0, 2.0])
def test_loglog_exponent_recovers_a_power_law(k):
    x = [10.0, 20.0, 40.0, 80.0]
    assert loglog_exponent(x, [3.0 * v**k for v in x]) == pytest.approx(k, abs=1e-9)


def test_timed_reports_the_median_after_warmup():
    calls = []
    delays = iter([0.0, 0.03, 0.001, 0.01])

    def fn():
        calls.append(1)
        time.sleep(next(delays))

    t = timed(fn, warmup=1, repeats=3)
    assert len(calls) == 4 and t["repeats"] == 3
    assert t["min_s"] < t["median_s"] < t["max_s"] and 0.009 < t["median_s"] < 0.03


def test_flops_of_a_matmul_forward_and_backward():
    a = torch.randn(8, 16, requires_grad=True)
    b = torch.randn(16, 4)
    assert count_flops(lambda: (a @ b).sum().backward()) == 2 * (2 * 8 * 16 * 4)  # forward + the gradient wrt a


def test_memory_and_hardware_are_named():
    assert peak_rss_mb() > 10
    hw = hardware()
    assert hw["cpu_count"] >= 1 and hw["torch"] == torch.__version__
    assert "torch" in describe(hw)
    assert peak_flops(torch.device("cpu")) is None
