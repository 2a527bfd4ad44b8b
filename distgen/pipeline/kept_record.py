"""The data record of a run trained before runs kept one, made once from its training file and kept in the run folder.

``distgen predict RUN --data FILE`` reads of the training data only what ``DataRecord`` holds (``data_record.json``,
written at training). A run without one read and hashed its whole training file on every such prediction (seconds to
minutes and the file's size in memory, for a record of a few kB). The first prediction now writes the record it makes
into the run folder, the one training would have written (``DataRecord.from_dataset`` at the run's ``train.seed``,
dispersions fitted: byte for byte the training's for a run of this version), so the next ones read it instead. Kept only
when it is safe:

- the file was read at the run's recorded path and its content hash is the one the run's ``manifest.json`` recorded at
  training (nothing else proves the file is the training data; a ``--train-data`` copy is not kept);
- the run folder's lock is free: its one writer (``docs/reliability.md``, "One writer per run folder") is this process
  while the two files are written, each atomically (renamed into place), so no reader sees half a record and no training
  or other prediction writes beside it; a folder held by another process, or that cannot be written, keeps none (said
  on stderr) and the prediction goes on from the record made in memory.
"""

from __future__ import annotations

import sys
from pathlib import Path

from distgen.data.prepared import Dataset
from distgen.data.record import RECORD_FILE, DataRecord
from distgen.train.lock import FolderNotWritableError, RunLock, RunLockedError
from distgen.train.manifest import recorded_data_hash


def keep_record(run_dir: Path, dataset: Dataset, seed: int) -> DataRecord:
    """The record of ``dataset`` (the run's training data, read at its recorded path) for a run that holds none, written into
    ``run_dir`` when that is safe (module docstring); the record either way."""
    want = recorded_data_hash(run_dir)
    if not want or want != str(dataset.data.hash):  # nothing proves this file is the training data: made, not kept
        return DataRecord.from_dataset(dataset, seed=seed, fit=False)
    record = DataRecord.from_dataset(dataset, seed=seed)  # dispersions fitted now, as training fits them
    try:
        with RunLock(run_dir, "predict"):
            if DataRecord.load(run_dir) is None:  # none written meanwhile by another process
                record.save(run_dir)
                print(f"note: {run_dir} held no data record ({RECORD_FILE}: runs trained before distgen kept one); it was made from "
                      "the run's training file (its content hash is the run's) and kept in the run folder: predicting other files "
                      "reads it from now on, not the training file", file=sys.stderr)
    except FolderNotWritableError:  # its message advises a prediction written into the run folder: not this one
        print(f"note: the data record made from the training file was not kept in {run_dir} (it is not writable: read-only, or "
              "another user's); the next prediction of another file reads the training file again", file=sys.stderr)
    except (RunLockedError, OSError) as exc:
        print(f"note: the data record made from the training file was not kept in {run_dir} ({str(exc)[:200]}); the next "
              "prediction of another file reads the training file again", file=sys.stderr)
    return record
