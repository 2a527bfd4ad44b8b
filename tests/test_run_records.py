"""The versioned JSON records of a run folder (data record, embedding-table record) read through one reader,
``distgen.atomic.read_record``: missing is None; damage, another format or a newer version is a ConfigError naming the
file and what to do."""

import json
import re

import pytest

from distgen.conditioners import table_record
from distgen.config import ConfigError
from distgen.data import record


@pytest.mark.parametrize("read, name, fix", [
    (lambda d: record.DataRecord.load(d), record.RECORD_FILE, "--train-data PATH"),
    (lambda d: table_record.read(d), table_record.TABLES_FILE, "restore it from the run's copy"),
])
def test_missing_damaged_foreign_and_newer_records(tmp_path, read, name, fix):
    assert read(tmp_path) is None  # a run from before records: the callers fall back
    path = tmp_path / name
    path.write_text("{bad")
    with pytest.raises(ConfigError, match=rf"{name} is not valid JSON .*is damaged; .*{re.escape(fix)}"):
        read(tmp_path)
    path.write_text(json.dumps({"format": "something else", "version": 1}))
    with pytest.raises(ConfigError, match=rf"{name} is not a distgen "):
        read(tmp_path)
    fmt = record.FORMAT if name == record.RECORD_FILE else table_record.FORMAT
    path.write_text(json.dumps({"format": fmt, "version": 999}))
    with pytest.raises(ConfigError, match=rf"{name} has version 999 of the .* format, newer than this distgen reads .*upgrade distgen, or .*{re.escape(fix)}"):
        read(tmp_path)
