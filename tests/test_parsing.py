"""The generate-mode answer parser on phrasings VLMs produce.

The table covers word order, British/American spelling, synonyms, hyphens/underscores, capitals,
punctuation, sentences around the answer and the "centre word first" phrasings that once lost their
second word (``center bottom`` -> center). Ambiguous answers (a lone side, two different areas, a
side word that contradicts the named area) must stay -1: unparsed is honest, a guess is not.
"""

import pytest

from raysweep.parsing import mentioned_areas, parse_area
from raysweep.tasks import default_task

AREA_NAMES = list(default_task().answer_names)

U = -1
TL, TC, TR, CL, C, CR, BL, BC, BR = range(9)
CASES = [
    # bare names, every area, capitals and punctuation
    ("top left", TL), ("Top Left.", TL), ("TOP LEFT", TL), ("top center", TC), ("top right!", TR),
    ("center left", CL), ("center", C), ("Center.", C), ("center right", CR), ("bottom left", BL),
    ("bottom center", BC), ("Bottom Right", BR), ("**Bottom right**", BR), ("'top left'", TL),
    ("Answer: top right", TR), ("top left\n", TL),
    # hyphens, underscores, slashes, glued words
    ("top-left", TL), ("top_left", TL), ("Top-Right.", TR), ("bottom-centre", BC), ("centre-left", CL),
    ("mid-left", CL), ("top/right", TR), ("topleft", TL), ("bottomcenter", BC),
    # synonyms and British spelling
    ("upper left", TL), ("lower right", BR), ("upper middle", TC), ("lower centre", BC), ("Top centre.", TC),
    ("middle left", CL), ("middle right", CR), ("centre", C), ("middle", C), ("central", C), ("centred", C),
    ("leftmost top", TL), ("uppermost right", TR),
    # word order: side first, and the centre word first (these used to lose the second word)
    ("Left top", TL), ("right bottom", BR), ("left center", CL), ("right middle", CR), ("left-centre", CL),
    ("center bottom", BC), ("centre top", TC), ("middle bottom", BC), ("Center, bottom", BC),
    ("middle, top", TC), ("Centre-top.", TC), ("center center", C), ("middle-middle", C),
    # corners, sides, rows and sentences around the answer
    ("The red star is in the top left corner.", TL), ("upper-left corner", TL), ("lower-left corner", BL),
    ("in the lower right-hand corner", BR), ("The object is located at the top right of the image.", TR),
    ("It is in the center of the image.", C), ("in the middle", C), ("Dead centre.", C),
    ("The blue circle is at the bottom center of the picture.", BC), ("middle of the top row", TC),
    ("center of the left side", CL), ("middle row, right column", CR), ("bottom row, center", BC),
    ("at the top, in the middle", TC), ("in the middle, to the left", CL),
    ("the left-hand side, top", TL), ("The answer is bottom left.", BL),
    ("It is in the top right. Top right.", TR), ("top left corner (upper left)", TL),
    ("The star is in the bottom right, on the right side.", BR), ("top left top left", TL),
    # ambiguous or missing: -1
    ("I cannot tell", U), ("", U), ("left", U), ("at the top", U), ("bottom", U), ("the right side", U),
    ("top left or bottom right", U), ("top left or center", U), ("center or bottom center", U),
    ("There is no red star in the image.", U), ("top bottom", U), ("left right", U),
    ("in the middle, with a square on its left", U), ("the top, not the middle", U), ("top or bottom left", U),
    ("top right, to the left of the circle", U), ("center, top left", U),
    ("Choose from [top left, center, bottom right]", U),
]


def test_the_table_is_broad():
    assert len(CASES) >= 50 and {area for _, area in CASES} == set(range(-1, 9))


@pytest.mark.parametrize("text,expected", CASES)
def test_lenient_parser(text, expected):
    assert parse_area(text, AREA_NAMES) == expected


@pytest.mark.parametrize("text,expected", [("top left", 0), ("Top Left.", 0), ("top-left", U), ("The star is top left.", U), ("center", 4)])
def test_exact_parser_only_takes_the_bare_name(text, expected):
    assert parse_area(text, AREA_NAMES, leniency="exact") == expected


def test_area_names_from_a_config_are_read_the_same_way():
    names = ["upper left", "upper centre", "upper right", "middle left", "middle", "middle right",
             "lower left", "lower centre", "lower right"]  # fmt: skip
    assert parse_area("top-left", names) == TL
    assert parse_area("center bottom", names) == BC
    assert parse_area("dead centre", names) == C


def test_mentioned_areas_are_canonical_and_in_order():
    assert mentioned_areas("Center, bottom; then upper-left and middle") == ["bottom center", "top left", "center"]
