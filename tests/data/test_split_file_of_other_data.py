"""A split file read against data of another number of cells (review of the old run folders round, 2026-12-07).

Since that round ``distgen run`` resumes on the run's ``train/split.json``, as ``distgen train --resume`` does. Where the
data file had changed since (cells removed), both stopped at "error: index (3374) out of range" (the split's cell indices
past the data's end), where ``distgen run`` said before "the data of ... changed since this run was trained". The split
file records the cells it was made for (``n_cells``); reading it against other data names both counts and the fix.
"""

import anndata as ad
import pytest

from distgen.data import Dataset, bundled


def test_a_split_file_of_data_with_more_cells_is_refused_naming_both_counts(tmp_path):
    bundled.norman_k562().write_h5ad(tmp_path / "d.h5ad")
    section = {"dataset": str(tmp_path / "d.h5ad"), "hvg": 64, "split": {"kind": "combo_seen2", "seed": 0, "test_frac": 0.5}}
    made = Dataset.load(section)
    made.split.save(tmp_path / "split.json")
    again = Dataset.load(section, tmp_path / "split.json")  # the same data: the file reads back to the same cells
    assert list(again.split.test) == list(made.split.test) and list(again.split.train) == list(made.split.train)
    cells = ad.read_h5ad(tmp_path / "d.h5ad")
    cells[50:].copy().write_h5ad(tmp_path / "d.h5ad")  # the file changed since: 50 cells fewer
    with pytest.raises(ValueError, match=rf"split file .*split\.json' was made for data of {cells.n_obs} cells, but the data "
                                         rf"has {cells.n_obs - 50}.*changed since"):
        Dataset.load(section, tmp_path / "split.json")
