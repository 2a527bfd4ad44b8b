"""The parity shim's ``function_from`` (default suite: no official checkout needed)."""

import textwrap

import pytest

from benchmarks.parity.shim import function_from


def test_function_from_runs_only_the_named_functions_and_classes_of_a_script(tmp_path):
    """scDFM's data classes (``Data``, ``TrainSampler``, ``PerturbationDataset``) live beside module code that imports
    what is not installed here; the batching rows take the classes alone, as the loss rows take ``run.py``'s functions
    (before, only ``def``s were taken: "defines no ['Sampler']")."""
    script = tmp_path / "data.py"
    script.write_text(textwrap.dedent('''
        import not_installed_anywhere
        raise SystemExit("module code must not run")

        def double(x):
            return 2 * x

        class Sampler:
            def draw(self):
                return double(SCALE)
    '''))
    ns = function_from(script, ("double", "Sampler"), {"SCALE": 21})
    assert ns["Sampler"]().draw() == 42
    with pytest.raises(LookupError, match="Missing"):
        function_from(script, ("Missing",), {})
