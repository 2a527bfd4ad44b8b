"""Where else an ``.h5ad`` file keeps its expression: the layers and ``raw`` that hold the scale an evaluation asks for.

Evaluation reads ``X`` only. A file whose ``X`` is on the other scale often keeps the wanted one beside it (scanpy
pipelines keep raw counts in ``layers["counts"]`` or ``raw``; Bioconductor exports keep ``layers["logcounts"]``), and
the refusal can then name the one line that fixes it. Read with h5py from a sample of the stored values: a hint, not a
check (the evaluation checks whatever ``X`` becomes).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

#: Stored values read per layer (enough to tell integers from fractions, cheap on any file).
SAMPLE = 200_000


def _sample(node: Any) -> np.ndarray | None:
    """Up to ``SAMPLE`` stored values of a dense dataset or a sparse group (its ``data``), or None."""
    import h5py

    if isinstance(node, h5py.Group):
        node = node.get("data")
    if not isinstance(node, h5py.Dataset) or node.dtype.kind not in "fiub":
        return None
    dtype = node.dtype if node.dtype.kind == "f" else np.float64  # a float keeps its dtype: ``looks`` judges counts in it
    if node.ndim == 1:
        return np.asarray(node[: min(SAMPLE, node.shape[0])], dtype=dtype)
    if node.ndim == 2 and node.shape[1]:
        rows = max(1, min(node.shape[0], SAMPLE // node.shape[1]))
        return np.asarray(node[:rows], dtype=dtype).ravel()
    return None


def looks(values: np.ndarray) -> str | None:
    """``"counts"`` (non-negative integers, some 1 or more), ``"lognorm"`` (non-negative, fractional, below 30) or None.

    Integers within ``io.COUNT_ATOL`` in the values' dtype, as cell-eval2 0.20.0 takes counts (``io.check_counts``)."""
    from distgen.evaluation.io import count_atol, off_integer

    v = values[np.isfinite(values)]
    if not v.size or v.min() < 0 or v.max() <= 0:
        return None
    if np.rint(v.max()) >= 1 and not off_integer(v, count_atol(v.dtype)).any():  # all within 1e-6 of 0 is no count
        return "counts"
    return "lognorm" if v.max() < 30 else None


def stored_elsewhere(path: Any, want: str) -> list[str]:
    """The places of ``path`` other than ``X`` whose values look like ``want`` (``"counts"`` or ``"lognorm"``), as code
    (``adata.layers['counts']``, ``adata.raw.X``); empty when none does or the file cannot be read with h5py."""
    if not isinstance(path, str | os.PathLike) or not os.path.isfile(path):
        return []
    try:
        import h5py

        found = []
        with h5py.File(path, "r") as f:
            layers = f.get("layers")
            for name in list(layers.keys()) if layers is not None else []:
                values = _sample(layers[name])
                if values is not None and looks(values) == want:
                    found.append(f"adata.layers[{name!r}]")
            raw = f.get("raw")
            if raw is not None and "X" in raw and "var" in raw:
                values = _sample(raw["X"])
                if values is not None and looks(values) == want:
                    found.append("adata.raw.X")
        return found
    except (OSError, KeyError, ValueError, TypeError):  # a hint only: a file h5py cannot read gets none
        return []


def scale_hint(path: Any, want: str) -> str:
    """``" (its adata.layers['counts'] looks like raw counts: ...)"`` for a refusal message, or ``""``."""
    places = stored_elsewhere(path, want)
    if not places:
        return ""
    what = "raw counts" if want == "counts" else "log-normalised values"
    first = places[0]
    fix = f"adata.X = {first}" if first != "adata.raw.X" else "adata.X = adata.raw[:, adata.var_names].X"
    return (f"; the file {os.fspath(path)!r} keeps {what} in {', '.join(places)}: evaluate those ({fix}, then write the file "
            "again)")


@contextlib.contextmanager
def scale_hints(sources: Mapping[str, Any]) -> Iterator[None]:
    """Refusals of a file's value scale (``ValueScaleError``) raised inside get ``scale_hint`` of that file appended.

    ``sources``: ``{"pred": path, "real": path, "training": path}`` (entries that are not paths give no hint)."""
    from distgen.evaluation.io import ValueScaleError

    try:
        yield
    except ValueScaleError as e:
        side = "pred" if e.side.startswith("pred") else e.side
        hint = scale_hint(sources.get(side), e.want)
        if not hint:
            raise
        raise type(e)(str(e) + hint, e.side, e.want) from None  # the same class (a PairScaleError stays a ScaleMismatchError)
