"""The answer parsers of ``generate`` mode: free text -> one answer of a task, or -1 ("unparsed").

Tasks choose their parser (:meth:`raysweep.tasks.base.Task.parse`): the direction-word grid below
(:func:`parse_area`, the absolute-position areas) or plain phrase matching with synonyms
(:func:`parse_phrase`). The direction grammar:

Leniency (documented so results can be compared with the paper, where verbose answers fail):

* ``exact``: after lower-casing and trimming spaces and final punctuation, the text must be one of
  the area names (``"Top left."`` passes, ``"top-left"`` does not).
* ``lenient`` (default): case, punctuation, hyphens and underscores are ignored; synonyms are mapped
  (upper->top, lower->bottom, middle/centre/central/centered/mid->center, leftmost->left, ...). A
  vertical word (top, bottom, center) and a horizontal word (left, right, center) next to each other,
  in either order, name an area (``"left top"``, ``"Center, bottom"`` -> bottom center); a few filler
  words may stand between them (``"middle of the top row"``, ``"left-hand side, top"``); a lone
  ``center`` names the centre. The answer is the area if exactly ONE distinct area is named and
  no leftover direction word contradicts it (``"the top left corner"`` and ``"bottom right, on the
  right"`` parse; ``"in the middle, to the left"`` does not). A lone ``top`` or ``left`` is
  ambiguous, and two different areas (``"top left or center"``) are a failure: both give -1.
  Negations (``"not top left"``) are not understood.
"""

from __future__ import annotations

import re

UNPARSED = -1
LENIENCY = ("exact", "lenient")
_SYNONYMS = {
    "upper": "top", "uppermost": "top", "topmost": "top", "lower": "bottom", "lowermost": "bottom",
    "bottommost": "bottom", "leftmost": "left", "rightmost": "right", "middle": "center", "centre": "center",
    "central": "center", "centrally": "center", "centered": "center", "centred": "center", "mid": "center",
}  # fmt: skip
_VERTICAL_ONLY = {"top", "bottom"}
_HORIZONTAL_ONLY = {"left", "right"}
_DIRECTIONS = _VERTICAL_ONLY | _HORIZONTAL_ONLY | {"center"}
# Words that may stand between the two halves of an area name ("middle of the top row").
_FILLERS = {
    "the", "of", "at", "on", "in", "to", "towards", "toward", "very", "hand", "side", "corner", "part",
    "portion", "area", "region", "section", "row", "column", "half", "quadrant", "image", "picture",
    "grid", "frame",
}  # fmt: skip
_COMPOUND = re.compile(r"^(top|bottom|upper|lower|center|centre|middle|mid)(left|right|center|centre|middle)$")


def _words(text: str) -> list[str]:
    text = re.sub(r"[-_/]", " ", text.lower())
    words = []
    for word in re.findall(r"[a-z]+", text):
        compound = _COMPOUND.match(word)  # "topleft", "bottomcentre"
        words.extend(compound.groups() if compound else [word])
    return [_SYNONYMS.get(w, w) for w in words]


def _canonical(vertical: str, horizontal: str) -> str:
    if vertical == "center" and horizontal == "center":
        return "center"
    return f"{vertical} {horizontal}"


def _pair(a: str, b: str) -> str | None:
    """The area named by direction words ``a`` then ``b``, or None when they share an axis."""
    if a in _HORIZONTAL_ONLY or b in _VERTICAL_ONLY:
        a, b = b, a  # vertical first
    if a in _HORIZONTAL_ONLY or b in _VERTICAL_ONLY:
        return None  # top bottom, left right
    return _canonical(a, b)


def _scan(text: str) -> tuple[list[str], list[str]]:
    """(areas named in order of appearance, leftover direction words that are not part of one)."""
    words = _words(text)
    found, stray, i = [], [], 0
    while i < len(words):
        a = words[i]
        if a not in _DIRECTIONS:
            i += 1
            continue
        j = i + 1
        while j < len(words) and words[j] in _FILLERS:
            j += 1
        area = _pair(a, words[j]) if j < len(words) and words[j] in _DIRECTIONS else None
        if area is not None:
            found.append(area)
            i = j + 1
        else:
            (found if a == "center" else stray).append(a)
            i += 1
    return found, stray


def mentioned_areas(text: str) -> list[str]:
    """Canonical area names mentioned in ``text``, in order of appearance (may repeat)."""
    return _scan(text)[0]


def _contradicts(word: str, area: str) -> bool:
    """A leftover direction word that does not describe ``area`` (``left`` with ``top right``)."""
    return word not in area.split() or area == "center"


def _name_key(name: str) -> str:
    """An area name in canonical form, so ``"upper left"`` in a config matches ``"top left"``."""
    found, stray = _scan(name)
    return found[0] if len(found) == 1 and not stray else " ".join(_words(name))


def parse_area(text: str, area_names: list[str], leniency: str = "lenient") -> int:
    """Index of the area that ``text`` names in ``area_names``, or -1 (see the module doc)."""
    if leniency == "exact":
        cleaned = re.sub(r"\s+", " ", text.strip().lower()).rstrip(".!")
        return area_names.index(cleaned) if cleaned in area_names else UNPARSED
    if leniency != "lenient":
        raise ValueError(f"unknown leniency {leniency!r}; choose one of {LENIENCY}")
    found, stray = _scan(text)
    if len(set(found)) != 1:
        return UNPARSED
    area = found[0]
    if any(_contradicts(w, area) for w in stray):
        return UNPARSED
    names = [_name_key(n) for n in area_names]
    return names.index(area) if area in names else UNPARSED


def _phrase_words(text: str, synonyms: dict[str, str]) -> str:
    """Lower-cased words joined by single spaces, with synonym phrases (longest first) replaced."""
    words = " ".join(re.findall(r"[a-z0-9]+", re.sub(r"[-_/]", " ", text.lower())))
    for phrase in sorted(synonyms, key=len, reverse=True):
        words = re.sub(rf"\b{re.escape(phrase)}\b", synonyms[phrase], words)
    return words


def parse_phrase(text: str, names: list[str], synonyms: dict[str, str], leniency: str = "lenient") -> int:
    """Index of the one answer name ``text`` mentions, or -1: the parser of vocabularies that are
    not the direction-word grid (relative relations, named grid cells).

    ``exact``: as :func:`parse_area`. ``lenient``: case, punctuation, hyphens and underscores are
    ignored, ``synonyms`` (phrase -> answer words, e.g. ``beneath`` -> ``below``) are mapped, and the
    names are found as whole-word phrases, longest first; exactly one distinct name must appear.
    """
    if leniency == "exact":
        cleaned = re.sub(r"\s+", " ", text.strip().lower()).rstrip(".!")
        return names.index(cleaned) if cleaned in names else UNPARSED
    if leniency != "lenient":
        raise ValueError(f"unknown leniency {leniency!r}; choose one of {LENIENCY}")
    keys = [_phrase_words(n, {}) for n in names]
    words = _phrase_words(text, synonyms)
    pattern = "|".join(re.escape(k) for k in sorted(set(keys), key=len, reverse=True))
    found = {m.group(0) for m in re.finditer(rf"\b(?:{pattern})\b", words)} if pattern else set()
    return keys.index(found.pop()) if len(found) == 1 else UNPARSED


def is_direction_grid(names: list[str]) -> bool:
    """True when every name reads as one distinct area of the direction-word grammar of
    :func:`parse_area` (the 3x3 and 2x2 names, also spelled ``upper left`` ...)."""
    keys = []
    for name in names:
        found, stray = _scan(name)
        if len(found) != 1 or stray:
            return False
        keys.append(found[0])
    return len(set(keys)) == len(keys)
