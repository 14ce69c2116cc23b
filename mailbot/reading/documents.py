"""The kind of an attached document, from its file name."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from mailbot.rules import Rules

_SEPARATORS = re.compile(r"[_\-.+()\[\]]+")


def kind_from_filename(filename: str, rules: Rules) -> str:
    stem = PurePosixPath(filename.replace("\\", "/")).stem
    # "Teknisk_beskrivelse-v2" and "Teknisk beskrivelse v2" read the same.
    spaced = " ".join(_SEPARATORS.sub(" ", stem).split())
    for kind in rules.kinds:
        if any(p.search(stem) or p.search(spaced) for p in kind.patterns):
            return kind.id
    return "other"
