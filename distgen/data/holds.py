"""Whether a loaded ``Dataset`` holds what a config's ``data:`` value names, by meaning, not by spelling.

``distgen.fit(model, dataset, config=doc)`` refuses a ``data.dataset``/``schema``/``split``/``hvg`` the Dataset does not
hold (the config's would be read by nothing). The same data can be written several ways: a relative or an absolute path
to one file, a schema with its defaults spelled out, a split given as ``make_split`` arguments or as the file it was
saved to. So each is compared by what it selects: the file, the resolved schema, the cells of each part. A Dataset
loaded with more than the config says (the preset's split refined by ``test_frac``, a schema with more fields) holds it:
the config's keys are compared over the Dataset's values and the defaults, as ``examples/quickstart.py`` loads its data.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from distgen.data.prepared import Dataset, DatasetOrigin


class NeedsCells(Exception):
    """``holds`` cannot tell without the Dataset's cells: a ``DatasetOrigin`` whose Dataset is gone, asked about split
    arguments other than the Dataset's (only making the split from the cells says whether they select the same ones)."""


def _same_file(given: Any, held: Any) -> bool:
    from distgen.data.section import BUNDLED

    a, b = (os.path.expanduser(os.fspath(v)) for v in (given, held))
    if a in BUNDLED or b in BUNDLED:
        return a == b
    try:
        return os.path.samefile(a, b)
    except OSError:  # one is not there (moved since loading): as written, made absolute
        return os.path.abspath(a) == os.path.abspath(b)


def _schema(dataset_name: str, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The schema ``Dataset.load`` reads a data set with (its base, then the section's fields)."""
    from distgen.data import bundled
    from distgen.data.schema import PerturbationSchema

    base = {"norman_k562": bundled.NORMAN_SCHEMA, "kang_pbmc": bundled.KANG_SCHEMA}.get(dataset_name, PerturbationSchema())
    return PerturbationSchema.from_dict({**base.to_dict(), **dict(given or {})}).to_dict()


def _normal(value: Any) -> Any:
    """A config value as plain data: tuples and arrays as lists (a split's ``test_conditions`` may come as either)."""
    if isinstance(value, Mapping):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple) or type(value).__name__ == "ndarray":
        return [_normal(v) for v in value]
    return value


def _same_split(given: Any, dataset: Dataset | DatasetOrigin) -> bool:
    import inspect

    from distgen.data.split import Split
    from distgen.data.splitters import make_split

    assert dataset.section is not None and dataset.split is not None
    held = dataset.section.split
    if isinstance(given, Mapping) and not isinstance(held, str | os.PathLike):
        # the keys the config sets, over the Dataset's arguments and make_split's defaults: a Dataset loaded with more
        # (the preset's split refined by test_frac or test_conditions, as examples/quickstart.py does) holds the config's
        ours = {k: p.default for k, p in inspect.signature(make_split).parameters.items() if p.default is not p.empty}
        ours = _normal({**ours, **dict(held or {})})
        if {**ours, **_normal(given)} == ours:
            return True
    if isinstance(given, str | os.PathLike) and isinstance(held, str | os.PathLike) and _same_file(given, held):
        return True
    from distgen.data.prepared import Dataset

    cells = dataset.data if isinstance(dataset, Dataset) else None  # a DatasetOrigin (its Dataset gone) kept the split, not the cells
    if cells is None and not isinstance(given, str | os.PathLike):
        raise NeedsCells
    try:  # a split file against arguments, two files, or arguments the kind does not read (a seed beside test_conditions): the cells of each part
        with warnings.catch_warnings():  # its warnings were said when the Dataset was loaded
            warnings.simplefilter("ignore")
            split = Split.load(given) if isinstance(given, str | os.PathLike) or cells is None else make_split(cells, **dict(given))
    except Exception:  # a split that cannot be made or read here is not the Dataset's
        return False
    ours_split = dataset.split
    return all(torch.equal(getattr(split, p), getattr(ours_split, p)) for p in ("train", "val", "test"))


def holds(dataset: Dataset | DatasetOrigin, key: str, given: Any) -> bool:
    """Whether ``dataset`` holds the config's ``data.<key>`` (``dataset``, ``schema``, ``split`` or ``hvg``) = ``given``.

    ``dataset`` may be the ``DatasetOrigin`` of a table whose Dataset is gone (its section and split): ``NeedsCells`` where
    the split's answer needs the cells."""
    section = dataset.section
    assert section is not None
    if key == "dataset":
        return isinstance(given, str | os.PathLike) and _same_file(given, section.dataset)
    if key == "schema":
        if not isinstance(given, Mapping):
            return False
        try:  # the fields the config sets, over the Dataset's schema (one it was loaded with more fields holds it)
            ours = _schema(str(section.dataset), section.schema)
            return _schema(str(section.dataset), {**ours, **dict(given)}) == ours
        except (TypeError, ValueError):
            return False
    if key == "split":
        return _same_split(given, dataset)
    return bool(getattr(section, key) == given)
