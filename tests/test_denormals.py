"""``distgen.denormals``: the flushing mode is read from the hardware and restored after ``ieee_denormals``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distgen.denormals import flushing, ieee_denormals


def denormal(k: int) -> np.float64:
    """``k`` times the smallest positive denormal double, from its bits (a literal would parse as 0.0 here:
    the test suite compiles this module with denormals flushed)."""
    return np.array([k], dtype=np.uint64).view(np.float64)[0]


@pytest.fixture
def flush_supported():
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    yield
    torch.set_flush_denormal(True)  # the suite's setting (tests/conftest.py)


def test_flushing_reads_the_mode(flush_supported):
    assert flushing()
    assert denormal(1) * 3.0 == 0.0  # flushed: the probe agrees with arithmetic
    torch.set_flush_denormal(False)
    assert not flushing()
    assert denormal(1) * 3.0 == denormal(3)


def test_denormals_kept_inside_the_block_and_flushing_restored(flush_supported):
    with ieee_denormals():
        assert not flushing()
        assert denormal(1) * 3.0 == denormal(3)
    assert flushing()
    assert denormal(1) * 3.0 == 0.0


def test_a_mode_without_flushing_is_left_alone(flush_supported):
    torch.set_flush_denormal(False)
    with ieee_denormals():
        assert not flushing()
    assert not flushing()


def test_restored_when_the_block_raises(flush_supported):
    with pytest.raises(RuntimeError), ieee_denormals():
        raise RuntimeError("boom")
    assert flushing()


def test_control_table_same_under_flushing(flush_supported):
    from distgen.evaluation.ranksums import control_table

    g = torch.Generator().manual_seed(0)
    x = torch.poisson(torch.full((300, 40), 0.4), generator=g).to(torch.float64)  # mostly zeros, ties
    flushed = control_table(x, backend="numpy")
    assert flushing()
    torch.set_flush_denormal(False)
    plain = control_table(x, backend="numpy")
    assert flushed is not None and plain is not None
    np.testing.assert_array_equal(flushed.sorted, plain.sorted)
    np.testing.assert_array_equal(flushed.sorted, np.sort(x.numpy().T, axis=1))
    np.testing.assert_array_equal(flushed.tie, plain.tie)
