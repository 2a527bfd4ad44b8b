"""The text of doses in population labels (``dex@10``, ``A@1+B@3``) and the rewrite of labels an earlier distgen wrote with a
float32 dose's long text (``current_label``). Without pandas or AnnData: the evaluation's readers (``distgen.evaluation``)
take these from here, as ``distgen.data.conditions`` (which writes dose labels) does."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

import numpy as np

#: Between an atom and its dose in the label of a population of data at several doses per condition (``dex@10``,
#: ``A@1+B@3``): ``dose_label``, read back by ``parse_dose_label``.
DOSE_TAG = "@"


def exact_dose_text(dose: float) -> str:
    """A dose as the shortest positional decimal that reads back as the same float64 (``0.30000001192092896`` for a float32
    0.3): how labels were written before the short float32 form (``legacy_dose_label``) and how two doses that differ only
    past float32 are named apart in messages."""
    return str(np.format_float_positional(float(dose), trim="-"))


def dose_text(dose: float) -> str:
    """A dose as a label writes it: the shortest positional decimal that reads back as the same dose (``10``, ``0.1``,
    ``0.0000001``; never an exponent, whose ``+`` would read as a combination). A dose that is a float32 value (a float32
    dose column's 0.3 is 0.30000001192092896) is written as the shortest decimal that reads back as that float32,
    ``0.3``; any other as the shortest that reads back as the same float64. Either text, read as a float and then as
    float32 (as models read doses), is the dose's float32: two doses that differ in float32 never share a text."""
    value = float(dose)
    single = np.float32(value)
    if math.isfinite(value) and float(single) == value:
        short = str(np.format_float_positional(single, trim="-"))
        if np.float32(float(short)) == single:  # read as labels are read (float64, then float32): the same float32
            return short
    return exact_dose_text(value)


#: A dose in a label (``@`` and the number, never an exponent) and what ends it: the end, or a delimiter (never a digit
#: or ``.``: ``check_dose_labels``). A number with an exponent (``1.100000023841858e-05``) is no dose label's: kept.
_LABEL_DOSE = re.compile(r"@(-?[0-9]+(?:\.[0-9]+)?)(?=$|[^0-9.eE])")


def current_label(label: str) -> str:
    """A population label as this distgen writes it: a dose label stored by an earlier version with a float32 dose's
    long text (``dexa@0.30000001192092896``, from a split file, a run's records, a metrics.csv or a prediction) is
    ``dexa@0.3``; any other label unchanged (a current one, ``dexa``, ``control``, and a dose not written as
    ``legacy_dose_label`` wrote it: ``dexa@10.0`` stays). Only the doses' text changes, so any delimiter works and the
    parts keep their order. Called where a stored label meets the data's: split loading and the leakage check,
    pre-flight, pages, the pairing of a prediction with its truth, and the comparison of two evaluations."""

    def short(m: re.Match[str]) -> str:
        text = m.group(1)
        value = float(text)
        return f"{DOSE_TAG}{dose_text(value)}" if exact_dose_text(value) == text else m.group(0)

    text = str(label)
    return _LABEL_DOSE.sub(short, text) if DOSE_TAG in text else text


def current_labels(labels: Iterable[str]) -> dict[str, str]:
    """``{label: current_label(label)}`` of labels read together (one file's, one evaluation's rows, one run's table);
    every label unchanged when the rewrite would make two of them one (``x@0.3`` and ``x@0.30000001192092896`` both
    written: two populations of data without doses, named so by the user; an earlier distgen never wrote both, as it
    refused two doses of an atom that are one float32)."""
    now = {str(k): current_label(str(k)) for k in labels}
    return now if len(set(now.values())) == len(now) else {k: k for k in now}


def current_labels_of_files(label_sets: Iterable[Iterable[str]]) -> dict[str, str]:
    """``current_labels`` of several files read together (a prediction, its truth, a training file): one rewrite for every
    file, so a label names one population in all of them. The labels that would become one label of one file
    (``x@0.3`` and ``x@0.30000001192092896`` both in it: that file names two populations so) are kept, in every file;
    labels of different files that become one (an earlier distgen's prediction beside a truth written now) are the same
    population, and are rewritten. Only the labels of such a clash are kept: another label's rewrite goes on (the
    evaluation names a pair of labels kept apart so, ``evaluation.io.label_note``)."""
    sets = [{str(k) for k in labels} for labels in label_sets]
    every = set().union(*sets)
    now = {k: current_label(k) for k in every}
    clashing = {t for labels in sets for t, n in Counter(now[k] for k in labels).items() if n > 1}
    return {k: k if now[k] in clashing else now[k] for k in every}
