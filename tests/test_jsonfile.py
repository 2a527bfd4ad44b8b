"""``distgen.jsonfile``, the one reader of distgen's small JSON files, read UTF-8 only, as the readers it
replaced did. It parsed the bytes with ``json.loads``, which also decodes UTF-16 and UTF-32 and
skips a UTF-8 byte-order mark, so a ``summary.json``, ``timings.json`` or ``DONE`` saved by an editor in those encodings
was read where every tree before refused it naming the file ("Unexpected UTF-8 BOM ...", "'utf-8' codec can't decode
..."), and ``\\xff\\xfe`` was reported as "Expecting value" (an empty UTF-16 text) instead of the undecodable byte."""

import pytest

from distgen.jsonfile import read_json
from distgen.report import files


@pytest.mark.parametrize(("raw", "said"), [
    (b'\xef\xbb\xbf{"a": 1}', "Unexpected UTF-8 BOM"),
    ('{"a": 1}'.encode("utf-16"), "'utf-8' codec can't decode byte 0xff in position 0"),
    ('{"a": 1}'.encode("utf-16-le"), "Expecting property name enclosed in double quotes"),
    (b"\xff\xfe", "'utf-8' codec can't decode byte 0xff in position 0"),
])
def test_a_file_not_in_utf8_is_refused_naming_it_as_before(tmp_path, raw, said):
    path = tmp_path / "summary.json"
    path.write_bytes(raw)
    doc, why = read_json(path)
    assert doc is None and why is not None and why.startswith(f"{path} cannot be read (") and said in why
    with pytest.raises(ValueError, match=f"is not valid JSON \\(.*{said[:20]}") as info:
        files.read_json(path)
    assert str(path) in str(info.value)


def test_utf8_text_is_read(tmp_path):
    path = tmp_path / "summary.json"
    path.write_bytes('{"gene": "Å"}'.encode())
    assert read_json(path) == ({"gene": "Å"}, None) and files.read_json(path) == {"gene": "Å"}
