"""The answer parser of ``generate`` mode: free text -> one of the 9 areas, or -1 ("unparsed").

Leniency (documented so results can be compared with the paper, where verbose answers fail):

* ``exact``: after lower-casing and trimming spaces and final punctuation, the text must be one of
  the area names (``"Top left."`` passes, ``"top-left"`` does not).
* ``lenient`` (default): hyphens/underscores become spaces; synonyms are mapped (upper->top,
  lower->bottom, middle/centre/central/centered->center); every vertical+horizontal word pair in
  either order (``"left top"``) or a lone ``center`` counts as a mention; the answer is the area if
  exactly ONE distinct area is mentioned (``"The red star is in the top left corner."`` -> top left).
  A lone ``top`` or ``left`` is ambiguous, and two different areas (``"top left or center"``) are a
  failure: both give -1.
"""

from __future__ import annotations

import re

UNPARSED = -1
LENIENCY = ("exact", "lenient")
_SYNONYMS = {"upper": "top", "lower": "bottom", "middle": "center", "centre": "center", "central": "center",
             "centered": "center", "centred": "center", "mid": "center"}  # fmt: skip
_VERTICAL = {"top", "bottom", "center"}
_HORIZONTAL = {"left", "right", "center"}


def _words(text: str) -> list[str]:
    text = re.sub(r"[-_/]", " ", text.lower())
    return [_SYNONYMS.get(w, w) for w in re.findall(r"[a-z]+", text)]


def _canonical(vertical: str, horizontal: str) -> str:
    if vertical == "center" and horizontal == "center":
        return "center"
    return f"{vertical} {horizontal}"


def mentioned_areas(text: str) -> list[str]:
    """Canonical area names mentioned in ``text``, in order of appearance (may repeat)."""
    words = _words(text)
    found, i = [], 0
    while i < len(words):
        a = words[i]
        b = words[i + 1] if i + 1 < len(words) else ""
        if a in _VERTICAL and b in _HORIZONTAL:
            found.append(_canonical(a, b))
            i += 2
        elif a in _HORIZONTAL and b in _VERTICAL and a != "center":
            found.append(_canonical(b, a))
            i += 2
        elif a == "center":
            found.append("center")
            i += 1
        else:
            i += 1
    return found


def parse_area(text: str, area_names: list[str], leniency: str = "lenient") -> int:
    """Index of the area that ``text`` names in ``area_names``, or -1 (see the module doc)."""
    names = [" ".join(_words(n)) for n in area_names]
    if leniency == "exact":
        cleaned = re.sub(r"\s+", " ", text.strip().lower()).rstrip(".!")
        return area_names.index(cleaned) if cleaned in area_names else UNPARSED
    if leniency != "lenient":
        raise ValueError(f"unknown leniency {leniency!r}; choose one of {LENIENCY}")
    found = set(mentioned_areas(text))
    if len(found) != 1:
        return UNPARSED
    (area,) = found
    return names.index(area) if area in names else UNPARSED
