"""One reader of a run folder's ``DONE``: ``distgen run``'s check of a finished experiment (``read_finished``) and the
sweep's (``RunFolder.record``: whose ``DONE`` it is, the ``--metrics`` it was evaluated with) read the same bytes the same way,
as UTF-8 whatever the locale. The sweep's read the text in the locale's encoding: under ``LC_ALL=C`` (ASCII) a record
naming a metric in non-ASCII letters was another runner's marker to the sweep and ``distgen run``'s record to the run."""

import json
import os
import subprocess
import sys

import pytest

from distgen.pipeline.run_folder import DONE_FILE, RunFolder

DONES = [b'{"metrics": ["mse"]}\n', b'{"metrics": null}\n', b"ok\n", b"", b"[]", b'{"metrics": ["ms',
         b'\xef\xbb\xbf{"metrics": null}', b"\xff\xfe{\x00}\x00", '{"metrics": ["\u00e9"]}'.encode(),
         '{"metrics": ["\u00e9"]}'.encode("latin-1"), b'{"metrics": "mse"}', b'"x"']


@pytest.mark.parametrize("raw", DONES)
def test_done_record_is_the_json_object_of_the_bytes_or_none(tmp_path, raw):
    (tmp_path / DONE_FILE).write_bytes(raw)
    try:
        want = json.loads(raw.decode("utf-8"))
    except ValueError:
        want = None
    assert RunFolder.read(tmp_path).record == (want if isinstance(want, dict) else None)


def test_done_record_reads_utf8_under_an_ascii_locale(tmp_path):
    (tmp_path / DONE_FILE).write_bytes('{"metrics": ["\u00e9"]}\n'.encode())
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    code = ("import sys; from distgen.pipeline.run_folder import RunFolder; "
            "print(ascii(RunFolder.read(sys.argv[1]).record))")
    got = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, capture_output=True, text=True, check=True)
    assert got.stdout.strip() == ascii({"metrics": ["\u00e9"]})
