"""``outputs.DEFAULT_IGNORABLE``, a hand copy of Unicode's ``Default_Ignorable_Code_Point`` (Python's ``unicodedata`` has
no such property), checked against the running Python's Unicode: the property is derived, and its rule is stated in the
header of ``DerivedCoreProperties.txt`` (UAX #44):

    Other_Default_Ignorable_Code_Point + Cf (Format characters) + Variation_Selector - White_Space
    - FFF9..FFFB (Interlinear annotation format characters) - 13430..1343F (Egyptian hieroglyph format characters)
    - Prepended_Concatenation_Mark (Exceptional format characters that should be visible)

Cf and the variation selectors come from ``unicodedata`` (category, name); the two lists ``unicodedata`` cannot give are
copied below from ``PropList.txt``.
"""

import itertools
import sys
import unicodedata

from distgen.pipeline.outputs import DEFAULT_IGNORABLE

#: Other_Default_Ignorable_Code_Point (PropList.txt, Unicode 14.0.0): fillers, the grapheme joiner, two Khmer
#: inherent vowels, and reserved code points kept ignorable for characters not yet assigned.
OTHER_DEFAULT_IGNORABLE = ((0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x2065, 0x2065), (0x3164, 0x3164),
                           (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0xE0000, 0xE0000), (0xE0002, 0xE001F), (0xE0080, 0xE00FF),
                           (0xE01F0, 0xE0FFF))
#: Prepended_Concatenation_Mark (PropList.txt, Unicode 14.0.0): format characters drawn as visible signs over the digits
#: that follow.
PREPENDED_CONCATENATION_MARK = ((0x0600, 0x0605), (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2),
                                (0x110BD, 0x110BD), (0x110CD, 0x110CD))
#: The literal exclusions of the rule: the interlinear annotation characters and the Egyptian hieroglyph format controls
#: (13430..13438 in Unicode 14.0, more of them since 15.0; 13430..13440 covers each version).
EXCLUDED = ((0xFFF9, 0xFFFB), (0x13430, 0x13440))


def _points(ranges):
    return {cp for lo, hi in ranges for cp in range(lo, hi + 1)}


def test_the_ranges_are_sorted_disjoint_code_points():
    assert all(0 <= lo <= hi <= sys.maxunicode for lo, hi in DEFAULT_IGNORABLE)
    assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(DEFAULT_IGNORABLE)), "sorted, apart, and adjacent ranges merged"


def test_the_table_is_the_property_derived_from_the_running_unicode():
    """The table holds exactly the code points the rule gives over this Python's ``unicodedata`` (14.0.0 in Python 3.11,
    15.0.0 in 3.12, 15.1.0 in 3.13): a format character a later Unicode adds fails here until the table has it."""
    chars = map(chr, range(sys.maxunicode + 1))
    cf = {ord(c) for c in chars if unicodedata.category(c) == "Cf"}
    selectors = {cp for cp in range(sys.maxunicode + 1) if "VARIATION SELECTOR" in unicodedata.name(chr(cp), "")}
    white = {cp for cp in cf | selectors if chr(cp).isspace()}
    derived = (_points(OTHER_DEFAULT_IGNORABLE) | cf | selectors) - white - _points(EXCLUDED) - _points(PREPENDED_CONCATENATION_MARK)
    table = _points(DEFAULT_IGNORABLE)
    assert not sorted(map(hex, derived - table)), f"missing from DEFAULT_IGNORABLE (Unicode {unicodedata.unidata_version})"
    assert not sorted(map(hex, table - derived)), f"not default-ignorable in Unicode {unicodedata.unidata_version}"


def test_each_listed_character_is_of_a_kind_the_property_allows():
    """Each listed code point the running Unicode assigns is a format character, a variation selector or other mark the
    property names (the grapheme joiner, the Khmer inherent vowels), or a Hangul filler; the others are unassigned (Cn)."""
    for cp in sorted(_points(DEFAULT_IGNORABLE)):
        ch, kind, name = chr(cp), unicodedata.category(chr(cp)), unicodedata.name(chr(cp), "")
        assert kind in {"Cf", "Mn", "Lo", "Cn"}, (hex(cp), kind, name)
        if kind == "Mn":
            assert "VARIATION SELECTOR" in name or name in {"COMBINING GRAPHEME JOINER", "KHMER VOWEL INHERENT AQ",
                                                              "KHMER VOWEL INHERENT AA"}, (hex(cp), name)
        if kind == "Lo":
            assert name.endswith("FILLER"), (hex(cp), name)
        assert not ch.isspace(), hex(cp)
    # the ones a label copied from a web page or a spreadsheet most often holds
    assert {0x00AD, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0xFE0F} <= _points(DEFAULT_IGNORABLE)
