"""Shared test setup: deterministic, single-threaded torch; denormals flushed."""

import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("DISTGEN_TEST_THREADS", "1")))
torch.set_flush_denormal(True)

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


@pytest.fixture
def shared_data() -> str:
    """Path to ``../shared/data`` (CI has it); tests needing it skip when absent."""
    if not os.path.isdir(SHARED_DATA):
        pytest.skip("../shared/data is not present")
    return os.path.abspath(SHARED_DATA)


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
