"""The generate-mode answer parser on realistic answers."""

import pytest

from raysweep.config import AREA_NAMES
from raysweep.parsing import parse_area

U = -1
CASES = [
    ("The red star is in the top left corner.", 0),
    ("top-left", 0),
    ("Top Left.", 0),
    ("upper left", 0),
    ("top_left", 0),
    ("Left top", 0),
    ("top center", 1),
    ("Top centre.", 1),
    ("upper middle", 1),
    ("top right", 2),
    ("The object is located at the top right of the image.", 2),
    ("center left", 3),
    ("middle left", 3),
    ("left center", 3),
    ("center", 4),
    ("Center.", 4),
    ("middle", 4),
    ("It is in the center of the image.", 4),
    ("centre", 4),
    ("center right", 5),
    ("bottom left", 6),
    ("lower-left corner", 6),
    ("bottom center", 7),
    ("Bottom Right", 8),
    ("lower right", 8),
    ("I cannot tell", U),
    ("", U),
    ("left", U),
    ("at the top", U),
    ("top left or bottom right", U),
    ("There is no red star in the image.", U),
    ("top left top left", 0),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_lenient_parser(text, expected):
    assert parse_area(text, AREA_NAMES) == expected


@pytest.mark.parametrize("text,expected", [("top left", 0), ("Top Left.", 0), ("top-left", U), ("The star is top left.", U), ("center", 4)])
def test_exact_parser_only_takes_the_bare_name(text, expected):
    assert parse_area(text, AREA_NAMES, leniency="exact") == expected
