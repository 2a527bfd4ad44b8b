"""The messages of ``distgen.jsonfile``'s readers and of the report's ``files.read_json``, one per kind of bad file: text
that is not valid JSON (cut short, edited, not UTF-8) is named damaged with the decoder's detail, valid JSON of another
type is named by its type. ``parse_json_object`` gives the kind and the detail apart (a ``JsonProblem``), so no caller reads
them back out of a sentence."""

import json
import re

import pytest

from distgen import jsonfile
from distgen.report import files


def _decoder(raw: bytes) -> str:
    """What the decoder says of ``raw`` (the detail each message carries)."""
    try:
        json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        return str(exc)
    raise AssertionError("valid JSON")


DAMAGED = [b"{bad", b'{"a": 1', b"", b"\xff\xfe", b'{"a": 1} trailing']
OTHER_TYPES = [(b"[1, 2]", "list"), (b"3", "int"), (b"2.5", "float"), (b'"text"', "str"), (b"null", "NoneType"), (b"true", "bool")]


@pytest.mark.parametrize("raw", DAMAGED)
def test_damaged_text_is_named_with_the_decoders_detail(tmp_path, raw):
    path = tmp_path / "summary.json"
    path.write_bytes(raw)
    detail = _decoder(raw)
    assert jsonfile.read_json(path) == (None, f"{path} cannot be read ({detail})")
    with pytest.raises(ValueError) as info:
        files.read_json(path, fix="FIX")
    assert str(info.value) == f"{path} is not valid JSON ({detail}): the file is damaged; FIX"


@pytest.mark.parametrize(("raw", "kind"), OTHER_TYPES)
def test_json_of_another_type_is_named_by_its_type(tmp_path, raw, kind):
    path = tmp_path / "summary.json"
    path.write_bytes(raw)
    assert jsonfile.read_json(path) == (None, f"{path} cannot be read (it holds no JSON object)")
    with pytest.raises(ValueError) as info:
        files.read_json(path, fix="FIX")
    assert str(info.value) == f"{path} holds a JSON {kind}, not the object distgen writes: FIX"


def test_a_long_decoder_detail_is_clipped_and_a_missing_file_named(tmp_path):
    path = tmp_path / "DONE"
    path.write_bytes(b"\xff" * 50)
    said = _decoder(b"\xff" * 50)
    assert len(said) > 30
    assert jsonfile.read_json(path, clip=30) == (
        None, f"{path} cannot be read ({said[:30]}... ({len(said) - 30} more characters; --debug shows the full error))")
    doc, why = jsonfile.read_json(tmp_path / "absent.json")
    assert doc is None and re.fullmatch(rf"{re.escape(str(tmp_path / 'absent.json'))} cannot be read \(.*No such file.*\)", str(why))


def test_an_object_is_read(tmp_path):
    path = tmp_path / "summary.json"
    path.write_bytes(b'{"a": [1, 2]}')
    assert jsonfile.read_json(path) == ({"a": [1, 2]}, None) and files.read_json(path) == {"a": [1, 2]}
    assert jsonfile.parse_json_object(b'{"a": 1}') == {"a": 1}


@pytest.mark.parametrize("raw", DAMAGED)
def test_parse_gives_damaged_text_its_kind_and_the_decoders_detail_apart(raw):
    assert jsonfile.parse_json_object(raw) == jsonfile.JsonProblem("invalid", _decoder(raw))


@pytest.mark.parametrize(("raw", "kind"), OTHER_TYPES)
def test_parse_gives_another_type_its_kind_and_the_type_apart(raw, kind):
    assert jsonfile.parse_json_object(raw) == jsonfile.JsonProblem("not_object", kind)


@pytest.mark.parametrize("raw", [b"{bad", b"[1, 2]"])
def test_a_problem_cannot_be_unpacked_as_the_old_document_and_reason_pair(raw):
    """``parse_json_object`` returned ``(document, why)``; a caller still unpacking that pair (written against the old
    return) would read the problem's kind as the document. A ``JsonProblem`` is not a pair: unpacking it fails."""
    with pytest.raises(TypeError):
        _doc, _why = jsonfile.parse_json_object(raw)
