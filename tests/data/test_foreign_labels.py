"""``unknown_labels_message``: the labels a trained run has no id for, named in full or counted."""

import numpy as np

from distgen.data.foreign import unknown_labels_message
from distgen.data.schema import PerturbationSchema
from distgen.types import DataInfo


def test_more_than_eight_unknown_labels_are_counted():
    """The count of unknown labels beyond the eight named was lost behind a comment (60753cf): 20 unknown contexts read
    as if there were eight."""
    info = DataInfo(genes=("g0", "g1"), perturbations=("A",), contexts=("K562",), batches=("b0",))
    contexts = [np.str_(f"C{i:02d}") for i in range(20)]
    text = unknown_labels_message([("A",)] * 20, contexts, ["b0"] * 20, PerturbationSchema(), info)
    assert text is not None and "unknown contexts 'C00'" in text and "np.str_" not in text
    assert "(and 12 more)" in text and "C08" not in text


def test_a_context_in_another_case_is_named_without_numpy_types():
    """The contexts round: ``b`` for the training file's ``B`` was said as "np.str_('b') is 'B'" (anndata gives numpy
    strings)."""
    info = DataInfo(genes=("g0", "g1"), perturbations=("A",), contexts=("A", "B"), batches=("b0",))
    text = unknown_labels_message([("A",)], [np.str_("b")], ["b0"], PerturbationSchema(), info)
    assert text is not None and "'b' is 'B'" in text and "np.str_" not in text
